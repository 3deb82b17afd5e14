"""Zero-copy file sending on plain TCP sockets with ``os.sendfile``.

trio has no sendfile of its own, so we drive the system call ourselves on the stream's
non-blocking socket: call ``sendfile``, and when the socket buffer is full wait for it to
become writable with :func:`trio.lowlevel.wait_writable`.  The connection keeps h11 in charge
of framing (see ``HTTPConnection._send_file_body``); this module only moves bytes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import BinaryIO

import trio

from .response import FileChangedError

__all__ = ["SocketSender"]


class SocketSender:
    """Sends ranges of files straight from the page cache to one socket."""

    __slots__ = ("_socket",)

    def __init__(self, socket: trio.socket.SocketType) -> None:
        self._socket = socket

    @classmethod
    def for_stream(cls, stream: trio.abc.Stream) -> SocketSender | None:
        """A sender for *stream* if it is a plain socket (not TLS, not in memory), else None."""
        if type(stream) is trio.SocketStream and hasattr(os, "sendfile"):
            return cls(stream.socket)
        return None

    async def sendfile(self, file: BinaryIO, offset: int, length: int) -> AsyncIterator[int]:
        """Send *length* bytes of *file* from *offset*, yielding the size of each step.

        Each yield means the client accepted more data, which the caller uses to restart its
        write timeout.  Raises :class:`FileChangedError` if the file ends before *length*
        bytes, ``OSError`` for socket errors; cancellation stops between steps.
        """
        out_fd, in_fd = self._socket.fileno(), file.fileno()
        while length > 0:
            try:
                sent = os.sendfile(out_fd, in_fd, offset, length)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._socket)
                continue
            if sent == 0:
                raise FileChangedError(f"{file.name} shrank while it was being sent")
            offset += sent
            length -= sent
            yield sent
            # A fast reader would otherwise keep this loop busy without ever yielding to trio.
            await trio.lowlevel.checkpoint()
