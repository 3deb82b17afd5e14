"""What a connection needs from the bytes under it, and the one deadline that bounds them.

A :class:`Transport` reads, writes, sends files and closes; it knows nothing of HTTP.  Every
network failure is mapped to :class:`~trio_http.ClientDisconnected` here, in
:data:`network_errors`, and nowhere else: anything else that escapes a transport is a bug or a
server-side failure (a file that cannot be read), and is reported as such.

Timeouts: a connection has one :class:`Deadline`, a ``trio.CancelScope`` entered once around
its whole life.  A transport arms it before each wait and disarms it after, so no scope is
created per I/O call.  When it fires, :attr:`Deadline.waiting_for` says what the connection was
waiting for, which decides the answer (nothing, ``408``, or an abort).  The wait for the next
request, once per request, is timed by :class:`_IdleTimer` rather than the scope's deadline.
"""

from __future__ import annotations

import abc
import errno
import heapq
import itertools
import math
from types import TracebackType
from typing import BinaryIO, Literal

import trio

from ..errors import ClientDisconnected

__all__ = ["Deadline", "Transport", "Waiting", "disconnect_for", "network_errors", "peer_gone"]

#: What a connection can be waiting for when its deadline fires.
Waiting = Literal["idle", "head", "body", "write", "nothing"]

#: errno values that mean the peer or the network went away, not that we did something wrong.
_PEER_GONE = frozenset(
    {
        errno.EPIPE,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.ENOTCONN,
        errno.ESHUTDOWN,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
    }
)


def peer_gone(exc: BaseException) -> bool:
    """Whether *exc* means the peer or the network went away: the one place that decides."""
    return isinstance(exc, trio.BrokenResourceError) or (
        isinstance(exc, OSError) and exc.errno in _PEER_GONE
    )


def disconnect_for(exc: BaseException) -> ClientDisconnected | None:
    """The :class:`ClientDisconnected` that *exc* stands for, or ``None`` (it is not a
    network failure: pass it on).  For a hot path's plain ``except``, where
    :data:`network_errors` would cost two calls per I/O."""
    if peer_gone(exc):
        return ClientDisconnected(str(exc) or type(exc).__name__)
    if isinstance(exc, trio.ClosedResourceError):
        # Closed under us: by a drain or abort (expected), never by the client itself.
        return ClientDisconnected("the connection was closed")
    return None


class _NetworkErrors:
    """``with network_errors:`` turns trio's stream errors and a peer's socket errors into
    :class:`ClientDisconnected`; every other exception passes through unchanged."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is not None and (disconnect := disconnect_for(exc)) is not None:
            raise disconnect from exc


network_errors = _NetworkErrors()


class Deadline:
    """The one cancel scope that bounds every wait of a connection, and what it bounds now."""

    __slots__ = ("_entry", "idle_due", "scope", "waiting_for")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.waiting_for: Waiting = "nothing"
        #: When the wait for the next request times out (``inf``: not waiting for one).
        self.idle_due = math.inf
        self._entry = math.inf  # the time of this deadline's entry in the idle timer

    def arm(self, waiting_for: Waiting, timeout: float | None) -> None:
        """Before blocking: note what for, and fire after *timeout* (``None``: never)."""
        self.waiting_for = waiting_for
        if timeout is None:
            return
        when = trio.current_time() + timeout
        if waiting_for != "idle":
            self.scope.deadline = when
            return
        # The idle wait, once per request: a time noted, and at most one timer entry per
        # connection (trio's deadline setter, there and back, cost 7 % of GET /: callgrind).
        self.idle_due = when
        if when < self._entry:
            _idle_timer().schedule(self, when)

    def disarm(self) -> None:
        """After blocking.  Never in a ``finally``: a fired deadline keeps ``waiting_for``."""
        if self.waiting_for == "idle":
            self.idle_due = math.inf
        else:
            self.scope.deadline = math.inf
        self.waiting_for = "nothing"

    def retire(self) -> None:
        """The connection is closing: its idle timer entry, if any, is now stale."""
        self.idle_due = self._entry = math.inf

    async def deliver_late_cancel(self) -> None:
        """Raise ``Cancelled`` now if the scope was cancelled while the wait ended.

        trio wakes a task for I/O before it expires deadlines, so a wait can return normally in
        the same tick in which its deadline passed (or a drain cancelled it); the cancellation
        would then hit the next checkpoint, in a handler, as a mysterious abort.  Raised here,
        it is still attributed to the wait (``waiting_for``).
        """
        if self.scope.cancel_called:
            await trio.lowlevel.checkpoint()

    @property
    def fired(self) -> bool:
        """Whether the deadline (or :meth:`cancel`) ended the connection's scope."""
        return self.scope.cancelled_caught

    def cancel(self) -> None:
        self.scope.cancel()


