"""The stream a protocol gets after ``101 Switching Protocols``.

h11 may already hold bytes the client sent right after its request head (a WebSocket client
often sends its first frame at once); :class:`UpgradedStream` yields those first, then reads
from the connection's own stream, so nothing is lost in the hand-over.
"""

from __future__ import annotations

import trio

__all__ = ["UpgradedStream"]


class UpgradedStream(trio.abc.HalfCloseableStream):
    """*stream*, with *pending* bytes put back in front of what it receives."""

    def __init__(self, stream: trio.abc.Stream, pending: bytes) -> None:
        self._stream = stream
        self._pending = pending

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._pending:
            await trio.lowlevel.checkpoint()
            size = len(self._pending) if max_bytes is None else max_bytes
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        if not isinstance(self._stream, trio.abc.HalfCloseableStream):
            raise trio.BrokenResourceError("this stream cannot be half-closed (TLS)")
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()
