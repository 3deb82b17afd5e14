"""Test an app in memory, through the real connection code, without sockets.

::

    async def test_echo() -> None:
        async with TestClient(app) as client:
            response = await client.get("/echo/hi")
            assert response.status == 200 and response.body == b"hi"

:class:`TestClient` speaks HTTP/1.1 with an h11 client over ``trio.testing.memory_stream_pair``
to an :class:`~trio_http.http11.HTTPConnection` running in a background task: every byte
goes through the same parsing, routing, compression and framing as on a socket.  Requests on
one client reuse one connection (keep-alive) until the server closes it; then the next request
opens a new one.  :meth:`TestClient.send_raw` sends arbitrary bytes on a fresh connection.

:meth:`TestClient.websocket` opens a WebSocket on a connection of its own, with wsproto as
the client::

    async with client.websocket("/echo") as ws:
        await ws.send("hi")
        assert await ws.receive() == "hi"

Every wait is bounded (``timeout``, 5 seconds by default): a server that does not answer makes
the test fail with :class:`trio.TooSlowError`, never hang.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType

import h11
import trio
import trio.testing

from .config import ServerConfig
from .headers import HeaderInput, Headers
from .http11 import HTTPConnection
from .http11.exchange import ExchangeApp
from .request import Handler
from .testing_websocket import TestWebSocket, WebSocketClosed, WebSocketRefused, open_websocket

__all__ = [
    "TestClient",
    "TestResponse",
    "TestWebSocket",
    "WebSocketClosed",
    "WebSocketRefused",
]

_CLIENT_ADDRESS = ("127.0.0.1", 50000)


@dataclass
class TestResponse:
    """A response as the client received it (body already decoded from chunked framing)."""

    __test__ = False  # not a pytest test class

    status: int
    reason: str
    headers: Headers
    body: bytes
    http_version: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class StreamedResponse:
    """A response whose body is read piece by piece with :meth:`iter_bytes`."""

    def __init__(self, client: TestClient, head: h11.Response) -> None:
        self._client = client
        self.status = head.status_code
        self.reason = head.reason.decode("latin-1")
        self.headers = Headers.from_raw(list(head.headers))
        self.http_version = head.http_version.decode("ascii")

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._client._next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._client._finish_cycle()
                return
            else:
                raise AssertionError(f"unexpected event {event!r}")


class TestClient:
    """An HTTP client wired to *app* in memory.  Use it as an async context manager."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: Handler | ExchangeApp, config: ServerConfig | None = None) -> None:
        self.app = app
        self.config = config or ServerConfig(access_log=False)
        self._exit_stack = AsyncExitStack()
        self._nursery: trio.Nursery | None = None
        self._stream: trio.abc.HalfCloseableStream | None = None
        self._conn: h11.Connection | None = None

    async def __aenter__(self) -> TestClient:
        self._nursery = await self._exit_stack.enter_async_context(trio.open_nursery())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self._disconnect()
        return await self._exit_stack.__aexit__(exc_type, exc, tb)

    def _open_connection(self) -> trio.abc.HalfCloseableStream:
        if self._nursery is None:
            raise RuntimeError("use 'async with TestClient(app) as client'")
        client_stream, server_stream = trio.testing.memory_stream_pair()
        connection = HTTPConnection(server_stream, self.app, self.config, client=_CLIENT_ADDRESS)
        self._nursery.start_soon(connection.run)
        return client_stream

    async def _disconnect(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
        self._stream = self._conn = None

    async def _next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        assert self._conn is not None and self._stream is not None
        while True:
            event = self._conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self._conn.receive_data(bytes(await self._stream.receive_some()))

    def _finish_cycle(self) -> None:
        assert self._conn is not None
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()
        else:
            # The server is closing: the next request closes this stream and opens another.
            self._conn = None

    async def _start(
        self,
        method: str,
        path: str,
        headers: HeaderInput | None,
        body: bytes | AsyncIterable[bytes],
    ) -> h11.Response:
        if self._conn is None or self._conn.our_state is not h11.IDLE:
            await self._disconnect()
            self._stream = self._open_connection()
            self._conn = h11.Connection(h11.CLIENT)
        assert self._stream is not None
        request_headers = Headers(headers)
        request_headers.setdefault("host", "testserver")
        if isinstance(body, bytes):
            if body or method in ("POST", "PUT"):
                request_headers.setdefault("content-length", str(len(body)))
        elif "content-length" not in request_headers:
            request_headers.setdefault("transfer-encoding", "chunked")
        send = self._conn.send
        data = send(h11.Request(method=method, target=path, headers=request_headers.raw))
        assert data is not None
        await self._stream.send_all(data)
        if isinstance(body, bytes):
            if body:
                await self._stream.send_all(send(h11.Data(data=body)) or b"")
        else:
            async for chunk in body:
                await self._stream.send_all(send(h11.Data(data=chunk)) or b"")
        await self._stream.send_all(send(h11.EndOfMessage()) or b"")
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                return event
            if not isinstance(event, h11.InformationalResponse):
                raise AssertionError(f"expected a response, got {event!r}")

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: HeaderInput | None = None,
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> TestResponse:
        """Send one request and return the complete response."""
        head = await self._start(method, path, headers, body)
        streamed = StreamedResponse(self, head)
        chunks = [chunk async for chunk in streamed.iter_bytes()]
        return TestResponse(
            streamed.status,
            streamed.reason,
            streamed.headers,
            b"".join(chunks),
            streamed.http_version,
        )

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        headers: HeaderInput | None = None,
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> AsyncIterator[StreamedResponse]:
        """Send one request; yield the response before its body has been read."""
        head = await self._start(method, path, headers, body)
        yield StreamedResponse(self, head)

    async def get(self, path: str, *, headers: HeaderInput | None = None) -> TestResponse:
        return await self.request("GET", path, headers=headers)

    async def head(self, path: str, *, headers: HeaderInput | None = None) -> TestResponse:
        return await self.request("HEAD", path, headers=headers)

    async def post(
        self,
        path: str,
        body: bytes | AsyncIterable[bytes] = b"",
        *,
        headers: HeaderInput | None = None,
    ) -> TestResponse:
        return await self.request("POST", path, headers=headers, body=body)

    async def put(
        self,
        path: str,
        body: bytes | AsyncIterable[bytes] = b"",
        *,
        headers: HeaderInput | None = None,
    ) -> TestResponse:
        return await self.request("PUT", path, headers=headers, body=body)

    async def delete(self, path: str, *, headers: HeaderInput | None = None) -> TestResponse:
        return await self.request("DELETE", path, headers=headers)

    @asynccontextmanager
    async def websocket(
        self,
        path: str,
        *,
        headers: HeaderInput | None = None,
        subprotocols: Iterable[str] = (),
        compression: bool = False,
        timeout: float = 5.0,
    ) -> AsyncIterator[TestWebSocket]:
        """Open a WebSocket to *path* on a new connection; yield it once the server accepted.

        *subprotocols* are offered in order; *compression* offers ``permessage-deflate``;
        *headers* are added to the handshake (``Host`` replaces ``testserver``).  A refusal
        (any answer but ``101``) raises :class:`WebSocketRefused` with its status, headers and
        body.  Leaving the block closes the WebSocket with ``1000`` if it is still open, then
        waits for the server's handler to finish: ``trio.TooSlowError`` if it has not within
        *timeout* seconds (it is cancelled then).  The same *timeout* bounds the handshake,
        each :meth:`~TestWebSocket.receive` and the close.
        """
        if self._nursery is None:
            raise RuntimeError("use 'async with TestClient(app) as client'")
        # The server's connection and the client's reader run in the client's nursery (so an
        # exception of the block propagates as it is), each in a cancel scope of this block.
        client_stream, server_stream = trio.testing.memory_stream_pair()
        connection = HTTPConnection(server_stream, self.app, self.config, client=_CLIENT_ADDRESS)
        server_scope, reader_scope = trio.CancelScope(), trio.CancelScope()
        server_done = trio.Event()

        async def serve() -> None:
            try:
                with server_scope:
                    await connection.run()
            finally:
                server_done.set()

        def stop() -> None:
            server_scope.cancel()
            reader_scope.cancel()

        self._nursery.start_soon(serve)
        try:
            websocket = await open_websocket(
                client_stream, path, headers, subprotocols, compression, timeout
            )
        except BaseException:
            stop()
            await trio.aclose_forcefully(client_stream)
            raise

        async def read() -> None:
            with reader_scope:
                await websocket._read()

        self._nursery.start_soon(read)
        try:
            yield websocket
        except BaseException:
            # The block failed (or was cancelled): stop the server's side, drop the connection.
            stop()
            await trio.aclose_forcefully(client_stream)
            raise
        try:
            await websocket.close()
            with trio.move_on_after(timeout):
                await server_done.wait()
        finally:
            stop()
            await trio.aclose_forcefully(client_stream)
        if not server_done.is_set():
            raise trio.TooSlowError(
                f"the server's handler for the WebSocket {path} was still running"
                f" {timeout} s after the close; it was cancelled"
            )

    async def send_raw(self, data: bytes, *, half_close: bool = True) -> bytes:
        """Send *data* on a new connection and return everything the server sends back.

        Reads until the server closes the connection.  With *half_close* the client sends
        EOF after *data*, as ``printf ... | nc`` would.
        """
        stream = self._open_connection()
        try:
            await stream.send_all(data)
            if half_close:
                await stream.send_eof()
            received = bytearray()
            while chunk := await stream.receive_some():
                received += chunk
            return bytes(received)
        finally:
            await stream.aclose()