class _IdleTimer:
    """Fires the idle deadlines of every connection in a ``trio.run``, from one system task.

    A connection's entry in the heap may be earlier than its :attr:`Deadline.idle_due` (it
    went idle again since): the timer then moves it on to that time, so an entry is pushed
    about once per timeout per connection, not once per request.  A closed connection's entry
    is stale (:meth:`Deadline.retire`): skipped when due, dropped when the heap is pruned.
    """

    __slots__ = ("_heap", "_order", "_prune_at", "_sleep")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()  # equal times: no comparison of the deadlines
        self._sleep = trio.CancelScope()
        self._prune_at = 1024

    def schedule(self, deadline: Deadline, when: float) -> None:
        deadline._entry = when  # an earlier entry of the same deadline is now stale
        heapq.heappush(self._heap, (when, next(self._order), deadline))
        if when < self._sleep.deadline:
            self._sleep.deadline = when  # wake earlier than planned
        if len(self._heap) > self._prune_at:
            self._prune()

    def _prune(self) -> None:
        """Drop the stale entries: of connections that closed, or replaced by a later one."""
        live = [entry for entry in self._heap if entry[2]._entry == entry[0]]
        heapq.heapify(live)
        self._heap = live
        self._prune_at = max(1024, 2 * len(live))

    async def run(self) -> None:
        while True:
            now = trio.current_time()
            while self._heap and self._heap[0][0] <= now:
                when, _, deadline = heapq.heappop(self._heap)
                if deadline._entry != when:
                    continue  # closed, or a later entry replaced this one
                deadline._entry = math.inf
                if deadline.idle_due <= now:
                    deadline.scope.cancel()
                elif deadline.idle_due != math.inf:  # idle again since: due later
                    self.schedule(deadline, deadline.idle_due)
            wake = self._heap[0][0] if self._heap else math.inf
            with trio.CancelScope(deadline=wake) as sleep:
                self._sleep = sleep
                await trio.sleep_forever()


_idle_timers: trio.lowlevel.RunVar[_IdleTimer] = trio.lowlevel.RunVar("trio_http.idle_timer")


def _idle_timer() -> _IdleTimer:
    """This ``trio.run``'s idle timer, started on first use."""
    try:
        return _idle_timers.get()
    except LookupError:
        timer = _IdleTimer()
        _idle_timers.set(timer)
        trio.lowlevel.spawn_system_task(timer.run, name="trio_http idle timer")
        return timer


class Transport(abc.ABC):
    """The bytes under one HTTP connection.

    Methods raise :class:`~trio_http.ClientDisconnected` when the peer goes away and
    ``Cancelled`` when :attr:`deadline` fires; they never wait longer than the timeout given
    (or ``write_timeout`` for sending).  :meth:`close` is always the last call.
    """

    __slots__ = ("_linger_timeout", "_local_address", "_write_timeout", "deadline", "eof")

    def __init__(self, *, write_timeout: float | None, linger_timeout: float) -> None:
        self.deadline = Deadline()
        #: The peer has closed its sending side (a read returned nothing).
        self.eof = False
        self._write_timeout = write_timeout
        self._linger_timeout = linger_timeout
        self._local_address: tuple[str, int] | bool | None = False  # False: not asked yet

    @property
    def local_address(self) -> tuple[str, int] | None:
        """Our ``(host, port)`` for this connection (``None`` if not an IP socket), looked up
        once: a ``getsockname`` per request cost 2.7 % of an ASGI request's CPU."""
        if self._local_address is False:
            stream = self.stream
            if isinstance(stream, trio.SSLStream):
                stream = stream.transport_stream
            sock = getattr(stream, "socket", None)
            try:
                name = sock.getsockname() if sock is not None else None
            except OSError:
                name = None
            self._local_address = (str(name[0]), int(name[1])) if isinstance(name, tuple) else None
        return self._local_address if isinstance(self._local_address, tuple) else None

    @property
    @abc.abstractmethod
    def stream(self) -> trio.abc.Stream:
        """The trio stream underneath, for a protocol that takes the connection over."""

    @abc.abstractmethod
    async def receive(self, waiting_for: Waiting, timeout: float | None, max_bytes: int) -> bytes:
        """Read up to *max_bytes* within *timeout*; ``b""`` when the peer has closed."""

    async def receive_unbounded(self, max_bytes: int = 64 * 1024) -> bytes:
        """Read once, waiting as long as it takes and leaving :attr:`deadline` alone: for a
        task that watches for a disconnect while another sends."""
        with network_errors:
            data = bytes(await self.stream.receive_some(max_bytes))
        self.eof = not data
        return data

    @abc.abstractmethod
    async def send(self, data: bytes | bytearray | memoryview, *, more: bool = False) -> None:
        """Write all of *data*; ``write_timeout`` bounds each stall.  *more*: the next write
        follows at once (a file after its head), so the two may leave in one packet."""

    @abc.abstractmethod
    async def send_file(self, file: BinaryIO, offset: int, length: int) -> None:
        """Write *length* bytes of *file* from *offset*, without reading it on the event loop.

        Raises :class:`~trio_http.response.FileChangedError` if the file ends early.
        """

    def input_pending(self) -> bool:
        """Whether bytes from the peer wait unread below us (known only for plain sockets)."""
        return False

    async def _linger(self, stream: trio.abc.HalfCloseableStream) -> None:
        """Half-close, then read and discard until the peer closes or linger_timeout passes."""
        with trio.move_on_after(self._linger_timeout):
            try:
                await stream.send_eof()
                while await stream.receive_some(64 * 1024):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass  # the peer is gone: nothing left to protect

    @abc.abstractmethod
    async def close(self, *, linger: bool) -> None:
        """Close.  With *linger*: half-close, read and discard until the peer closes or
        ``linger_timeout`` passes, then close, so the last response is not destroyed by a
        reset (RFC 9112 §9.6)."""
