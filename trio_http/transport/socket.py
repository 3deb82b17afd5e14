"""The transport for plain TCP sockets: non-blocking system calls first, trio only to wait.

Reads and writes try ``os.read``/``os.write`` on the non-blocking descriptor and go through
trio only when the call would block.  Bytes already there cost no trip through the scheduler
and no deadline change (docs/performance.md: ``GET /`` 7.7k -> 9.9k req/s).  Files go out
with ``os.sendfile``, from the page cache to the socket.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import termios
from typing import BinaryIO

import trio

from ..response import FileChangedError
from .base import Transport, Waiting, disconnect_for, network_errors

__all__ = ["SocketTransport"]

#: Linux's "more data follows" send flag (0, ignored, where it does not exist).
MSG_MORE: int = getattr(socket, "MSG_MORE", 0)


class SocketTransport(Transport):
    """A :class:`Transport` over a ``trio.SocketStream`` (not TLS: see StreamTransport)."""

    __slots__ = ("_fd", "_raw", "_socket", "_stream")

    def __init__(
        self, stream: trio.SocketStream, *, write_timeout: float | None, linger_timeout: float
    ) -> None:
        super().__init__(write_timeout=write_timeout, linger_timeout=linger_timeout)
        self._stream = stream
        self._socket = stream.socket
        self._fd = stream.socket.fileno()
        # The standard-library socket under trio's, for send() with flags (trio's would
        # schedule); None if trio ever stops keeping it there.
        self._raw: socket.socket | None = getattr(stream.socket, "_sock", None)

    @property
    def stream(self) -> trio.abc.Stream:
        return self._stream

    async def receive(self, waiting_for: Waiting, timeout: float | None, max_bytes: int) -> bytes:
        # Plain excepts rather than network_errors, and the late-cancel check inline (not a
        # call): this runs once or twice per request (bench/ab_cpu.py).
        fd = self._fd
        deadline = self.deadline
        try:
            if waiting_for == "idle":
                # Between requests, wait before reading: the next request has almost never
                # arrived yet (counted under wrk: a read tried first failed once per request).
                deadline.arm("idle", timeout)
                await trio.lowlevel.wait_readable(fd)
                if deadline.scope.cancel_called:
                    await deadline.deliver_late_cancel()
                deadline.disarm()
            # Set at the first wait, so that a spurious wake-up does not extend it.
            wait_until: float | None = None
            while True:
                try:
                    data = os.read(fd, max_bytes)
                    break
                except BlockingIOError:
                    pass
                if timeout is not None and wait_until is None:
                    wait_until = trio.current_time() + timeout
                deadline.arm(
                    waiting_for, None if wait_until is None else wait_until - trio.current_time()
                )
                await trio.lowlevel.wait_readable(fd)
                if deadline.scope.cancel_called:
                    await deadline.deliver_late_cancel()
                deadline.disarm()
        except (OSError, trio.ClosedResourceError) as exc:
            if (disconnect := disconnect_for(exc)) is not None:
                raise disconnect from exc
            raise
        self.eof = not data
        return data

    async def send(self, data: bytes | bytearray | memoryview, *, more: bool = False) -> None:
        # A write the socket buffer can take whole needs no scheduling.
        try:
            if more and self._raw is not None:
                # MSG_MORE: the head waits for the sendfile after it; one packet, not two.
                sent = self._raw.send(data, MSG_MORE)
            else:
                sent = os.write(self._fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            if (disconnect := disconnect_for(exc)) is not None:
                raise disconnect from exc
            raise
        if sent == len(data):
            return
        self.deadline.arm("write", self._write_timeout)
        with network_errors:
            await self._stream.send_all(memoryview(data)[sent:])
        self.deadline.disarm()

    async def send_file(self, file: BinaryIO, offset: int, length: int) -> None:
        """``os.sendfile`` in steps.  ``write_timeout`` runs only while the socket is full,
        from its first stall after the client last accepted bytes: a file the socket takes
        at once (most small files) costs no deadline change (bench/ab_cpu.py, file-1k)."""
        deadline = self.deadline
        out_fd, in_fd = self._fd, file.fileno()
        armed = False
        try:
            while length > 0:
                try:
                    sent = os.sendfile(out_fd, in_fd, offset, length)
                except BlockingIOError:
                    if not armed:
                        deadline.arm("write", self._write_timeout)
                        armed = True
                    await trio.lowlevel.wait_writable(out_fd)
                    if deadline.scope.cancel_called:
                        await deadline.deliver_late_cancel()
                    continue
                if sent == 0:
                    raise FileChangedError(f"{file.name} shrank while it was being sent")
                offset += sent
                length -= sent
                if length:
                    if armed:  # progress: the client is reading
                        deadline.disarm()
                        armed = False
                    # A fast reader would otherwise keep this loop busy without ever yielding.
                    await trio.lowlevel.checkpoint()
        except (OSError, trio.ClosedResourceError) as exc:
            if (disconnect := disconnect_for(exc)) is not None:
                raise disconnect from exc
            raise
        if armed:
            deadline.disarm()

    def input_pending(self) -> bool:
        try:
            pending = fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return False
        return int.from_bytes(pending, sys.byteorder) > 0

    async def close(self, *, linger: bool) -> None:
        self.deadline.retire()
        if linger and not self.eof:
            await self._linger(self._stream)
        # Synchronous: aclose_forcefully's cancel scope and cancelled checkpoint took a fifth
        # of a connection-per-request exchange.  (serve_listeners closing the stream again
        # afterwards is a no-op.)
        self._socket.close()
