"""One WebSocket after its handshake: wsproto for the frames, small tasks around it.

A :class:`WebSocket` runs, beside the application's code:

- a **reader** that feeds wsproto, answers pings, completes the close handshake and queues whole
  messages (at most ``queue_size``: an application that stops receiving stops the reading, and
  TCP slows the client down; memory stays bounded);
- a **ping** every ``ping_interval``, which closes with ``1011`` a peer that does not answer
  within ``ping_timeout`` (so an idle socket is bounded too): started by the shared timer of
  timer.py, so no task of an idle WebSocket waits for it;
- a **goodbye** that closes with ``1001`` when the server shuts down (started then, by the
  stream's ``on_going_away`` callback).  An idle WebSocket has one task here, the reader.

Violations close with the RFC 6455 codes: wsproto reports ``1002`` (protocol error) and ``1007``
(invalid UTF-8); a message over ``max_size`` (counted inflated, see deflate.py) gives ``1009``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from typing import Literal

import trio
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

from ..headers import HeaderInput, Headers
from ..http11.head import peer_name
from ..request import Request
from . import timer
from .deflate import BoundedDeflate
from .handshake import Offer, accept_fields
from .settings import WebSocketSettings

__all__ = ["WebSocket", "WebSocketClosed", "WebSocketSettings"]

log = logging.getLogger("trio_http.error")

Data = str | bytes
State = Literal["connecting", "open", "closing", "closed"]
#: Bytes read from the socket at a time (also bounds what one read can inflate to).  256 KiB,
#: as asyncio reads: a 1 MiB message in 4 reads rather than 16, each a round through wsproto.
READ_SIZE = 256 * 1024


class WebSocketClosed(Exception):
    """The WebSocket is closed: by the peer, by us, or because the connection was lost
    (``1006``).  Raised by :meth:`WebSocket.receive` and :meth:`WebSocket.send`."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket closed ({self.code}{': ' + self.reason if self.reason else ''})"


