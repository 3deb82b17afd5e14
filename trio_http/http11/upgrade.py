"""The stream a protocol gets after ``101 Switching Protocols``.

h11 may already hold bytes the client sent right after its request head (a WebSocket client
often sends its first frame at once); :class:`UpgradedStream` yields those first, then reads
from the connection's own stream, so nothing is lost in the hand-over.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import h11
import trio
from h11 import MIGHT_SWITCH_PROTOCOL  # type: ignore[attr-defined]  # public, not in __all__

from ..request import Request
from ..response import Upgrade
from ..transport import Transport
from .writer import ResponseWriter

__all__ = ["UpgradedStream", "asks_to_upgrade", "hand_over", "may_switch", "switch"]

log = logging.getLogger("trio_http.error")


def asks_to_upgrade(request: Request) -> bool:
    """Whether *request* proposes another protocol (RFC 9110 §7.8): HTTP/1.1 (a server MUST
    ignore ``Upgrade`` in HTTP/1.0) with the ``upgrade`` connection option its sender MUST
    send.  Which protocol is ``Upgrade``'s to say."""
    connection = (request.headers.get("connection") or "").lower()
    return request.http_version == "1.1" and "upgrade" in (
        token.strip() for token in connection.split(",")
    )


def may_switch(conn: h11.Connection, request: Request) -> bool:
    """Whether the client asked to upgrade (:func:`asks_to_upgrade`) and its request is
    complete."""
    return conn.their_state is MIGHT_SWITCH_PROTOCOL and asks_to_upgrade(request)


async def switch(
    conn: h11.Connection,
    writer: ResponseWriter,
    transport: Transport,
    request: Request,
    head: h11.InformationalResponse,
) -> UpgradedStream:
    """Send the ``101`` *head*; return the stream, with h11's unread bytes in front.  Raises
    ``RuntimeError`` if *request* cannot switch protocols (see :func:`may_switch`)."""
    if not may_switch(conn, request):
        raise RuntimeError(
            "this request cannot switch protocols: it needs HTTP/1.1, Upgrade and "
            "Connection: upgrade, and its body read"
        )
    await writer.write_informational(head)
    return UpgradedStream(transport.stream, conn.trailing_data[0])


async def hand_over(upgrade: Upgrade, stream: UpgradedStream, peer: str) -> None:
    """Run the upgrade's handler on *stream*.  Its failures are logged, not raised: the
    connection closes either way."""
    try:
        await upgrade.handler(stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client went away: the protocol's handler had nothing more to do
    except Exception:
        log.exception("%s: the upgrade handler failed", peer)


class UpgradedStream(trio.abc.HalfCloseableStream):
    """*stream*, with *pending* bytes put back in front of what it receives.

    :attr:`going_away` is set when the server shuts down (:meth:`go_away`): the protocol
    should say goodbye (a WebSocket sends ``1001``) and finish within the graceful timeout.
    Rather than a task waiting for it, a protocol may register a callback with
    :meth:`on_going_away` (a task per idle connection is memory: bench ws-idle).

    Over plain TCP it reads and writes the socket's descriptor itself, as the HTTP side's
    SocketTransport does: a read waits first and then reads (trio's tries a ``recv`` first,
    which fails once per message), and a write the socket takes whole needs no scheduler
    round; every ``_FAIR_SENDS``-th such write yields, so a task that only sends cannot starve
    the others (bench/ab_cpu.py ws-echo-1k).
    """

    #: Writes in a row that may complete without yielding to other tasks.
    _FAIR_SENDS = 16

    def __init__(self, stream: trio.abc.Stream, pending: bytes) -> None:
        self._stream = stream
        self._pending = pending
        self._gone_away = False  # go_away() was called
        self._going_away: trio.Event | None = None  # made on first use (memory per connection)
        self._going_away_callbacks: list[Callable[[], object]] = []
        self._socket = stream.socket if type(stream) is trio.SocketStream else None
        self._sending = False  # a write that blocked is in progress (through trio)
        self._sends_without_yield = 0

    @property
    def going_away(self) -> trio.Event:
        """Set when the server shuts down."""
        if self._going_away is None:
            self._going_away = trio.Event()
            if self._gone_away:
                self._going_away.set()
        return self._going_away

    def go_away(self) -> None:
        """The server is shutting down: set :attr:`going_away`, run the callbacks."""
        if not self._gone_away:
            self._gone_away = True
            if self._going_away is not None:
                self._going_away.set()
            for callback in self._going_away_callbacks:
                callback()

    def on_going_away(self, callback: Callable[[], object]) -> None:
        """Call *callback* (synchronously, in the task that drains) when the server shuts
        down, or now if it already is."""
        if self._gone_away:
            callback()
        else:
            self._going_away_callbacks.append(callback)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._pending:
            await trio.lowlevel.checkpoint()
            size = len(self._pending) if max_bytes is None else max_bytes
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        if self._socket is None:
            return bytes(await self._stream.receive_some(max_bytes))
        fd = self._fileno()
        while True:
            # (A close meanwhile wakes the wait with ClosedResourceError: trio notifies it.)
            await trio.lowlevel.wait_readable(fd)
            self._sends_without_yield = 0
            try:
                return os.read(fd, max_bytes or _READ_SIZE)
            except BlockingIOError:
                continue  # a spurious wake-up
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._socket is None or self._sending:  # (trio refuses a second sender then)
            await self._stream.send_all(data)
            return
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            sent = os.write(self._fileno(), data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        if sent == len(data):
            self._sends_without_yield += 1
            if self._sends_without_yield >= self._FAIR_SENDS:
                self._sends_without_yield = 0
                await trio.lowlevel.cancel_shielded_checkpoint()
            return
        self._sending = True
        try:
            await self._stream.send_all(memoryview(data)[sent:])
        finally:
            self._sending = False
        self._sends_without_yield = 0

    def _fileno(self) -> int:
        """The descriptor, checked each time: after a close its number may belong to another
        connection."""
        assert self._socket is not None
        fd = self._socket.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the stream is closed")
        return fd

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        if not isinstance(self._stream, trio.abc.HalfCloseableStream):
            raise trio.BrokenResourceError("this stream cannot be half-closed (TLS)")
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


#: What a read asks for when the protocol does not say.
_READ_SIZE = 64 * 1024
