"""What outside checkers found (an HTTP linter, hostile clients): one test per defect.

Each of these failed before its fix (issue "Conformance"); the file-server items have their
tests in tests/test_files.py and tests/test_ranges.py.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
import trio
import trio.testing
from stream_pairs import socket_stream_pair

from trio_http import App, Request, Response, Server, ServerConfig, Upgrade
from trio_http.builtin import build_app
from trio_http.testing import TestClient

PAGE = "<html><body>" + "hello, world " * 40 + "</body></html>\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "page.html").write_text(PAGE)
    return tmp_path


# ---------------------------------------------------------------- 304 and 206 keep Vary


async def test_304_and_206_carry_the_vary_of_the_200(site: Path) -> None:
    """RFC 9110 §15.4.5 (304) and §15.3.7 (206): the fields a 200 would carry."""
    async with TestClient(build_app(site)) as client:
        full = await client.get("/files/page.html")
        assert full.headers.get("vary") == "Accept-Encoding"
        etag = full.headers.get("etag")
        assert etag is not None
        not_modified = await client.get("/files/page.html", headers={"if-none-match": etag})
        partial = await client.get("/files/page.html", headers={"range": "bytes=0-9"})
        several = await client.get("/files/page.html", headers={"range": "bytes=0-1,5-6"})
    assert not_modified.status == 304
    assert not_modified.headers.get("vary") == "Accept-Encoding"
    assert (partial.status, partial.body) == (206, PAGE[:10].encode())
    assert partial.headers.get("vary") == "Accept-Encoding"
    assert partial.headers.get("content-encoding") is None  # a range of the identity
    assert several.status == 206 and several.headers.get("vary") == "Accept-Encoding"


async def test_304_for_a_compressed_variant_carries_the_variants_etag(site: Path) -> None:
    gzip = {"accept-encoding": "gzip"}
    async with TestClient(build_app(site)) as client:
        full = await client.get("/files/page.html", headers=gzip)
        assert full.headers.get("content-encoding") == "gzip"
        etag = full.headers.get("etag")
        assert etag is not None and etag.endswith('-gzip"')
        again = await client.get("/files/page.html", headers={**gzip, "if-none-match": etag})
    assert again.status == 304
    assert again.headers.get("etag") == etag
    assert again.headers.get("vary") == "Accept-Encoding"
    assert again.headers.get("content-encoding") is None and again.body == b""


async def test_small_or_binary_files_stay_without_vary(site: Path) -> None:
    (site / "tiny.html").write_text("<p>hi</p>")
    (site / "data.bin").write_bytes(b"\0" * 1000)
    async with TestClient(build_app(site)) as client:
        for name in ("tiny.html", "data.bin"):
            etag = (await client.get(f"/files/{name}")).headers.get("etag") or ""
            response = await client.get(f"/files/{name}", headers={"if-none-match": etag})
            assert (response.status, response.headers.get("vary")) == (304, None)


# ---------------------------------------------------------------- Host


@pytest.mark.parametrize("host", [b"a b", b"[::1", b"x:99999", b"user@x"])
async def test_an_invalid_host_is_400(host: bytes) -> None:
    """RFC 9112 §3.2: 400 for a Host header field with an invalid value."""
    async with TestClient(build_app()) as client:
        answer = await client.send_raw(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b"invalid Host header" in answer


@pytest.mark.parametrize("host", [b"localhost:4221", b"[::1]:8000", b"127.0.0.1", b""])
async def test_valid_hosts_are_served(host: bytes) -> None:
    async with TestClient(build_app()) as client:
        answer = await client.send_raw(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer


# ---------------------------------------------------------------- chunked framing


def echo_length_app() -> App:
    app = App()

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        return Response(f"{len(await request.body())}")

    return app


CHUNKED = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


async def test_a_chunk_line_ending_in_a_bare_lf_is_answered_400() -> None:
    async with TestClient(echo_length_app()) as client:
        answer = await client.send_raw(CHUNKED + b"5\nhello\n0\n\n", half_close=False)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b"bare LF" in answer


async def test_a_declared_chunk_over_the_limit_is_refused_at_once() -> None:
    """The size line alone decides: no byte of the 2 GiB needs to arrive (nor a timeout)."""
    config = ServerConfig(access_log=False, max_body_size=1024 * 1024, body_timeout=None)
    async with TestClient(echo_length_app(), config) as client:
        with trio.fail_after(5):
            answer = await client.send_raw(CHUNKED + b"80000000\r\nab", half_close=False)
    assert answer.startswith(b"HTTP/1.1 413 "), answer


async def test_chunks_within_the_limit_are_read() -> None:
    config = ServerConfig(access_log=False, max_body_size=10)
    async with TestClient(echo_length_app(), config) as client:
        answer = await client.send_raw(CHUNKED + b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\n10")


# ---------------------------------------------------------------- empty lines first


GET = b"GET /echo/x HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("prefix", [b"\r\n", b"\n", b"\r\n\r\n"])
async def test_empty_lines_before_a_request_line_are_ignored(prefix: bytes) -> None:
    """RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request."""
    async with TestClient(build_app()) as client:
        answer = await client.send_raw(prefix + GET)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\nx")


async def test_empty_lines_between_requests_are_ignored() -> None:
    """After a body (an old client's stray CRLF) and between keep-alive requests."""
    post = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    async with TestClient(echo_length_app()) as client:
        answer = await client.send_raw(post + b"\r\n" + post + b"\r\n\r\n" + post)
    assert answer.count(b"HTTP/1.1 200 OK") == 3, answer


async def test_empty_lines_in_their_own_reads_are_ignored() -> None:
    client_stream, server_stream = await socket_stream_pair()
    from trio_http.http11 import HTTPConnection

    connection = HTTPConnection(server_stream, build_app(), ServerConfig(access_log=False))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        with trio.fail_after(5):
            for piece in (b"\r\n", b"\n", GET + b"\r\n"):
                await client_stream.send_all(piece)
                await trio.testing.wait_all_tasks_blocked()
            await client_stream.send_all(GET)
            received = b""
            while received.count(b"HTTP/1.1 200 OK") < 2:
                received += await client_stream.receive_some()
        await client_stream.aclose()


# ---------------------------------------------------------------- accept failures


class FailingListener(trio.abc.Listener[trio.abc.Stream]):
    """accept() fails with EMFILE *failures* times, then hands out memory streams."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.clients: list[trio.abc.Stream] = []
        self.accepted = trio.Event()

    async def accept(self) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        if self.clients:
            await trio.sleep_forever()
        client, server = trio.testing.memory_stream_pair()
        self.clients.append(client)
        self.accepted.set()
        return server

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_accept_failures_are_logged_once_per_episode(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    listener = FailingListener(failures=25)
    server = Server(build_app(), ServerConfig(access_log=False))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run, [listener])
        await listener.accepted.wait()
        server.shutdown()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith(("trio", "trio_http"))]
    failures = [m for m in messages if "accept" in m]
    assert len(failures) == 2, failures
    assert failures[0].startswith("cannot accept connections: EMFILE (Too many open files)")
    assert failures[1].startswith("accepting connections again after 25 failed attempts")


# ---------------------------------------------------------------- 503 and Server reuse


async def test_the_overload_503_is_access_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trio_http.access")
    server = Server(build_app(), ServerConfig(limit_concurrency=1))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        port = (await nursery.start(server.run, listeners))[0][1]
        with trio.fail_after(5):
            first = await trio.open_tcp_stream("127.0.0.1", port)
            await first.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await first.receive_some()  # served, and kept open: the limit is reached
            second = await trio.open_tcp_stream("127.0.0.1", port)
            await second.send_all(b"GET /echo/refused HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while chunk := await second.receive_some():
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"retry-after: 1\r\n" in answer and b"connection: close\r\n" in answer
        await first.aclose()
        nursery.cancel_scope.cancel()
    lines = [r.getMessage() for r in caplog.records if r.name == "trio_http.access"]
    assert any('"GET /echo/refused HTTP/1.1" 503' in line for line in lines), lines


async def test_a_server_runs_once() -> None:
    server = Server(build_app(), ServerConfig(access_log=False))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run, await trio.open_tcp_listeners(0, host="127.0.0.1"))
        server.shutdown()
    with pytest.raises(RuntimeError, match="create a new Server"):
        await server.run(await trio.open_tcp_listeners(0, host="127.0.0.1"))


# ---------------------------------------------------------------- the upgrade seam


def upgrade_app() -> App:
    app = App()

    async def echo(stream: trio.abc.Stream) -> None:
        while data := await stream.receive_some():
            await stream.send_all(data.upper())

    @app.get("/echo-protocol")
    async def switch(request: Request) -> Response | Upgrade:
        if request.headers.get("upgrade") != "shout":
            return Response("upgrade required", 426, {"upgrade": "shout"})
        return Upgrade(echo, {"upgrade": "shout", "connection": "upgrade"})

    @app.get("/wrong")
    async def wrong(request: Request) -> Upgrade:
        return Upgrade(echo, {"upgrade": "shout", "connection": "upgrade"})

    return app


UPGRADE = b"GET /echo-protocol HTTP/1.1\r\nHost: x\r\nUpgrade: shout\r\nConnection: upgrade\r\n\r\n"


async def read_until(stream: trio.abc.Stream, marker: bytes) -> bytes:
    data = b""
    with trio.fail_after(5):
        while marker not in data:
            chunk = await stream.receive_some()
            assert chunk, data
            data += chunk
    return data


@pytest.mark.parametrize("kind", ["memory", "socket"])
async def test_a_handler_takes_the_connection_over_after_101(kind: str) -> None:
    """Bytes sent right after the request head (already in h11's buffer) are not lost."""
    from stream_pairs import stream_pair

    from trio_http.http11 import HTTPConnection

    client, server = await stream_pair(kind)
    connection = HTTPConnection(server, upgrade_app(), ServerConfig(access_log=False))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        await client.send_all(UPGRADE + b"early ")
        head = await read_until(client, b"EARLY ")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"upgrade: shout\r\n" in head
        await client.send_all(b"later")
        assert await read_until(client, b"LATER") == b"LATER"
        await client.send_eof()
        assert await client.receive_some() == b""  # the handler returned: closed


async def test_an_upgrade_refused_is_an_ordinary_response() -> None:
    async with TestClient(upgrade_app()) as client:
        response = await client.get("/echo-protocol")
    assert (response.status, response.headers.get("upgrade")) == (426, "shout")


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /wrong HTTP/1.1\r\nHost: x\r\n\r\n",  # no Upgrade at all
        b"GET /wrong HTTP/1.1\r\nHost: x\r\nUpgrade: shout\r\n\r\n",  # no Connection: upgrade
        b"GET /wrong HTTP/1.0\r\nHost: x\r\nUpgrade: shout\r\nConnection: upgrade\r\n\r\n",
    ],
)
async def test_an_upgrade_the_client_did_not_ask_for_is_500(
    caplog: pytest.LogCaptureFixture, request_head: bytes
) -> None:
    """RFC 9110 §7.8: Upgrade needs Connection: upgrade, and is ignored in HTTP/1.0."""
    async with TestClient(upgrade_app()) as client:
        answer = await client.send_raw(request_head)
    assert answer.startswith((b"HTTP/1.1 500 ", b"HTTP/1.0 500 ")), answer
    assert "cannot switch protocols" in caplog.text


