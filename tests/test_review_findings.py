"""Failing tests for bugs found in the review of the core redesign, ASGI and WebSockets
(changes since bf1a31e).  Each test names the defect it demonstrates; see the review report
for the fix."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection
from wsproto.events import Request as WSRequest

from trio_http import App, Request, Response, ServerConfig
from trio_http.accesslog import AccessLogger
from trio_http.http11 import HTTPConnection
from trio_http.server import ConnectionRegistry
from trio_http.websocket import WebSocket, WebSocketSettings


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    logger = logging.getLogger("trio_http.access")
    handler = _Lines()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


async def _read_all(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


# ------------------------------------------------------------------------ access log


async def test_stalled_body_is_not_access_logged_as_a_500(
    access_lines: list[str], autojump_clock: trio.testing.MockClock
) -> None:
    """A client that stalls mid-body gets 408, but the access log first records the request
    as ``500`` (the default status of HTTPConnection._exchange, logged in its ``finally``
    while the deadline's Cancelled passes through), then a second, request-less ``408`` line
    from _on_timeout.  One line, with the request, saying 408, is what happened."""
    app = App()

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        return Response(f"{len(await request.body())}")

    client, server = trio.testing.memory_stream_pair()
    connection = HTTPConnection(
        server,
        app,
        ServerConfig(body_timeout=2),
        client=("192.0.2.1", 1234),
        access_logger=AccessLogger(),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        await client.send_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        data = await _read_all(client)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert not any(" 500 " in line for line in access_lines), access_lines
    assert len(access_lines) == 1, access_lines
    assert '"POST /upload HTTP/1.1" 408 ' in access_lines[0]


# ------------------------------------------------------------------------ WebSocket and drain


async def test_websocket_accepted_after_drain_began_is_told_1001() -> None:
    """registry.drain() calls close_if_idle() once.  A connection whose handler is running
    then (waiting_for == "nothing", not yet upgraded) only gets _close_requested; when the
    handler accepts the WebSocket afterwards, HTTPConnection.switch_protocols creates the
    UpgradedStream with going_away unset, and nothing ever sets it: the WebSocket is never
    told 1001 and lives until the graceful timeout cancels it without a close frame."""
    entered, go = trio.Event(), trio.Event()
    app = App(websocket_settings=WebSocketSettings(ping_interval=None))

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        entered.set()
        await go.wait()
        await ws.accept()
        async for _ in ws:
            pass

    registry = ConnectionRegistry()
    client, server = trio.testing.memory_stream_pair()
    connection = HTTPConnection(
        server, app, ServerConfig(access_log=False), client=None, registry=registry
    )
    ws = WSConnection(ConnectionType.CLIENT)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        await client.send_all(ws.send(WSRequest(host="x", target="/ws")))
        with trio.fail_after(5):
            await entered.wait()
        registry.drain()  # the server begins a graceful shutdown
        go.set()
        codes: list[int] = []
        accepted = False
        with trio.move_on_after(3):
            while not codes:
                data = bytes(await client.receive_some())
                ws.receive_data(data or None)
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        accepted = True
                    elif isinstance(event, CloseConnection):
                        codes.append(event.code)
                if not data:
                    break
        nursery.cancel_scope.cancel()
    assert accepted
    assert codes == [1001], "the WebSocket opened during the drain was never told to go away"


# ------------------------------------------------------------------------ WebSocket handshake


_HANDSHAKE_WITH_BODY = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Content-Length: 5\r\n\r\nhello"
)


async def _status_of_first_response(handler: object) -> bytes:
    client, server = trio.testing.memory_stream_pair()
    connection = HTTPConnection(server, handler, ServerConfig(access_log=False), client=None)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        await client.send_all(_HANDSHAKE_WITH_BODY)
        data = b""
        with trio.fail_after(5):
            while b"\r\n" not in data:
                data += await client.receive_some()
        nursery.cancel_scope.cancel()
    return data.split(b"\r\n", 1)[0]


async def test_websocket_handshake_with_a_body_is_a_4xx_not_a_500() -> None:
    """check_handshake accepts a GET that carries a body; WebSocket.accept() then calls
    Request.upgrade, which raises RuntimeError because h11 is not in MIGHT_SWITCH_PROTOCOL
    until the body is read, and serve_websocket turns that into a logged 500.  Client input
    must not produce a 5xx (nor an error-log traceback)."""
    app = App()

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()

    status = await _status_of_first_response(app)
    assert status.startswith(b"HTTP/1.1 4"), status


async def test_asgi_websocket_handshake_with_a_body_is_a_4xx_not_a_500() -> None:
    """The same through the ASGI websocket scope: websocket.accept raises RuntimeError into
    the application, which fails, and the connection answers 500."""
    from trio_http.asgi.http import ASGIHost

    async def asgi_app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        assert scope["type"] == "websocket"
        await receive()  # type: ignore[operator]
        await send({"type": "websocket.accept"})  # type: ignore[operator]

    status = await _status_of_first_response(ASGIHost(asgi_app))  # type: ignore[arg-type]
    assert status.startswith(b"HTTP/1.1 4"), status


# ------------------------------------------------------------------------ WebSocket close


async def test_peer_close_is_bounded_when_the_peer_stops_reading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When the peer starts the close handshake, WebSocket._on_close answers it with
    ``await self._send(event.response())`` and no timeout (the violation branch beside it has
    one).  A peer that sends Close and then stops reading blocks that send for ever; the
    keep-alive has already stopped (state is "closing"), so the reader, the handler and the
    connection hang until a server shutdown.  close_timeout should bound it."""
    settings = WebSocketSettings(ping_interval=1, ping_timeout=1, close_timeout=1)
    app = App(websocket_settings=settings)

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        async for _ in ws:
            pass

    # Lockstep: no buffer, so a peer that does not read blocks every send (a full socket).
    client, server = trio.testing.lockstep_stream_pair()
    connection = HTTPConnection(server, app, ServerConfig(access_log=False), client=None)
    done = trio.Event()
    ws = WSConnection(ConnectionType.CLIENT)

    async def serve() -> None:
        await connection.run()
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await client.send_all(ws.send(WSRequest(host="x", target="/ws")))
        accepted = False
        with trio.fail_after(5):
            while not accepted:
                ws.receive_data(bytes(await client.receive_some()))
                accepted = any(isinstance(e, AcceptConnection) for e in ws.events())
        await client.send_all(ws.send(CloseConnection(code=1000)))
        # ... and the client never reads again.
        with trio.move_on_after(60):
            await done.wait()
        finished = done.is_set()
        nursery.cancel_scope.cancel()
    assert finished, "the connection hung answering the peer's close"


# ------------------------------------------------------------------------ permessage-deflate


async def test_compressed_message_fragments_with_a_ping_between_them() -> None:
    """RFC 6455 §5.4 lets control frames come between the fragments of a message, and
    RFC 7692 compresses the message as a whole.  wsproto's PerMessageDeflate resets
    _inbound_compressed when any frame with FIN completes, a ping included; BoundedDeflate
    inherits that, so the continuation after the ping is taken as uncompressed and the valid
    message is closed with 1007 (and BoundedDeflate also zeroes _inflated on the ping)."""
    from test_websocket_protocol import (
        DEFLATE_OFFER,
        OP_CONT,
        OP_PING,
        OP_PONG,
        OP_TEXT,
        RSV1,
        connected,
        deflate,
        echo_app,
        frame,
    )

    app, _ = echo_app()
    async with connected(app) as client:
        await client.open(DEFLATE_OFFER)
        payload = deflate(b"hello, compressed world")
        await client.send(
            frame(OP_TEXT, payload[:5], fin=False, rsv=RSV1)
            + frame(OP_PING, b"p")
            + frame(OP_CONT, payload[5:])
        )
        pong = await client.recv_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"p")
        assert await client.recv_message() == "hello, compressed world"