class _Inbox:
    """Whole messages the reader has queued and the application has not received: at most
    *size*, then :meth:`put` waits (an application that stops receiving stops the reading).

    What a trio memory channel did here, without its exception (``WouldBlock``) and its
    scheduler round per message: a message goes straight to a waiting receiver.
    """

    __slots__ = ("_arrived", "_messages", "_room", "_size", "ended")

    def __init__(self, size: int) -> None:
        # A list, not a deque: an empty deque is 600 bytes per idle WebSocket, and pop(0)
        # moves at most queue_size pointers.
        self._messages: list[Data] = []
        self._size = size
        self._arrived = trio.lowlevel.ParkingLot()  # receivers waiting for a message
        self._room = trio.lowlevel.ParkingLot()  # the reader waiting for room
        #: No more messages will be queued; receivers get what is left, then EndOfChannel.
        self.ended = False

    async def put(self, message: Data) -> None:
        """Queue *message* (dropped once ended), waiting while the inbox is full."""
        while len(self._messages) >= self._size and not self.ended:
            await self._room.park()
        if not self.ended:
            self._messages.append(message)
            if self._arrived:
                self._arrived.unpark()

    async def get(self) -> Data:
        """The next message.  Raises ``trio.EndOfChannel`` once ended and empty."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._messages:
            if self.ended:
                raise trio.EndOfChannel
            await self._arrived.park()
        if self._room:
            self._room.unpark()
        return self._messages.pop(0)

    def end(self, *, discard: bool = False) -> None:
        """Queue nothing more; with *discard*, drop what is queued too."""
        self.ended = True
        if discard:
            self._messages.clear()
        self._arrived.unpark_all()
        self._room.unpark_all()


class WebSocket:
    """A WebSocket for a handler: :meth:`accept` it (or return a response instead), then
    :meth:`receive` and :meth:`send` messages (``str`` for text, ``bytes`` for binary),
    ``async for`` over the messages, and :meth:`close`."""

    def __init__(
        self, request: Request, offer: Offer, settings: WebSocketSettings, nursery: trio.Nursery
    ) -> None:
        self.request = request
        self.headers = request.headers
        self.path_params = request.path_params
        #: The subprotocols the client offered, most preferred first.
        self.subprotocols = offer.subprotocols
        #: The subprotocol accepted, if any.
        self.subprotocol: str | None = None
        self.state: State = "connecting"
        #: Set once closed: the code and reason (1006 when the connection was lost).
        self.close_code: int | None = None
        self.close_reason = ""
        self.messages_in = self.bytes_in = self.messages_out = self.bytes_out = 0
        self._offer = offer
        self._settings = settings
        self._nursery = nursery
        self._stream: trio.abc.Stream | None = None
        self._protocol = Connection(ConnectionType.SERVER)
        self._sending = False  # a frame is being written (one at a time on the wire)
        self._send_turn = trio.lowlevel.ParkingLot()  # senders waiting for it to end
        self._inbox = _Inbox(settings.queue_size)
        self._closed = trio.Event()
        self._pong: trio.Event | None = None  # made per ping (an Event per idle WebSocket)
        self._ping_payload = b""

    # ---------------------------------------------------------------- the API

    async def accept(
        self, subprotocol: str | None = None, headers: HeaderInput | None = None
    ) -> None:
        """Send the ``101`` and start the WebSocket, with *subprotocol* (one the client
        offered: ``ValueError`` otherwise) and extra *headers*."""
        if self.state != "connecting":
            raise RuntimeError("the WebSocket has already been accepted")
        extension, answer = self._negotiate_deflate()
        fields = accept_fields(self._offer, subprotocol=subprotocol, extension=answer)
        fields += Headers(headers).raw
        self._stream = await self.request.upgrade(fields)
        self._protocol = Connection(ConnectionType.SERVER, [extension] if extension else [])
        self.subprotocol = subprotocol
        self.state = "open"
        # Constant task names: trio formats one per task otherwise (memory per WebSocket).
        self._nursery.start_soon(self._read, name="websocket reader")
        self._schedule_ping()
        on_going_away = getattr(self._stream, "on_going_away", None)
        if on_going_away is not None:  # an UpgradedStream: no task waits for the shutdown
            on_going_away(self._going_away)
        elif isinstance(going_away := getattr(self._stream, "going_away", None), trio.Event):
            self._nursery.start_soon(self._goodbye, going_away, name="websocket goodbye")

    async def receive(self) -> Data:
        """The next message.  Raises :class:`WebSocketClosed` once the WebSocket is closed."""
        if self.state == "connecting":
            raise RuntimeError("accept the WebSocket before receiving")
        try:
            return await self._inbox.get()
        except trio.EndOfChannel:
            raise WebSocketClosed(self.close_code or 1006, self.close_reason) from None

    async def send(self, data: Data) -> None:
        """Send a message: text for ``str``, binary for ``bytes``.  Waits while the client
        does not read (the send buffer is the socket's).  Raises :class:`WebSocketClosed`."""
        if self.state != "open":
            if self.state == "connecting":
                raise RuntimeError("accept the WebSocket before sending")
            raise WebSocketClosed(self.close_code or 1006, self.close_reason)
        await self._send(
            TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=bytes(data))
        )
        self.messages_out += 1
        self.bytes_out += _size(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake and wait (``close_timeout`` at most) for the peer's."""
        if self.state in ("connecting", "closing", "closed"):
            if self.state == "connecting":
                raise RuntimeError("not accepted: return a response to refuse a WebSocket")
            await self._closed.wait()
            return
        self.state = "closing"
        self.close_code, self.close_reason = code, reason
        self._inbox.end(discard=True)  # the reader drops messages from now on
        with trio.move_on_after(self._settings.close_timeout):
            with contextlib.suppress(WebSocketClosed):  # already lost: nothing to wait for
                await self._send(CloseConnection(code=code, reason=reason or None))
                await self._closed.wait()
        await self._finish()

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> Data:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None

    # ---------------------------------------------------------------- the tasks

    def _negotiate_deflate(self) -> tuple[BoundedDeflate | None, str | None]:
        if not self._settings.compression:
            return None, None
        for offer in self._offer.extensions:
            extension = BoundedDeflate(self._settings.max_size)
            if offer.split(";")[0].strip() != extension.name:
                continue
            accepted = extension.accept(offer)
            if accepted is None or accepted is False:
                continue
            params = accepted if isinstance(accepted, str) else ""
            return extension, f"{extension.name}; {params}" if params else extension.name
        return None, None

    async def _read(self) -> None:
        """Feed wsproto until the WebSocket is closed; queue whole messages."""
        assert self._stream is not None
        parts: list[str | bytes | bytearray] = []  # (a message's frames: joined once)
        size = 0
        try:
            while self.state != "closed":
                data = bytes(await self._stream.receive_some(READ_SIZE))
                self._protocol.receive_data(data or None)
                if not data:
                    self._lost("the client closed the connection without a close frame")
                    return
                for event in self._protocol.events():
                    if isinstance(event, (TextMessage, BytesMessage)):
                        part = event.data
                        parts.append(part)
                        size += _size(part) if isinstance(part, str) else len(part)
                        if size > self._settings.max_size:
                            await self._fail(1009, "message too big")
                            return
                        if event.message_finished:
                            await self._deliver(parts, size)
                            parts, size = [], 0
                    elif isinstance(event, Ping):
                        if self._protocol.state is ConnectionState.OPEN:  # not once closing
                            await self._send(event.response())
                    elif isinstance(event, Pong):
                        if self._pong is not None and event.payload == self._ping_payload:
                            self._pong.set()
                    elif isinstance(event, CloseConnection):
                        await self._on_close(event)
                        return
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, WebSocketClosed):
            self._lost("the connection was lost")

    async def _deliver(self, parts: list[str | bytes | bytearray], size: int) -> None:
        message: Data
        first = parts[0]
        if isinstance(first, str):
            message = first if len(parts) == 1 else "".join(p for p in parts if isinstance(p, str))
        else:  # one copy of the payload, whatever the number of frames
            message = bytes(first) if len(parts) == 1 else b"".join(parts)  # type: ignore[arg-type]
        self.messages_in += 1
        self.bytes_in += size
        await self._inbox.put(message)  # (closing: nobody will receive it, it is dropped)

    async def _on_close(self, event: CloseConnection) -> None:
        state = self._protocol.state
        if self.close_code is None:
            self.close_code, self.close_reason = int(event.code), event.reason or ""
        if state is ConnectionState.REMOTE_CLOSING:  # the peer began: answer its close
            self.state = "closing"
            # Bounded: a peer that sent its close and stopped reading must not hold us.
            with trio.move_on_after(self._settings.close_timeout):
                with contextlib.suppress(WebSocketClosed):  # it may have hung up already
                    await self._send(event.response())
        elif state is ConnectionState.OPEN:  # wsproto found a violation (1002, 1007, ...)
            self.close_code, self.close_reason = int(event.code), event.reason or ""
            with trio.move_on_after(1), contextlib.suppress(WebSocketClosed):
                await self._send(CloseConnection(code=event.code, reason=event.reason))
        # (CLOSED: the peer's answer to our own close.)
        await self._finish()

    def _schedule_ping(self) -> None:
        """The next ping in ``ping_interval``, by the shared timer (no task waits for it)."""
        if self._settings.ping_interval is not None:
            timer.call_at(trio.current_time() + self._settings.ping_interval, self, "_ping_due")

    def _ping_due(self) -> None:
        """Called by the timer, which must not fail."""
        if self.state == "open":
            with contextlib.suppress(RuntimeError):  # the handler's nursery is already closed
                self._nursery.start_soon(self._ping, name="websocket ping")

    async def _ping(self) -> None:
        """Ping; close with ``1011`` if no answer comes within ``ping_timeout``, else schedule
        the next ping."""
        timeout = self._settings.ping_timeout
        self._pong = pong = trio.Event()
        self._ping_payload = os.urandom(4)
        # The send is inside the timeout too: a peer that stops reading blocks it.
        with trio.move_on_after(math.inf if timeout is None else timeout):
            try:
                await self._send(Ping(payload=self._ping_payload))
            except WebSocketClosed:
                return
            await pong.wait()
            self._pong = None
            self._schedule_ping()
            return
        log.info("%s: no answer to a WebSocket ping in %ss: closing", self._peer(), timeout)
        await self._fail(1011, "ping timeout")

    def _going_away(self) -> None:
        """The server shuts down (called by the draining task, which must not fail)."""
        if self.state == "open":
            with contextlib.suppress(RuntimeError):  # the handler's nursery is already closed
                self._nursery.start_soon(self._goodbye, None, name="websocket goodbye")

    async def _goodbye(self, going_away: trio.Event | None) -> None:
        if going_away is not None:
            await going_away.wait()
        if self.state == "open":
            with contextlib.suppress(WebSocketClosed):
                await self.close(1001, "server shutting down")

    # ---------------------------------------------------------------- helpers

    async def _send(self, event: Event) -> None:
        assert self._stream is not None
        try:
            data = self._protocol.send(event)
        except LocalProtocolError:  # the state moved on (the peer closed) since the caller looked
            raise WebSocketClosed(self.close_code or 1006, self.close_reason) from None
        # One frame at a time: wait only while another send is blocked mid-frame (a trio.Lock
        # cost a scheduler round, or its bookkeeping, per message: bench/ab_cpu.py).
        while self._sending:
            await self._send_turn.park()
        self._sending = True
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self._lost("the connection was lost")
            raise WebSocketClosed(self.close_code or 1006, self.close_reason) from None
        finally:
            self._sending = False
            if self._send_turn:
                self._send_turn.unpark()

    async def _fail(self, code: int, reason: str) -> None:
        """Close at once after a violation or a timeout: send the code, don't wait long."""
        self.state = "closing"
        self.close_code, self.close_reason = code, reason
        self._inbox.end()
        with trio.move_on_after(1):
            with contextlib.suppress(WebSocketClosed):
                await self._send(CloseConnection(code=code, reason=reason))
        await self._finish()

    def _lost(self, why: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, why
        self.state = "closed"
        self._closed.set()
        self._inbox.end()

    async def _finish(self) -> None:
        self.state = "closed"
        self._closed.set()
        self._inbox.end()
        if self._stream is not None:
            await trio.aclose_forcefully(self._stream)

    def _peer(self) -> str:
        return peer_name(self.request.client)


def _size(data: Data) -> int:
    """Bytes on the wire (UTF-8 for text): what max_size and the access log count."""
    if isinstance(data, bytes):
        return len(data)
    return len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))
