"""The server over real sockets: listening, sendfile, limits, graceful shutdown."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import h11
import pytest
import trio

from trio_http import App, Request, Response, Server, ServerConfig, serve
from trio_http.builtin import build_app
from trio_http.headers import Headers

CONFIG = ServerConfig(access_log=False)


async def fetch(
    port: int, target: str, headers: dict[str, str] | None = None, *, method: str = "GET"
) -> tuple[h11.Response, bytes]:
    """One request on a new connection; returns the response head and body."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            conn = h11.Connection(h11.CLIENT)
            all_headers = [("host", "test"), *(headers or {}).items()]
            request = h11.Request(method=method, target=target, headers=all_headers)
            await stream.send_all(
                (conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b"")
            )
            head: h11.Response | None = None
            body = bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(bytes(await stream.receive_some()))
                elif isinstance(event, h11.Response):
                    head = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert head is not None
                    return head, bytes(body)


def header(response: h11.Response, name: str) -> str | None:
    return Headers.from_raw(list(response.headers)).get(name)


async def test_serve_reports_bound_port(nursery: trio.Nursery) -> None:
    addresses = await nursery.start(serve, build_app(), "127.0.0.1", 0)
    (host, port) = addresses[0]
    assert host == "127.0.0.1" and port > 0
    head, body = await fetch(port, "/echo/ok")
    assert (head.status_code, body) == (200, b"ok")
    nursery.cancel_scope.cancel()


