"""Tests for embed.py: the app in memory with TestClient, then the whole program on a socket.

Run with ``pytest docs/examples/test_embed.py`` (needs pytest-trio).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from embed import Counter, make_app, serve_counter, tick

import trio_http
from trio_http.testing import TestClient

# Not needed where the project sets trio_mode = true (this one does); harmless there.
pytestmark = pytest.mark.trio


async def test_get_count() -> None:
    async with TestClient(make_app(Counter())) as client:
        response = await client.get("/count")
    assert response.status == 200
    assert response.headers["content-type"] == "text/plain"
    assert response.text == "0\n"


async def test_put_sets_the_count() -> None:
    counter = Counter()
    async with TestClient(make_app(counter)) as client:
        assert (await client.put("/count", b"41")).status == 204
        assert (await client.get("/count")).text == "41\n"  # same connection (keep-alive)
    assert counter.value == 41


async def test_bad_and_oversized_bodies() -> None:
    async with TestClient(make_app(Counter())) as client:
        bad = await client.put("/count", b"forty-one")
        assert bad.status == 400
        assert bad.text == "400 Bad Request: the body must be a whole number\n"
        assert (await client.put("/count", b"1" * 33)).status == 413


async def test_routing_errors() -> None:
    async with TestClient(make_app(Counter())) as client:
        assert (await client.get("/nothing")).status == 404
        not_allowed = await client.put("/count/watch/3", b"1")
        assert not_allowed.status == 405
        assert not_allowed.headers["allow"] == "GET, HEAD"
        unknown_method = await client.delete("/count")
        assert unknown_method.status == 501  # no route of this app has DELETE
        head = await client.head("/count")
        assert (head.status, head.body) == (200, b"")


async def test_watch_streams_chunked(autojump_clock: trio.testing.MockClock) -> None:
    counter = Counter()
    counter.value = 7
    async with TestClient(make_app(counter)) as client:
        response = await client.get("/count/watch/3")
        assert (await client.get("/count/watch/11")).status == 404
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text == "7\n7\n7\n"


async def test_ticker(autojump_clock: trio.testing.MockClock) -> None:
    counter = Counter()
    with trio.move_on_after(3.5):
        await tick(counter)
    assert counter.value == 3


async def http_get(address: tuple[str, int], target: str) -> bytes:
    """One request on a new TCP connection; the whole response, head and body."""
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream(*address)
        async with stream:
            request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            await stream.send_all(request.encode())
            received = b""
            while chunk := await stream.receive_some():
                received += chunk
    return received


async def test_serves_on_a_socket_until_cancelled() -> None:
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(serve_counter, "127.0.0.1", 0)  # 0: any free port
        head, _, body = (await http_get(addresses[0], "/count")).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert body.rstrip(b"\n").isdigit()
        nursery.cancel_scope.cancel()  # shuts the server down gracefully, then returns


async def test_serve_as_a_context_manager() -> None:
    counter = Counter()
    counter.value = 5
    async with trio_http.serve(make_app(counter), "127.0.0.1", 0) as addresses:
        response = await http_get(addresses[0], "/count")
    assert response.endswith(b"\r\n\r\n5\n")
    # The block's end shut the server down: nothing listens there any more.
    with pytest.raises(OSError):
        await trio.open_tcp_stream(*addresses[0])
