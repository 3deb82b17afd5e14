"""An exchange that an application answers piece by piece (the ASGI way).

A :data:`~trio_http.Handler` returns a whole response object.  An :class:`ExchangeApp` gets an
:class:`Exchange` instead and writes its response as it produces it: :meth:`Exchange.start`
with the status and fields, then :meth:`Exchange.send` (or :meth:`Exchange.send_file`) per
piece, then :meth:`Exchange.end`.  Each call waits for the transport, so a client that reads
slowly slows the application down instead of filling memory.  The connection still finalizes
the head (Date, Server, Connection, Content-Length) and decides keep-alive; the application's
``Content-Length`` frames the body, and a body that does not match it aborts the connection.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import BinaryIO, Protocol

import h11
import trio

from ..errors import ClientDisconnected
from ..headers import Headers
from ..protocol.rules import NO_CONTENT_STATUSES
from ..request import Request
from ..response import BaseResponse, Response
from ..transport import Transport
from .body import RequestBody
from .head import peer_name
from .writer import ResponseAborted, ResponseWriter

__all__ = ["Exchange", "ExchangeApp"]

log = logging.getLogger("trio_http.error")


class ExchangeApp(Protocol):
    """An application that answers each request through an :class:`Exchange`."""

    def serve_exchange(self, exchange: Exchange) -> Awaitable[None]: ...


class _Head(BaseResponse):
    """The status and fields an application started its response with (no body of its own)."""

    __slots__ = ("_content_length",)

    def __init__(self, status: int, headers: Headers, content_length: int | None) -> None:
        super().__init__(status, headers, compress=False)
        self._content_length = content_length

    @property
    def content_length(self) -> int | None:
        return self._content_length


class _Whole(Response):
    """A whole response from an application, with the length it declared (if it did)."""

    __slots__ = ("_declared",)

    def __init__(self, status: int, headers: Headers, body: bytes, declared: int | None) -> None:
        super().__init__(body, status, headers, compress=False)
        self._declared = declared

    @property
    def content_length(self) -> int:
        return len(self.body) if self._declared is None else self._declared


class Exchange:
    """One request and the response an application writes to it as it goes."""

    __slots__ = (
        "_finalize",
        "_head_only",
        "_transport",
        "_writer",
        "body",
        "ended",
        "request",
        "sent",
        "status",
    )

    def __init__(
        self,
        request: Request,
        body: RequestBody,
        writer: ResponseWriter,
        transport: Transport,
        finalize: Callable[
            [Request, RequestBody, BaseResponse], Awaitable[tuple[BaseResponse, h11.Response]]
        ],
    ) -> None:
        self.request = request
        #: The request body: read it through ``request.stream()`` or this, not both.
        self.body = body
        self._writer = writer
        self._transport = transport
        self._finalize = finalize
        self._head_only = request.method == "HEAD"
        #: The status sent (0 until :meth:`start`), and the body bytes sent.
        self.status = 0
        self.sent = 0
        self.ended = False

    @property
    def started(self) -> bool:
        return self.status != 0

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The server's address on this connection (for the ASGI scope's ``server``)."""
        return self._transport.local_address

    @property
    def stream(self) -> object:
        """The connection's trio stream (to tell TLS from plain TCP, and read addresses)."""
        return self._transport.stream

    async def start(
        self, status: int, headers: list[tuple[bytes, bytes]], content_length: int | None
    ) -> None:
        """Send the head.  Raises ``ValueError`` for a status below 200 and
        ``h11.LocalProtocolError`` for fields h11 will not send; nothing is sent then."""
        if self.started:
            raise RuntimeError("the response has already started")
        response = _Head(status, Headers.from_raw(headers), content_length)
        _, head = await self._finalize(self.request, self.body, response)
        await self._writer.write_head(head)
        self.status = status
        if status in NO_CONTENT_STATUSES:
            self._head_only = True  # a body sent to a 204 or 304 is dropped (RFC 9110 §6.4.1)

    async def respond(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        content_length: int | None = None,
    ) -> None:
        """The whole response at once: head, body and end joined into one write where they
        fit.  A *content_length* that is not the body's aborts the connection."""
        if self.started:
            raise RuntimeError("the response has already started")
        response: BaseResponse
        if self._head_only and content_length is None and not body:
            # A HEAD answered without its body: the GET's length is unknown, and a
            # Content-Length must be that length or absent (RFC 9110 §8.6), never 0.
            response = _Head(status, Headers.from_raw(headers), None)
        else:
            response = _Whole(status, Headers.from_raw(headers), body, content_length)
        _, head = await self._finalize(self.request, self.body, response)
        self.status = status
        self.sent = await self._writer.write(head, response, head_only=self._head_only)
        self.ended = True

    async def send(self, data: bytes) -> None:
        """Send a piece of the body (nothing for ``HEAD``)."""
        if data and not self._head_only:
            await self._writer.write_data(data)
            self.sent += len(data)

    async def send_file(self, file: BinaryIO, offset: int, length: int) -> None:
        """Send part of an open file as body, through ``sendfile`` where the transport can."""
        if length and not self._head_only:
            await self._writer.write_file_range(file, offset, length)
            self.sent += length

    async def end(self) -> None:
        """The body is complete."""
        await self._writer.write_end()
        self.ended = True

    async def run(
        self, app: ExchangeApp, client: tuple[str, int] | None, switched: Callable[[], bool]
    ) -> bool:
        """Let *app* answer; returns whether it sent a response or *switched* protocols (if
        not, the caller answers ``500``).  Raises :class:`ResponseAborted` if it started a
        response and did not complete it: a truncated body must never look complete.
        *client* names the peer in the error log."""
        failure = ""
        try:
            await app.serve_exchange(self)
            if switched():
                return True
        except ClientDisconnected:
            raise
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
            if not self.started:
                log.error(
                    "%s: application failed for %s",
                    peer_name(client),
                    self.request.target,
                    exc_info=exc,
                )
        if self.started and not self.ended:
            message = failure or "the application did not complete its response"
            log.error(
                "%s: response aborted for %s: %s", peer_name(client), self.request.target, message
            )
            raise ResponseAborted(message, status=self.status, sent=self.sent)
        if not self.started and not failure:
            log.error(
                "%s: the application sent no response to %s", peer_name(client), self.request.target
            )
        return self.started

    async def wait_for_disconnect(self) -> None:
        """Return once the client has closed the connection (after its request is read).

        Reads outside the connection's deadline, so it can run beside a task that sends.
        Bytes of a pipelined next request are kept for h11; after them it waits on.
        """
        data = await self._transport.receive_unbounded()
        if data:
            self.body.keep_for_next_request(data)
            await trio.sleep_forever()
