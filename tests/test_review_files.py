"""Review findings on the file server's serving side: each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_http.builtin import build_app
from trio_http.cors import CorsPolicy, with_cors
from trio_http.files.reading import content_type_for
from trio_http.testing import TestClient


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "srv"
    base.mkdir()
    (base / "a.txt").write_bytes(b"hello")
    return base


def _vary(value: str | None) -> list[str]:
    return [item.strip().lower() for item in (value or "").split(",") if item.strip()]


# ---------------------------------------------------------------- CORS and caches


async def test_listed_origins_vary_on_origin_even_without_one(root: Path) -> None:
    # Fetch standard, "CORS protocol and HTTP caches": when Access-Control-Allow-Origin
    # depends on Origin, always send Vary: Origin, for non-CORS requests too; otherwise a
    # cache keeps the answer to a navigation (no ACAO) and serves it to the trusted origin's
    # script, which the browser then blocks.
    app = with_cors(build_app(root), CorsPolicy.for_origins(["https://a.example"]))
    async with TestClient(app) as client:
        no_origin = await client.get("/files/a.txt")
        stranger = await client.get("/files/a.txt", headers={"origin": "https://evil.example"})
        missing = await client.get("/files/nope.txt")
    for response in (no_origin, stranger, missing):
        assert "origin" in _vary(response.headers.get("vary"))
        assert "access-control-allow-origin" not in response.headers


async def test_any_origin_answers_star_to_requests_without_origin(root: Path) -> None:
    # Same section: with ACAO "*", send it for non-CORS requests as well (and no Vary), so a
    # cached answer to a request without Origin still lets any script read it.
    app = with_cors(build_app(root), CorsPolicy())
    async with TestClient(app) as client:
        ok = await client.get("/files/a.txt")
        missing = await client.get("/files/nope.txt")
    for response in (ok, missing):
        assert response.headers.get("access-control-allow-origin") == "*"
        assert "origin" not in _vary(response.headers.get("vary"))
    assert "ETag" in ok.headers["access-control-expose-headers"]


# ---------------------------------------------------------------- content types


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("backup.tar.gz", "application/gzip"),
        ("backup.tgz", "application/gzip"),
        ("notes.txt.gz", "application/gzip"),
        ("dump.sql.bz2", "application/x-bzip2"),
        ("backup.tar.xz", "application/x-xz"),
        ("page.html.br", "application/octet-stream"),
        ("plain.tar", "application/x-tar"),
        ("page.html", "text/html"),
    ],
)
def test_compressed_files_are_typed_as_what_is_sent(name: str, expected: str) -> None:
    # mimetypes gives ("application/x-tar", "gzip") for a .tar.gz: the type *under* the
    # compression.  The file is sent as stored, without Content-Encoding, so the bytes are
    # gzip data; calling them a tar (or text/plain, for .txt.gz) mislabels them (RFC 9110
    # §8.3).  Python's http.server maps .gz/.bz2/.xz to their own types for this reason.
    assert content_type_for(name) == expected


async def test_tar_gz_is_served_as_gzip_and_not_compressed_again(root: Path) -> None:
    (root / "log.txt.gz").write_bytes(b"\x1f\x8b" + bytes(1000))
    async with TestClient(build_app(root)) as client:
        response = await client.get("/files/log.txt.gz", headers={"accept-encoding": "gzip"})
    assert response.headers["content-type"] == "application/gzip"
    assert "content-encoding" not in response.headers
    assert response.body == b"\x1f\x8b" + bytes(1000)
