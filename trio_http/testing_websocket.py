"""The WebSocket half of :mod:`trio_http.testing`: a wsproto client for
:meth:`TestClient.websocket <trio_http.testing.TestClient.websocket>`.

:func:`open_websocket` does the opening handshake on a stream and returns a
:class:`TestWebSocket`, or raises :class:`WebSocketRefused` with the server's answer.  The
:class:`TestWebSocket` reads in a background task (:meth:`TestWebSocket._read`, started by the
client), as a browser does: pings and the server's close are answered at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    TextMessage,
)
from wsproto.events import Request as WSRequest
from wsproto.extensions import PerMessageDeflate

from .headers import HeaderInput, Headers
from .websocket.session import WebSocketClosed

__all__ = ["TestWebSocket", "WebSocketClosed", "WebSocketRefused", "open_websocket"]


class WebSocketRefused(Exception):
    """The server answered a WebSocket handshake with *status* instead of ``101``."""

    def __init__(self, path: str, status: int, headers: Headers, body: bytes) -> None:
        super().__init__(path, status)
        self.path = path
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def __str__(self) -> str:
        body = self.body[:200].decode("utf-8", "replace").strip()
        return f"the server refused the WebSocket at {self.path} with {self.status}: {body!r}"


WebSocketData = str | bytes


class TestWebSocket:
    """The client side of a WebSocket opened by :meth:`TestClient.websocket`.

    A background task reads from the server all the time, as a browser does: it answers pings
    and the server's close at once, and queues the messages (without limit) for
    :meth:`receive`.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        path: str,
        stream: trio.abc.Stream,
        protocol: WSConnection,
        accepted: AcceptConnection,
        timeout: float,
    ) -> None:
        self.path = path
        #: The subprotocol the server chose, if any.
        self.subprotocol: str | None = accepted.subprotocol
        #: The ``101``'s header fields, without those of the handshake itself (``Upgrade``,
        #: ``Connection``, ``Sec-WebSocket-*``).
        self.headers = Headers.from_raw([(bytes(n), bytes(v)) for n, v in accepted.extra_headers])
        #: The names of the extensions the server accepted (``permessage-deflate``).
        self.extensions = [extension.name for extension in accepted.extensions]
        #: The code of the close frame received (sent, if the server never answered ours);
        #: ``1006`` if the connection was lost without one; ``None`` while open.
        self.close_code: int | None = None
        self.close_reason = ""
        #: How long :meth:`receive` and :meth:`close` wait before raising ``trio.TooSlowError``.
        self.timeout = timeout
        self._stream = stream
        self._protocol = protocol
        self._send_lock = trio.Lock()
        self._inbox_writer, self._inbox = trio.open_memory_channel[WebSocketData](math.inf)
        self._parts: list[WebSocketData] = []
        self._closed = trio.Event()  # a close frame was received, or the connection lost
        self._eof = trio.Event()  # the server closed the connection

    # ---------------------------------------------------------------- the API

    async def send(self, data: WebSocketData) -> None:
        """Send a text (``str``) or binary (``bytes``) message.  Raises
        :class:`~trio_http.websocket.WebSocketClosed` once the WebSocket is closed."""
        if self._protocol.state is not ConnectionState.OPEN:
            raise WebSocketClosed(self.close_code or 1006, self.close_reason)
        if isinstance(data, str):
            await self._send(TextMessage(data=data))
        else:
            await self._send(BytesMessage(data=bytes(data)))

    async def receive(self, *, timeout: float | None = None) -> WebSocketData:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Raises :class:`~trio_http.websocket.WebSocketClosed` (with the server's ``code`` and
        ``reason``) once the WebSocket is closed and every message before the close has been
        received, and ``trio.TooSlowError`` if no message comes within *timeout* seconds
        (``self.timeout`` by default).
        """
        wait = self.timeout if timeout is None else timeout
        with trio.move_on_after(wait):
            try:
                return await self._inbox.receive()
            except trio.EndOfChannel:
                raise WebSocketClosed(self.close_code or 1006, self.close_reason) from None
        raise trio.TooSlowError(f"no WebSocket message from {self.path} within {wait} s")

    async def receive_text(self, *, timeout: float | None = None) -> str:
        """:meth:`receive` a message that must be text (``AssertionError`` if binary)."""
        message = await self.receive(timeout=timeout)
        assert isinstance(message, str), f"expected a text message, got {message!r}"
        return message

    async def receive_bytes(self, *, timeout: float | None = None) -> bytes:
        """:meth:`receive` a message that must be binary (``AssertionError`` if text)."""
        message = await self.receive(timeout=timeout)
        assert isinstance(message, bytes), f"expected a binary message, got {message!r}"
        return message

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and wait for the server's.  Does nothing once closed; raises
        ``trio.TooSlowError`` if the server does not answer within ``self.timeout``."""
        if self._protocol.state is ConnectionState.OPEN:
            await self._send(CloseConnection(code=code, reason=reason or None))
            if self.close_code is None:
                self.close_code, self.close_reason = code, reason
        with trio.move_on_after(self.timeout):
            await self._closed.wait()
            return
        raise trio.TooSlowError(
            f"the server did not answer the close of the WebSocket {self.path}"
            f" within {self.timeout} s"
        )

    @property
    def closed(self) -> bool:
        """Whether the WebSocket is closed (a close frame received or the connection lost)."""
        return self._closed.is_set()

    def __aiter__(self) -> TestWebSocket:
        return self

    async def __anext__(self) -> WebSocketData:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None

    # ---------------------------------------------------------------- the reader

    async def _read(self) -> None:
        """Feed wsproto until the server closes the connection."""
        try:
            while data := await self._stream.receive_some():
                if self._protocol.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
                    self._protocol.receive_data(bytes(data))
                    await self._handle(self._protocol.events())
                # (After the close handshake, whatever else comes is ignored.)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._eof.set()
            self._lost()

    async def _handle(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, (TextMessage, BytesMessage)):
                data = event.data
                self._parts.append(data if isinstance(data, str) else bytes(data))
                if event.message_finished:
                    parts, self._parts = self._parts, []
                    if isinstance(parts[0], str):
                        message: WebSocketData = "".join(p for p in parts if isinstance(p, str))
                    else:
                        message = b"".join(p for p in parts if isinstance(p, bytes))
                    self._inbox_writer.send_nowait(message)
            elif isinstance(event, Ping):
                await self._send(event.response(), quiet=True)
            elif isinstance(event, CloseConnection):
                await self._on_close(event)

    async def _on_close(self, event: CloseConnection) -> None:
        state = self._protocol.state
        if state is ConnectionState.REMOTE_CLOSING:  # the server began: answer
            self.close_code, self.close_reason = int(event.code), event.reason or ""
            await self._send(event.response(), quiet=True)
        elif state is ConnectionState.CLOSED:  # the server's answer to our close
            self.close_code, self.close_reason = int(event.code), event.reason or ""
        else:  # wsproto found the server breaking the protocol: say so, and close
            self.close_code = int(event.code)
            self.close_reason = f"the server broke the WebSocket protocol: {event.reason}"
            await self._send(CloseConnection(code=event.code), quiet=True)
        self._closed.set()
        self._inbox_writer.close()

    def _lost(self) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, "the connection was lost"
        self._closed.set()
        self._inbox_writer.close()

    async def _send(self, event: Event, *, quiet: bool = False) -> None:
        data = self._protocol.send(event)
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._lost()
                if not quiet:
                    raise WebSocketClosed(self.close_code or 1006, self.close_reason) from None