async def test_a_handler_can_switch_protocols_itself_and_go_on() -> None:
    """Request.upgrade: the handler chooses the 101's fields, then speaks on the stream."""
    app = App()

    @app.get("/imperative")
    async def imperative(request: Request) -> Response:
        stream = await request.upgrade({"upgrade": "shout", "connection": "upgrade"})
        while data := await stream.receive_some():
            await stream.send_all(data.upper())
        return Response("never sent")

    client, server = await socket_stream_pair()
    from trio_http.http11 import HTTPConnection

    connection = HTTPConnection(server, app, ServerConfig(access_log=False))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        request = UPGRADE.replace(b"/echo-protocol", b"/imperative")
        await client.send_all(request + b"first ")
        head = await read_until(client, b"FIRST ")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        await client.send_eof()
        assert await client.receive_some() == b""
    assert b"never sent" not in head


async def test_request_upgrade_refuses_a_request_that_did_not_ask() -> None:
    errors: list[str] = []
    app = App()

    @app.get("/")
    async def handler(request: Request) -> Response:
        try:
            await request.upgrade({"upgrade": "shout"})
        except RuntimeError as exc:
            errors.append(str(exc))
        return Response("plain")

    async with TestClient(app) as client:
        assert (await client.get("/")).body == b"plain"
    assert errors and "cannot switch protocols" in errors[0]