async def test_ipv6_loopback(nursery: trio.Nursery) -> None:
    try:
        addresses = await nursery.start(serve, build_app(), "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    port = addresses[0][1]
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("::1", port)
        async with stream:
            await stream.send_all(b"GET /echo/six HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
    assert data.endswith(b"six")
    nursery.cancel_scope.cancel()


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return path


async def test_sendfile_download_is_exact(nursery: trio.Nursery, big_file: Path) -> None:
    app = build_app(big_file.parent)
    addresses = await nursery.start(partial(serve, app, "127.0.0.1", 0, config=CONFIG))
    port = addresses[0][1]
    head, body = await fetch(port, "/files/big.bin")
    assert head.status_code == 200
    assert header(head, "content-length") == str(big_file.stat().st_size)
    assert hashlib.sha256(body).digest() == hashlib.sha256(big_file.read_bytes()).digest()
    # A range and a multipart range go through sendfile as well.
    head, body = await fetch(port, "/files/big.bin", {"range": "bytes=1000000-1000009"})
    assert head.status_code == 206
    assert body == big_file.read_bytes()[1000000:1000010]
    head, body = await fetch(port, "/files/big.bin", {"range": "bytes=0-0,-1"})
    assert head.status_code == 206
    assert header(head, "content-length") == str(len(body))
    assert body.count(b"Content-Range:") == 2
    nursery.cancel_scope.cancel()


async def test_concurrent_connections(nursery: trio.Nursery) -> None:
    app = App()
    arrived = 0
    all_arrived = trio.Event()

    @app.get("/wait")
    async def wait(request: Request) -> Response:
        # Only answers once three requests are in flight at the same time.
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            all_arrived.set()
        await all_arrived.wait()
        return Response("together")

    port = (await nursery.start(serve, app, "127.0.0.1", 0))[0][1]
    results: list[bytes] = []

    async def one() -> None:
        results.append((await fetch(port, "/wait"))[1])

    async with trio.open_nursery() as clients:
        for _ in range(3):
            clients.start_soon(one)
    assert results == [b"together"] * 3
    nursery.cancel_scope.cancel()


async def test_limit_concurrency_answers_503(nursery: trio.Nursery) -> None:
    config = ServerConfig(access_log=False, limit_concurrency=1)
    server = Server(build_app(), config)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = (await nursery.start(server.run, listeners))[0][1]
    with trio.fail_after(5):
        first = await trio.open_tcp_stream("127.0.0.1", port)
        await first.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await first.receive_some()  # the first connection is now established and served
        head, body = await fetch(port, "/")
    assert head.status_code == 503
    assert header(head, "connection") == "close"
    assert body.startswith(b"503 Service Unavailable")
    await first.aclose()
    nursery.cancel_scope.cancel()


async def test_shutdown_closes_idle_and_finishes_in_flight() -> None:
    app = App()
    entered = trio.Event()
    release = trio.Event()

    @app.get("/slow")
    async def slow(request: Request) -> Response:
        entered.set()
        await release.wait()
        return Response("finished")

    server = Server(app, CONFIG)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    results: list[tuple[h11.Response, bytes]] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = (await nursery.start(server.run, listeners))[0][1]
            idle = await trio.open_tcp_stream("127.0.0.1", port)

            async def in_flight() -> None:
                results.append(await fetch(port, "/slow"))

            nursery.start_soon(in_flight)
            await entered.wait()
            server.shutdown()
            # The idle connection is closed at once, while the slow request is still running.
            assert await idle.receive_some() == b""
            await idle.aclose()
            release.set()
        # server.serve returned: every connection is done.
    ((head, body),) = results
    assert (head.status_code, body) == (200, b"finished")
    assert header(head, "connection") == "close"
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)


async def test_graceful_timeout_cancels_stragglers(autojump_clock: trio.testing.MockClock) -> None:
    app = App()
    entered = trio.Event()
    cancelled = trio.Event()

    @app.get("/forever")
    async def forever(request: Request) -> Response:
        entered.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    server = Server(app, ServerConfig(access_log=False, graceful_timeout=3))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        port = (await nursery.start(server.run, listeners))[0][1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        await entered.wait()
        start = trio.current_time()
        server.shutdown()
    assert cancelled.is_set()
    assert trio.current_time() - start == pytest.approx(3, abs=0.1)
    await stream.aclose()


async def test_cancelling_the_caller_shuts_down_gracefully() -> None:
    app = App()
    entered = trio.Event()

    @app.get("/slow")
    async def slow(request: Request) -> Response:
        entered.set()
        await trio.sleep(0.05)
        return Response("done anyway")

    results: list[bytes] = []

    async def client(port: int) -> None:
        results.append((await fetch(port, "/slow"))[1])

    with trio.fail_after(10):
        async with trio.open_nursery() as clients, trio.open_nursery() as server_scope:
            port = (await server_scope.start(serve, app, "127.0.0.1", 0))[0][1]
            clients.start_soon(client, port)
            await entered.wait()
            server_scope.cancel_scope.cancel()  # the in-flight request still completes
    assert results == [b"done anyway"]


async def test_streaming_upload_over_socket(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = (await nursery.start(serve, build_app(tmp_path), "127.0.0.1", 0))[0][1]
    payload = os.urandom(5 * 1024 * 1024)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(
                b"PUT /files/up.bin HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n" % len(payload)
            )

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(0, len(payload), 65536):
                    yield payload[i : i + 65536]

            async for chunk in chunks():
                await stream.send_all(chunk)
            data = b""
            while part := await stream.receive_some():
                data += part
    assert data.startswith(b"HTTP/1.1 201 Created\r\n")
    assert (tmp_path / "up.bin").read_bytes() == payload
    nursery.cancel_scope.cancel()


async def test_serve_as_async_context_manager() -> None:
    async with serve(build_app(), "127.0.0.1", 0, config=CONFIG) as addresses:
        port = addresses[0][1]
        _, body = await fetch(port, "/echo/ctx")
        assert body == b"ctx"
    # The block's end stopped the server.
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)


async def test_two_apps_in_one_program(nursery: trio.Nursery) -> None:
    first, second = App(), App()

    @first.get("/")
    async def one(request: Request) -> Response:
        return Response("first")

    @second.get("/")
    async def two(request: Request) -> Response:
        return Response("second")

    port_one = (await nursery.start(serve, first, "127.0.0.1", 0))[0][1]
    async with serve(second, "127.0.0.1", 0) as addresses:
        assert (await fetch(port_one, "/"))[1] == b"first"
        assert (await fetch(addresses[0][1], "/"))[1] == b"second"
    nursery.cancel_scope.cancel()


async def test_upload_cut_by_shutdown_leaves_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    (tmp_path / "keep.bin").write_bytes(b"old")
    server = Server(build_app(tmp_path), ServerConfig(access_log=False, graceful_timeout=5))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        port = (await nursery.start(server.run, listeners))[0][1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(
            b"PUT /files/keep.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n"
            + b"n" * 2_000_000
        )
        # The upload is under way: its temporary file exists.
        with trio.fail_after(30):
            while not list(tmp_path.glob(".trio-http-upload-*")):
                await trio.testing.wait_all_tasks_blocked()
                await trio.sleep(0.01)
        server.shutdown()
    # The graceful timeout passed, the upload was cancelled and cleaned up.
    assert (tmp_path / "keep.bin").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.bin"]
    await stream.aclose()


async def test_close_after_response_lingers_when_client_bytes_are_unread(
    nursery: trio.Nursery,
) -> None:
    """A client that asked to close but sent more (an HTTP/1.0 client's stray CRLF after its
    body, say) must still get its whole response: closing on unread bytes would reset the
    connection and can destroy what was sent (RFC 9112 §9.6)."""
    extra_sent = trio.Event()
    body = b"x" * 200_000  # still in flight when the server closes

    async def slow(request: Request) -> Response:
        await extra_sent.wait()  # the extra bytes now sit unread in the server's socket
        return Response(body)

    app = App()
    app.add_route("/slow", slow, ["GET"])
    (_, port), *_ = await nursery.start(serve, app, "127.0.0.1", 0)
    with trio.fail_after(10):
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", port))
        await sock.send(b"GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()  # the request is read, the handler waits
        await sock.send(b"\r\n\r\n")
        extra_sent.set()
        received = bytearray()
        while chunk := await sock.recv(65536):  # raises ConnectionResetError on a reset
            received += chunk
        sock.close()
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.endswith(body)
    nursery.cancel_scope.cancel()


async def test_serve_as_a_context_manager_raises_oserror_when_it_cannot_listen() -> None:
    (taken,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = taken.socket.getsockname()[1]
    with pytest.raises(OSError):
        async with serve(build_app(), "127.0.0.1", port):
            raise AssertionError("must not start")
    await taken.aclose()
