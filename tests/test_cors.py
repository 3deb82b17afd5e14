"""CORS: the pure policy, and the route-layer wrapper through the real connection code."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_http.builtin import build_app
from trio_http.cors import DEFAULT_EXPOSE, CorsPolicy, cross_site_write, with_cors
from trio_http.testing import TestClient


def test_for_origins_normalises_and_refuses_what_is_not_an_origin() -> None:
    policy = CorsPolicy.for_origins(["https://Example.com/", "http://localhost:3000"])
    assert policy.origins == frozenset({"https://example.com", "http://localhost:3000"})
    assert policy.allows("https://EXAMPLE.com") and not policy.allows("https://evil.example")
    for bad in ["example.com", "ftp://example.com", "https://example.com/path", "https://"]:
        with pytest.raises(ValueError, match="not an origin"):
            CorsPolicy.for_origins([bad])


def test_any_origin_answers_star_without_credentials() -> None:
    fields = CorsPolicy().response_fields("https://a.example")
    assert fields["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in fields and "vary" not in fields
    exposed = [name.strip().lower() for name in fields["access-control-expose-headers"].split(",")]
    assert {"etag", "content-range", "content-length", "accept-ranges"} <= set(exposed)


def test_listed_origin_is_echoed_with_credentials_and_vary() -> None:
    policy = CorsPolicy.for_origins(["https://a.example"])
    fields = policy.preflight_fields("https://a.example", "authorization, x-thing")
    assert fields["access-control-allow-origin"] == "https://a.example"
    assert fields["access-control-allow-credentials"] == "true"
    assert fields["access-control-allow-headers"] == "authorization, x-thing"
    assert "MKCOL" in fields["access-control-allow-methods"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_bytes(b"hello")
    return tmp_path


async def test_preflight_is_answered_before_routing(root: Path) -> None:
    app = with_cors(build_app(root), CorsPolicy())
    async with TestClient(app) as client:
        # No route has OPTIONS: without CORS this would be a 405 or 501.
        response = await client.request(
            "OPTIONS",
            "/files/a.txt",
            headers={
                "origin": "https://other.example",
                "access-control-request-method": "PUT",
                "access-control-request-headers": "content-type",
            },
        )
    assert response.status == 204
    assert response.headers["access-control-allow-origin"] == "*"
    # Any origin may read, not write: PUT is not among the methods the preflight allows.
    assert response.headers["access-control-allow-methods"] == "GET, HEAD, OPTIONS"
    assert response.headers["access-control-allow-headers"] == "content-type"
    assert response.headers["access-control-max-age"] == "600"
    assert "access-control-request-headers" in response.headers["vary"].lower()


async def test_responses_and_errors_carry_the_fields(root: Path) -> None:
    app = with_cors(build_app(root), CorsPolicy.for_origins(["https://a.example"]))
    origin = {"origin": "https://a.example"}
    async with TestClient(app) as client:
        ok = await client.get("/files/a.txt", headers=origin)
        missing = await client.get("/files/nope.txt", headers=origin)
        listing = await client.get("/files/", headers={**origin, "accept": "application/json"})
        stranger = await client.get("/files/a.txt", headers={"origin": "https://evil.example"})
        no_origin = await client.get("/files/a.txt")
    for response in (ok, missing, listing):
        assert response.headers["access-control-allow-origin"] == "https://a.example"
        assert response.headers["access-control-allow-credentials"] == "true"
        assert "origin" in [v.strip().lower() for v in response.headers["vary"].split(",")]
    assert ok.headers["access-control-expose-headers"] == ", ".join(DEFAULT_EXPOSE)
    assert missing.status == 404
    # The listing's own Vary (Accept, Accept-Encoding) is kept, Origin added.
    assert "accept" in [v.strip().lower() for v in listing.headers["vary"].split(",")]
    for response in (stranger, no_origin):
        assert response.status == 200
        assert "access-control-allow-origin" not in response.headers


async def test_preflight_from_a_stranger_goes_to_the_route(root: Path) -> None:
    app = with_cors(build_app(root), CorsPolicy.for_origins(["https://a.example"]))
    async with TestClient(app) as client:
        response = await client.request(
            "OPTIONS",
            "/files/a.txt",
            headers={"origin": "https://evil.example", "access-control-request-method": "PUT"},
        )
    assert response.status in (405, 501)
    assert "access-control-allow-origin" not in response.headers


async def test_a_trusted_origin_may_write_after_its_preflight(root: Path) -> None:
    app = with_cors(build_app(root), CorsPolicy.for_origins(["https://a.example"]))
    async with TestClient(app) as client:
        response = await client.request(
            "OPTIONS",
            "/files/a.txt",
            headers={"origin": "https://a.example", "access-control-request-method": "DELETE"},
        )
    assert response.status == 204
    assert "DELETE" in response.headers["access-control-allow-methods"]


@pytest.mark.parametrize(
    ("origin", "fetch_site", "host", "cross"),
    [
        (None, None, "h:1", False),  # curl, tuspy: not a browser
        ("http://h:1", "same-origin", "h:1", False),
        ("http://h:1", None, "h:1", False),  # an older browser, same origin
        (None, "none", "h:1", False),  # typed in the address bar
        ("http://evil.example", "cross-site", "h:1", True),
        ("http://evil.example", None, "h:1", True),
        ("http://h:2", "same-site", "h:1", True),  # another port is another origin
        ("null", None, "h:1", True),  # a sandboxed frame
        (None, "cross-site", "h:1", True),  # nothing vouches for it
        ("https://a.example", "cross-site", "h:1", False),  # trusted (--cors-origin)
    ],
)
def test_cross_site_write(
    origin: str | None, fetch_site: str | None, host: str, cross: bool
) -> None:
    assert cross_site_write(origin, fetch_site, host, frozenset({"https://a.example"})) is cross
