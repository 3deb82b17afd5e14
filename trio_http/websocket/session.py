"""One WebSocket after its handshake: wsproto for the frames, the application's tasks for I/O.

No task of the WebSocket reads the socket: **whichever task waits for input reads it** (the
application in :meth:`receive`, :meth:`close` waiting for the peer's close, a ping waiting for
its pong), one at a time, the others woken after each read (:meth:`WebSocket._read_until`);
whoever reads answers pings and the close.  An idle WebSocket is one task, the application's
(bench ws-idle).  Besides: a **standby reader** when nobody has read for ``STANDBY_DELAY``
(until another task waits to read or ``queue_size`` messages wait); a **ping** every
``ping_interval`` (no answer within ``ping_timeout``: ``1011``), both started by the shared
timer of timer.py; a **goodbye** (``1001``) when the server shuts down.  Violations close with
RFC 6455's codes: ``1002``, ``1007`` (wsproto), ``1009`` over ``max_size`` (counted inflated).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from contextlib import suppress
from typing import Literal

import trio
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError

from ..headers import HeaderInput, Headers
from ..http11.head import peer_name
from ..request import Request
from . import timer
from .deflate import negotiate_deflate
from .handshake import Offer, accept_fields
from .messages import Data, WebSocketClosed, join_message, message_size
from .sending import SendTurn, answering
from .settings import WebSocketSettings

__all__ = ["WebSocket", "WebSocketClosed", "WebSocketSettings"]

log = logging.getLogger("trio_http.error")

State = Literal["connecting", "open", "closing", "closed"]
#: Bytes read from the socket at a time (also bounds what one read can inflate to).  256 KiB,
#: as asyncio reads: a 1 MiB message in 4 reads rather than 16, each a round through wsproto.
READ_SIZE = 256 * 1024
#: How long nobody may read before a standby reader starts (see the module's docstring).
STANDBY_DELAY = 0.5

_LOST = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class WebSocket:
    """A WebSocket for a handler: :meth:`accept` it (or return a response instead), then
    :meth:`receive` and :meth:`send` messages (``str`` for text, ``bytes`` for binary),
    ``async for`` over the messages, and :meth:`close`."""

    # Slots, and parking lots made only when a task has to wait: memory per idle WebSocket.
    __slots__ = (
        "__weakref__", "_ended", "_messages", "_nursery", "_offer", "_parts", "_pending",
        "_ping_payload", "_pong", "_pong_owed", "_protocol", "_read_done", "_reading",
        "_settings", "_size", "_standby", "_stream", "_turn", "bytes_in", "bytes_out",
        "close_code", "close_reason", "headers", "messages_in", "messages_out", "path_params",
        "request", "state", "subprotocol", "subprotocols",
    )  # fmt: skip

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
        self._messages: list[Data] = []  # whole messages read, not yet received
        self._ended = False  # no more messages will be queued (closing or closed)
        self._parts: list[str | bytes | bytearray] = []  # the frames of a message (joined once)
        self._size = 0  # their size
        self._reading = False  # a task is reading the socket
        self._read_done: trio.lowlevel.ParkingLot | None = None  # tasks waiting for that read
        self._standby = 0  # 1: a standby reader is due (timer), 2: it runs
        self._pong: bool | None = None  # a ping waits for its answer (None: no ping waits)
        self._ping_payload = b""
        self._pong_owed: Ping | None = None  # a ping to answer after the send in progress
        self._pending = False  # wsproto may hold events not taken yet (the inbox was full)
        self._turn = SendTurn()  # one frame at a time on the wire

    # ---------------------------------------------------------------- the API

    async def accept(
        self, subprotocol: str | None = None, headers: HeaderInput | None = None
    ) -> None:
        """Send the ``101`` and start the WebSocket, with *subprotocol* (one the client
        offered: ``ValueError`` otherwise) and extra *headers*."""
        if self.state != "connecting":
            raise RuntimeError("the WebSocket has already been accepted")
        offers = self._offer.extensions if self._settings.compression else ()
        extension, answer = negotiate_deflate(offers, self._settings.max_size)
        fields = accept_fields(self._offer, subprotocol=subprotocol, extension=answer)
        fields += Headers(headers).raw
        self._stream = await self.request.upgrade(fields)
        self._protocol = Connection(ConnectionType.SERVER, [extension] if extension else [])
        self.subprotocol = subprotocol
        self.state = "open"
        self._schedule_ping()
        self._watch_reading()  # (an application that never receives gets the standby)
        on_going_away = getattr(self._stream, "on_going_away", None)
        if on_going_away is not None:  # (UpgradedStream's): no task waits for the shutdown
            on_going_away(self._going_away)

    async def receive(self) -> Data:
        """The next message.  Raises :class:`WebSocketClosed` once the WebSocket is closed."""
        if self.state == "connecting":
            raise RuntimeError("accept the WebSocket before receiving")
        if self._messages:
            await trio.lowlevel.checkpoint_if_cancelled()
            self._watch_reading()
        else:
            await self._read_until(lambda: bool(self._messages) or self._ended)
        if self._messages:
            return self._messages.pop(0)
        raise WebSocketClosed(self.close_code or 1006, self.close_reason)

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
        self.bytes_out += message_size(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake and wait (``close_timeout`` at most) for the peer's."""
        if self.state == "connecting":
            raise RuntimeError("not accepted: return a response to refuse a WebSocket")
        closing = self.state == "open"
        if closing:
            self.state = "closing"
            self.close_code, self.close_reason = code, reason
            self._end(discard=True)  # messages read from now on are dropped
        try:  # (a close in progress elsewhere is waited for, as long at most)
            with trio.move_on_after(self._settings.close_timeout), suppress(WebSocketClosed):
                if closing:
                    await self._send(CloseConnection(code=code, reason=reason or None))
                await self._read_until(lambda: False)  # (until closed)
        finally:  # even cancelled: a WebSocket left "closing" would wait forever
            with trio.CancelScope(shield=True):
                await self._finish()

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> Data:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None

    # ---------------------------------------------------------------- reading

    async def _read_until(self, done: Callable[[], bool], *, hand_over: bool = False) -> None:
        """Read and handle the peer's input until ``done()`` or the close; while another task
        reads (or ``queue_size`` messages wait), wait for it.  *hand_over*: return too once
        another task waits to read.  Only the wait for bytes is cancellable; the answers owed
        are shielded (answering), so no frame is lost or half-answered."""
        while not done() and self.state != "closed":
            if self._reading or self._inbox_full():
                if self._read_done is None:
                    self._read_done = trio.lowlevel.ParkingLot()
                await self._read_done.park()
                continue
            assert self._stream is not None
            self._reading = True
            try:
                if self._pending:  # events a full inbox left in wsproto's buffer first
                    await self._take_events()
                else:
                    try:
                        data: bytes | None = bytes(await self._stream.receive_some(READ_SIZE))
                    except _LOST:
                        data = None
                    await self._handle(data)  # (every wait in it is shielded)
            finally:
                self._reading = False
                others_wait = self._wake_readers()  # (cancelled: one of them reads instead)
                self._watch_reading()
            if hand_over and others_wait:
                return

    def _wake_readers(self) -> bool:
        """Wake the tasks waiting for a read; returns whether there were any."""
        waiting, self._read_done = self._read_done, None
        if waiting:
            waiting.unpark_all()
            return True
        return False

    async def _handle(self, data: bytes | None) -> None:
        """Feed *data* (``None``: the connection was lost) to wsproto and act on its events
        (each wait shielded alone: a shield around it all cost 25 % a message)."""
        if data is None:
            self._lost("the connection was lost")
            return
        self._protocol.receive_data(data or None)
        if not data:
            self._lost("the client closed the connection without a close frame")
            return
        await self._take_events()

    async def _take_events(self) -> None:  # (stops at a full inbox: the rest waits in wsproto)
        self._pending = False
        try:
            for event in self._protocol.events():
                if isinstance(event, (TextMessage, BytesMessage)):
                    part = event.data
                    self._parts.append(part)
                    self._size += message_size(part)
                    if self._size > self._settings.max_size:
                        await self._fail(1009, "message too big")
                        return
                    if event.message_finished:
                        self._deliver()
                        if self._inbox_full():
                            self._pending = True
                            return
                elif isinstance(event, Ping):
                    if self._protocol.state is not ConnectionState.OPEN:
                        continue  # (not once closing)
                    if self._turn.busy:  # a big message to a slow client: the reader won't wait
                        if self._pong_owed is None:  # (else that task sends this one's answer)
                            with suppress(RuntimeError):  # the nursery is closed
                                self._nursery.start_soon(self._pong_back, name="websocket pong")
                        self._pong_owed = event  # only the latest is answered (RFC 6455 §5.5.3)
                        continue
                    with answering(self._settings.close_timeout) as waited:
                        await self._send(event.response())
                    if waited.cancelled_caught:  # the peer does not read at all
                        self._lost("the client does not read")
                        await self._finish()
                        return
                elif isinstance(event, Pong):
                    if self._pong is not None and event.payload == self._ping_payload:
                        self._pong = True
                elif isinstance(event, CloseConnection):
                    await self._on_close(event)
                    return
        except WebSocketClosed:
            pass  # the connection was lost while answering (_send said so)

    def _deliver(self) -> None:
        message = join_message(self._parts)
        self.messages_in += 1
        self.bytes_in += self._size
        self._parts, self._size = [], 0
        if not self._ended:  # (closing: nobody will receive it, it is dropped)
            self._messages.append(message)

    async def _on_close(self, event: CloseConnection) -> None:
        state = self._protocol.state
        if self.close_code is None:
            self.close_code, self.close_reason = int(event.code), event.reason or ""
        if state is ConnectionState.REMOTE_CLOSING:  # the peer began: answer its close
            self.state = "closing"
            self._end()
            with answering(self._settings.close_timeout), suppress(WebSocketClosed):
                await self._send(event.response())  # (it may have hung up already)
        elif state is ConnectionState.OPEN:  # wsproto found a violation (1002, 1007, ...)
            self.close_code, self.close_reason = int(event.code), event.reason or ""
            self._end()
            with answering(1), suppress(WebSocketClosed):
                await self._send(CloseConnection(code=event.code, reason=event.reason))
        # (CLOSED: the peer's answer to our own close.)
        await self._finish()

    def _watch_reading(self) -> None:
        """Look in ``STANDBY_DELAY`` whether anyone reads (one timer entry at a time)."""
        if not self._standby and self.state == "open":
            self._standby = 1
            timer.call_at(trio.current_time() + STANDBY_DELAY, self, "_standby_due")

    def _standby_due(self) -> None:
        """By the timer (must not fail): the standby reader, if nobody reads and there is room."""
        self._standby = 0
        if self.state == "open" and not self._reading and not self._inbox_full():
            with suppress(RuntimeError):  # the handler's nursery is already closed
                self._nursery.start_soon(self._read_on_standby, name="websocket reader")
                self._standby = 2

    async def _read_on_standby(self) -> None:
        """Read for an application that does not, until another task waits to read or is full."""
        try:
            await self._read_until(lambda: self._inbox_full() or self._ended, hand_over=True)
        finally:
            self._standby = 0
            self._watch_reading()  # (the task it handed over to may not come back)

    def _inbox_full(self) -> bool:
        return len(self._messages) >= self._settings.queue_size

    # ---------------------------------------------------------------- pings and goodbye

    def _schedule_ping(self) -> None:
        """The next ping in ``ping_interval``, by the shared timer (no task waits for it)."""
        if self._settings.ping_interval is not None:
            timer.call_at(trio.current_time() + self._settings.ping_interval, self, "_ping_due")

    def _ping_due(self) -> None:
        """Called by the timer, which must not fail."""
        if self.state == "open":
            with suppress(RuntimeError):  # the handler's nursery is already closed
                self._nursery.start_soon(self._ping, name="websocket ping")

    async def _ping(self) -> None:
        """Ping; close with ``1011`` if no answer comes within ``ping_timeout`` (the send
        included: a peer that stops reading blocks it), else schedule the next ping."""
        timeout = self._settings.ping_timeout
        self._pong = False
        self._ping_payload = os.urandom(4)
        with trio.move_on_after(math.inf if timeout is None else timeout):
            try:
                await self._send(Ping(payload=self._ping_payload))
                await self._read_until(lambda: bool(self._pong))
            except WebSocketClosed:
                return
            finally:
                answered, self._pong = self._pong, None
            if answered:
                self._schedule_ping()
            return
        peer = peer_name(self.request.client)
        log.info("%s: no answer to a WebSocket ping in %ss: closing", peer, timeout)
        await self._fail(1011, "ping timeout")

    async def _pong_back(self) -> None:
        with suppress(WebSocketClosed):
            await self._send(None)

    def _going_away(self) -> None:
        """The server shuts down (called by the draining task, which must not fail)."""
        if self.state == "open":
            with suppress(RuntimeError):  # the handler's nursery is already closed
                self._nursery.start_soon(self._goodbye, name="websocket goodbye")

    async def _goodbye(self) -> None:
        if self.state == "open":
            with suppress(WebSocketClosed):
                await self.close(1001, "server shutting down")

    # ---------------------------------------------------------------- helpers

    async def _send(self, event: Event | None) -> None:
        """Send one frame (``None``: the pong owed for the latest ping), in its turn: it is
        built (compressed) then, so frames leave in deflate order and none after a close.  A
        frame cut short (cancelled mid-write) would corrupt what follows: the stream closes."""
        assert self._stream is not None
        await self._turn.take()
        try:
            if event is None:
                owed, self._pong_owed = self._pong_owed, None
                assert owed is not None  # (set before its one _pong_back task started)
                event = owed.response()
            data = self._protocol.send(event)
            await self._stream.send_all(data)
        except LocalProtocolError:  # the state moved on (the peer closed) since the caller looked
            raise WebSocketClosed(self.close_code or 1006, self.close_reason) from None
        except _LOST:
            self._lost("the connection was lost")
            raise WebSocketClosed(self.close_code or 1006, self.close_reason) from None
        except BaseException:  # cancelled mid-frame: whatever follows would corrupt the stream
            self._lost("a send was cut short")
            await trio.aclose_forcefully(self._stream)
            raise
        finally:
            self._turn.release()

    async def _fail(self, code: int, reason: str) -> None:
        """Close at once after a violation or a timeout: send the code, don't wait long."""
        self.state = "closing"
        self.close_code, self.close_reason = code, reason
        self._end()
        with answering(1), suppress(WebSocketClosed):
            await self._send(CloseConnection(code=code, reason=reason))
        await self._finish()

    def _end(self, *, discard: bool = False) -> None:
        """Queue no more messages; with *discard*, drop those queued too."""
        self._ended = True
        if discard:
            self._messages.clear()

    def _lost(self, why: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, why
        self.state = "closed"
        self._end()
        self._wake_readers()

    async def _finish(self) -> None:
        self.state = "closed"
        self._end()
        self._wake_readers()
        if self._stream is not None:
            await trio.aclose_forcefully(self._stream)