async def open_websocket(
    stream: trio.abc.Stream,
    path: str,
    headers: HeaderInput | None,
    subprotocols: Iterable[str],
    compression: bool,
    timeout: float,
) -> TestWebSocket:
    """Send the opening handshake for *path*; the open WebSocket, or WebSocketRefused."""
    extra = Headers(headers)
    host = extra.get("host") or "testserver"
    extra.remove("host")
    protocol = WSConnection(ConnectionType.CLIENT)
    request = WSRequest(
        host=host,
        target=path,
        subprotocols=list(subprotocols),
        extensions=[PerMessageDeflate()] if compression else [],
        extra_headers=extra.raw,
    )
    await stream.send_all(protocol.send(request))
    refusal: RejectConnection | None = None
    body = bytearray()
    with trio.move_on_after(timeout):
        while data := await stream.receive_some():
            protocol.receive_data(bytes(data))
            events = list(protocol.events())
            for index, event in enumerate(events):
                if isinstance(event, AcceptConnection):
                    websocket = TestWebSocket(path, stream, protocol, event, timeout)
                    await websocket._handle(events[index + 1 :])  # frames right after the 101
                    return websocket
                if isinstance(event, RejectConnection):
                    refusal = event
                elif isinstance(event, RejectData):
                    body += event.data
                if refusal is not None and (
                    not refusal.has_body or (isinstance(event, RejectData) and event.body_finished)
                ):
                    raw = [(bytes(name), bytes(value)) for name, value in refusal.headers]
                    raise WebSocketRefused(
                        path, refusal.status_code, Headers.from_raw(raw), bytes(body)
                    )
        raise ConnectionError(
            f"the server closed the connection: no answer to the handshake for {path}"
        )
    raise trio.TooSlowError(f"no answer to the WebSocket handshake for {path} within {timeout} s")
