"""The transport for any other trio stream: TLS (``trio.SSLStream``) and in-memory streams."""

from __future__ import annotations

from typing import BinaryIO

import trio

from ..response import read_file_range
from .base import Transport, Waiting, network_errors

__all__ = ["StreamTransport"]


class StreamTransport(Transport):
    """A :class:`Transport` over a ``trio.abc.Stream``."""

    __slots__ = ("_stream",)

    def __init__(
        self, stream: trio.abc.Stream, *, write_timeout: float | None, linger_timeout: float
    ) -> None:
        super().__init__(write_timeout=write_timeout, linger_timeout=linger_timeout)
        self._stream = stream

    @property
    def stream(self) -> trio.abc.Stream:
        return self._stream

    async def receive(self, waiting_for: Waiting, timeout: float | None, max_bytes: int) -> bytes:
        deadline = self.deadline
        deadline.arm(waiting_for, timeout)
        with network_errors:
            data = bytes(await self._stream.receive_some(max_bytes))
        await deadline.deliver_late_cancel()
        deadline.disarm()
        self.eof = not data
        return data

    async def send(self, data: bytes | bytearray | memoryview, *, more: bool = False) -> None:
        self.deadline.arm("write", self._write_timeout)
        with network_errors:
            await self._stream.send_all(data)
        self.deadline.disarm()

    async def send_file(self, file: BinaryIO, offset: int, length: int) -> None:
        async for chunk in read_file_range(file, offset, length):
            await self.send(chunk)

    async def close(self, *, linger: bool) -> None:
        self.deadline.retire()
        stream = self._stream
        if linger and not self.eof and isinstance(stream, trio.abc.HalfCloseableStream):
            await self._linger(stream)
        await trio.aclose_forcefully(stream)
