"""Review findings on the file server's serving side: each test failed before its fix."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from trio_http.builtin import build_app
from trio_http.cors import CorsPolicy, with_cors
from trio_http.files.display import human_size
from trio_http.files.reading import Validators, content_type_for
from trio_http.files.search import (
    Match,
    SearchResult,
    render_search_html,
    render_search_json,
    render_search_text,
)
from trio_http.protocol.httpdate import parse_http_date
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


# ---------------------------------------------------------------- Last-Modified


def _stat(mtime: float) -> os.stat_result:
    fake = SimpleNamespace(st_ino=1, st_size=2, st_mtime=mtime, st_mtime_ns=int(mtime * 1e9))
    return cast(os.stat_result, fake)


async def test_a_future_modification_time_is_sent_as_now(root: Path) -> None:
    # RFC 9110 §8.8.2.1: a modification time in the future by the server's clock MUST be
    # replaced by the message origination date (Apache's ap_rationalize_mtime does).
    future = time.time() + 86400 * 365
    os.utime(root / "a.txt", (future, future))
    async with TestClient(build_app(root)) as client:
        response = await client.get("/files/a.txt")
        revalidated = await client.get(
            "/files/a.txt", headers={"if-modified-since": response.headers["last-modified"]}
        )
    sent = parse_http_date(response.headers["last-modified"])
    assert sent is not None and sent <= time.time() + 1
    assert response.status == 200 and revalidated.status in (200, 304)


def test_validators_never_claim_a_time_after_now() -> None:
    now = 1_800_000_000.0
    assert Validators.of(_stat(now + 3600), now=now).last_modified == int(now)
    assert Validators.of(_stat(now - 3600), now=now).last_modified == int(now - 3600)


def test_a_time_no_http_date_can_hold_gives_no_last_modified() -> None:
    # Year 10000 (tmpfs and btrfs hold such times): clamped to now.  Before year 1: no
    # IMF-fixdate can say it, so no Last-Modified, rather than a 500 for the whole file.
    now = 1_800_000_000.0
    assert Validators.of(_stat(3e11), now=now).headers()["last-modified"]
    ancient = Validators.of(_stat(-7e10), now=now)
    assert ancient.last_modified is None
    assert "last-modified" not in ancient.headers()


# ---------------------------------------------------------------- search


def _result(*matches: Match) -> SearchResult:
    return SearchResult("/", "x", list(matches))


def test_search_pages_survive_a_time_no_http_date_can_hold() -> None:
    # The listing shows "-" for such a file (listing._http_date); search answered 500.
    result = _result(Match("x-future.txt", False, 1, 3e11))
    assert "x-future.txt" in render_search_html(result)
    assert json.loads(render_search_json(result))["results"][0]["mtime"] is None


def test_search_text_keeps_one_path_per_line() -> None:
    # A name with a line break would read as two paths (one of them chosen by whoever named
    # the file); the listing's text form writes them %0A and %0D, and so must search.
    text = render_search_text(_result(Match("x\nsecret.txt", False, 1, 0.0)))
    assert text == "x%0Asecret.txt\n"
    assert render_search_text(_result(Match("dir\r/", True, 0, 0.0))) == "dir%0D/\n"


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1048524, "1023.9 KiB"),
        (1048575, "1.0 MiB"),  # was "1024.0 KiB": the unit chosen before rounding
        (1024**3 - 1, "1.0 GiB"),
        (1024**4 - 1, "1.0 TiB"),
    ],
)
def test_sizes_never_show_1024_of_a_unit(size: int, shown: str) -> None:
    assert human_size(size) == shown


# ---------------------------------------------------------------- preconditions on listings


async def test_a_listing_evaluates_if_match_and_if_none_match_star(root: Path) -> None:
    # RFC 9110 §13.2.2 step 1 and §13.1.1: an origin server MUST evaluate If-Match before
    # performing the method; a listing has no entity tag, so no listed tag matches: 412.
    # §13.1.2: If-None-Match: * is false when a current representation exists: 304 for GET.
    async with TestClient(build_app(root)) as client:
        if_match = await client.get("/files/", headers={"if-match": '"nope"'})
        star = await client.get("/files/", headers={"if-none-match": "*"})
        any_tag = await client.get("/files/", headers={"if-match": "*"})
    assert if_match.status == 412
    assert star.status == 304
    assert any_tag.status == 200
