"""Sending a finalized response: h11 frames it, the transport carries it.

One strategy per response type:

- a :class:`~trio_http.Response` up to ``JOIN_LIMIT``: head, body and end of message joined
  into one write (one system call, one packet);
- a :class:`~trio_http.FileResponse`: the head, then each file range through the transport's
  ``send_file`` (``sendfile`` on plain TCP; reads in worker threads otherwise), framed by h11
  without the bytes passing through it;
- anything else: the body's chunks as they come, each framed by h11 without a copy.
"""

from __future__ import annotations

from typing import cast

import h11

from ..errors import ClientDisconnected
from ..protocol.h11_events import END_OF_MESSAGE
from ..response import BaseResponse, FileResponse, Response
from ..transport import Transport

__all__ = ["JOIN_LIMIT", "ResponseAborted", "ResponseWriter"]

#: Bodies up to this size are joined with their head into one write; larger ones are written
#: separately to avoid copying them.
JOIN_LIMIT = 64 * 1024


class ResponseAborted(Exception):
    """A response could not be completed for a reason on our side (its body iterator raised,
    its file shrank, it produced a different length than it declared).  The connection must
    be aborted: the client has a head, perhaps part of a body, and nothing can mend that."""


class _Blank:
    """A stand-in body of *length* bytes that h11 frames but never reads (for send_file)."""

    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length


class ResponseWriter:
    """Writes responses for one connection (*conn*'s framing, over *transport*)."""

    __slots__ = ("_conn", "_transport")

    def __init__(self, conn: h11.Connection, transport: Transport) -> None:
        self._conn = conn
        self._transport = transport

    def _frame(self, event: h11.Event) -> bytes:
        data = self._conn.send(event)
        assert data is not None  # only None for ConnectionClosed
        return data

    async def write_informational(self, event: h11.InformationalResponse) -> None:
        """Send a 1xx head (``101 Switching Protocols``)."""
        await self._transport.send(self._frame(event))

    async def write(self, head: h11.Response, response: BaseResponse, *, head_only: bool) -> int:
        """Send *head* and the body of *response*; returns the body bytes sent.

        Raises :class:`ClientDisconnected` if the client goes away and :class:`ResponseAborted`
        if the body fails; either way the connection must be aborted.  Does not close
        *response*.
        """
        data = self._frame(head)
        if head_only:
            await self._transport.send(data + self._frame(END_OF_MESSAGE))
            return 0
        try:
            if isinstance(response, Response):
                return await self._write_joined(data, response.body)
            await self._transport.send(data)
            if isinstance(response, FileResponse):
                sent = await self._write_file(response)
            else:
                sent = 0
                async for chunk in response.iter_body():
                    await self._write_data(chunk)
                    sent += len(chunk)
            end = self._frame(END_OF_MESSAGE)
            if end:  # only chunked framing has a last chunk to send
                await self._transport.send(end)
            return sent
        except ClientDisconnected:
            raise
        except Exception as exc:
            raise ResponseAborted(f"{type(exc).__name__}: {exc}") from exc

    async def _write_joined(self, head: bytes, body: bytes) -> int:
        if len(body) <= JOIN_LIMIT:
            payload = head + self._frame(h11.Data(data=body)) if body else head
            await self._transport.send(payload + self._frame(END_OF_MESSAGE))
        else:
            await self._transport.send(head)
            await self._write_data(body)
            end = self._frame(END_OF_MESSAGE)
            if end:
                await self._transport.send(end)
        return len(body)

    async def _write_file(self, response: FileResponse) -> int:
        sent = 0
        for part in response.parts:
            if isinstance(part, bytes):
                await self._write_data(part)
                sent += len(part)
                continue
            offset, length = part
            # h11 only counts the Data event's length (for Content-Length framing) and hands
            # back the object; the transport then sends the file bytes itself.
            pieces = self._conn.send_with_data_passthrough(
                h11.Data(data=cast(bytes, _Blank(length)))
            )
            assert pieces is not None
            for piece in pieces:
                if isinstance(piece, _Blank):
                    await self._transport.send_file(response.file, offset, length)
                else:
                    await self._transport.send(piece)
            sent += length
        return sent

    async def _write_data(self, data: bytes) -> None:
        """One piece of body, framed by h11 without copying *data* into a new buffer."""
        pieces = self._conn.send_with_data_passthrough(h11.Data(data=data))
        assert pieces is not None
        for piece in pieces:
            await self._transport.send(piece)
