"""Sending a finalized response: h11 frames it, the transport carries it.

One strategy per response type:

- a :class:`~trio_http.Response` up to ``JOIN_LIMIT``: head, body and end of message joined
  into one write (one system call, one packet);
- a :class:`~trio_http.FileResponse` of one range up to ``SMALL_FILE``: read with one
  ``pread`` and joined with its head into one write, as a small ``Response`` is;
- a :class:`~trio_http.FileResponse`: the head, then each file range through the transport's
  ``send_file`` (``sendfile`` on plain TCP; reads in worker threads otherwise), framed by h11
  without the bytes passing through it;
- anything else: the body's chunks as they come, each framed by h11 without a copy.
"""

from __future__ import annotations

import os
from typing import BinaryIO, cast

import h11

from ..errors import ClientDisconnected
from ..protocol.h11_events import END_OF_MESSAGE
from ..protocol.rules import NO_CONTENT_STATUSES
from ..response import BaseResponse, FileResponse, Response
from ..transport import Transport

__all__ = ["JOIN_LIMIT", "SMALL_FILE", "ResponseAborted", "ResponseWriter"]

#: Bodies up to this size are joined with their head into one write; larger ones are written
#: separately to avoid copying them.
JOIN_LIMIT = 64 * 1024
#: Files (one range) up to this size are read with one ``pread`` and sent with their head in
#: one write: the same page-cache read ``sendfile`` does, without its setup and a second
#: system call (file-1k CPU per request 1.138 -> 1.112 of bf1a31e, bench/ab_cpu.py).
SMALL_FILE = 16 * 1024


class ResponseAborted(Exception):
    """A response could not be completed for a reason on our side (its body iterator raised,
    its file shrank, it produced a different length than it declared).  The connection must
    be aborted: the client has a head, perhaps part of a body, and nothing can mend that.
    *status* and *sent* (body bytes) say what went out, for the access log."""

    def __init__(self, message: str, *, status: int = 0, sent: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.sent = sent


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

        With *head_only* (``HEAD``), and for a status without content (204, 304: RFC 9110
        §6.4.1), the body is not sent.  Raises :class:`ClientDisconnected` if the client goes
        away and :class:`ResponseAborted` if the body fails; either way the connection must be
        aborted.  Does not close *response*.
        """
        if head_only or head.status_code in NO_CONTENT_STATUSES:
            await self._transport.send(self._frame(head) + self._frame(END_OF_MESSAGE))
            return 0
        sent = 0
        try:
            if isinstance(response, Response) and len(response.body) <= JOIN_LIMIT:
                body = response.body
                # One write, one copy: head, framed body and end joined at once.
                send = self._conn.send
                if body:
                    payload = b"".join(
                        (send(head), send(h11.Data(data=body)), send(END_OF_MESSAGE))
                    )
                else:
                    payload = b"".join((send(head), send(END_OF_MESSAGE)))
                await self._transport.send(payload)
                return len(body)
            if isinstance(response, FileResponse):
                small = _read_small_file(response)
                if small is not None:
                    send = self._conn.send
                    payload = b"".join(
                        (send(head), send(h11.Data(data=small)), send(END_OF_MESSAGE))
                    )
                    await self._transport.send(payload)
                    return len(small)
            file_follows = isinstance(response, FileResponse)
            await self.write_head(head, more=file_follows)
            if isinstance(response, FileResponse):
                for part in response.parts:
                    if isinstance(part, bytes):
                        await self.write_data(part)
                        sent += len(part)
                    else:
                        await self.write_file_range(response.file, *part)
                        sent += part[1]
            else:
                async for chunk in response.iter_body():
                    await self.write_data(chunk)
                    sent += len(chunk)
            await self.write_end()
            return sent
        except ClientDisconnected:
            raise
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            raise ResponseAborted(message, status=head.status_code, sent=sent) from exc

    # The pieces, for the strategies above and for applications that write their response as
    # they go (see exchange.py).  h11 raises LocalProtocolError for a body longer or shorter
    # than the head declared.

    async def write_head(self, head: h11.Response, *, more: bool = False) -> None:
        await self._transport.send(self._frame(head), more=more)

    async def write_data(self, data: bytes) -> None:
        """One piece of body, framed by h11 without copying *data* into a new buffer."""
        pieces = self._conn.send_with_data_passthrough(h11.Data(data=data))
        assert pieces is not None
        for piece in pieces:
            await self._transport.send(piece)

    async def write_file_range(self, file: BinaryIO, offset: int, length: int) -> None:
        """*length* bytes of *file* from *offset*, sent by the transport (``sendfile``)."""
        # h11 only counts the Data event's length (for the framing) and hands back the
        # object; the transport then sends the file bytes itself.
        pieces = self._conn.send_with_data_passthrough(h11.Data(data=cast(bytes, _Blank(length))))
        assert pieces is not None
        for piece in pieces:
            if isinstance(piece, _Blank):
                await self._transport.send_file(file, offset, length)
            else:
                await self._transport.send(piece)

    async def write_end(self) -> None:
        end = self._frame(END_OF_MESSAGE)
        if end:  # only chunked framing has a last chunk to send
            await self._transport.send(end)


def _read_small_file(response: FileResponse) -> bytes | None:
    """The body of a one-range file response up to ``SMALL_FILE``, or ``None`` (larger, several
    parts, or the file shrank: the ``send_file`` path then reports it as for any file)."""
    parts = response.parts
    if len(parts) != 1:
        return None
    (part,) = parts
    if isinstance(part, bytes) or not 0 < part[1] <= SMALL_FILE:
        return None
    offset, length = part
    data = os.pread(response.file.fileno(), length, offset)
    return data if len(data) == length else None
