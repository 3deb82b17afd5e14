"""Tests for static_site.py: the app with TestClient, and Server.shutdown() on a socket."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from static_site import make_app, serve_until_stopped

from trio_http import Server, ServerConfig
from trio_http.testing import TestClient

pytestmark = pytest.mark.trio


def make_site(directory: Path) -> Path:
    (directory / "index.html").write_text("<h1>hi</h1>\n")
    return directory


async def test_static_files_are_read_only_without_listings(tmp_path: Path) -> None:
    async with TestClient(make_app(make_site(tmp_path))) as client:
        page = await client.get("/static/index.html")
        assert (page.status, page.body) == (200, b"<h1>hi</h1>\n")
        assert page.headers["content-type"] == "text/html"
        assert (await client.get("/static/")).status == 403  # listings=False
        refused = await client.put("/static/index.html", b"defaced")
        assert (refused.status, refused.headers["allow"]) == (405, "GET, HEAD")
        assert (await client.get("/healthz")).text == "ok\n"


async def test_shutdown_returns_once_connections_are_done(tmp_path: Path) -> None:
    server = Server(make_app(make_site(tmp_path)), ServerConfig(access_log=False))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(serve_until_stopped, server, listeners)
            stream = await trio.open_tcp_stream(*addresses[0])
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await stream.receive_some()).endswith(b"\r\n\r\nok\n")
            server.shutdown()  # the idle keep-alive connection is closed at once
            assert await stream.receive_some() == b""
            await stream.aclose()
        # serve_until_stopped returned: the listeners are closed.
    with pytest.raises(OSError):
        await trio.open_tcp_stream(*addresses[0])
