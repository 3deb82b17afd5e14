"""Serving an ASGI application's ``http`` scope through the connection's exchange seam.

:class:`ASGIHost` is an :class:`~trio_http.http11.exchange.ExchangeApp`: the connection hands it
each request, and it runs the application with a ``receive`` and a ``send`` that map ASGI
messages onto the exchange (asgiref specs/www, "HTTP"):

- ``receive()`` reads the request body only when the application asks (back-pressure; lazy
  ``100 Continue``); once the body is complete it waits for the client to go away and then
  returns ``http.disconnect``, at once if the response is complete;
- ``send()`` writes as the application sends: the head on the first body message (joined with
  the body into one write when the body comes whole), each piece with back-pressure, a file
  through ``sendfile`` for the ``http.response.pathsend`` extension.

Failures follow the spec: an exception before ``http.response.start`` is a logged ``500``;
after it, the connection is aborted; ``send()`` after the client left raises an ``OSError``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Awaitable
from typing import Any

import trio

from ..errors import ClientDisconnected, HTTPError
from ..http11.exchange import Exchange
from ..http11.upgrade import asks_to_upgrade
from ..response import error_response
from .scope import ScopeSettings, http_scope
from .types import ASGIApp, Message, Scope
from .websocket import raised_only, serve_websocket_scope

__all__ = ["ASGIHost", "ClientGone"]

log = logging.getLogger("trio_http.error")

_DISCONNECT: Message = {"type": "http.disconnect"}


class ClientGone(OSError):
    """Raised by ``send()`` once the client has gone away (the spec asks for an OSError)."""


class ASGIHost:
    """Runs *app* for every request a connection hands it (the ``http`` scope)."""

    def __init__(self, app: ASGIApp, settings: ScopeSettings | None = None) -> None:
        self.app = app
        self.settings = settings or ScopeSettings()

    def serve_exchange(self, exchange: Exchange) -> Awaitable[None]:
        """The coroutine that serves *exchange*.  A plain function (scope built, scope type
        chosen, then the coroutine returned): not one more frame under each WebSocket."""
        stream = exchange.stream
        tls = isinstance(stream, trio.SSLStream)
        scope = http_scope(
            exchange.request,
            server=exchange.local_address,
            tls=tls,
            settings=self.settings,
            extensions={"http.response.pathsend": {}},
        )
        if tls:
            scope["extensions"]["tls"] = _tls_extension(stream)  # type: ignore[arg-type]
        exchange.request.client = scope["client"]  # for the access log, after proxy headers
        upgrade = (exchange.request.headers.get("upgrade") or "").lower()
        if "websocket" in upgrade and asks_to_upgrade(exchange.request):
            return serve_websocket_scope(self.app, scope, exchange, self.settings.websocket)
        return self._serve_http(scope, exchange)

    async def _serve_http(self, scope: Scope, exchange: Exchange) -> None:
        cycle = _Cycle(exchange)
        try:
            await self.app(scope, cycle.receive, cycle.send)
        except ClientGone:
            raise ClientDisconnected("the client went away") from None
        except Exception as exc:  # ours in a group (Quart-Trio), or Starlette's translation
            if cycle.gone and raised_only(exc, ClientGone):
                raise ClientDisconnected("the client went away") from None
            raise
        if cycle.gone:
            raise ClientDisconnected("the client went away")


def _tls_extension(stream: trio.SSLStream[Any]) -> dict[str, Any]:
    """The ``tls`` extension (asgiref specs/tls): what we know of the session."""
    try:
        version = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}.get(stream.version() or "")
    except (trio.BrokenResourceError, ValueError, AttributeError):
        version = None
    return {
        "server_cert": None,
        "client_cert_chain": [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": version,
        # The spec wants the IANA number, which Python's ssl module does not give.
        "cipher_suite": None,
    }


class _Cycle:
    """The ``receive`` and ``send`` of one request."""

    __slots__ = (
        "_body_done", "_complete", "_refused", "_start", "_wake", "_watching", "exchange", "gone",
    )  # fmt: skip

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        #: The head the app started, waiting for the first body message.
        self._start: tuple[int, list[tuple[bytes, bytes]], int | None] | None = None
        self._body_done = False
        self._refused = False  # the body was refused (413, 400): the app's response is dropped
        self.gone = False
        self._complete = False  # the response is complete
        #: Set (and dropped) when the response completes, the client leaves, or the receive()
        #: that watches the connection stops; made only if a receive() waits for one of those.
        self._wake: trio.Event | None = None
        self._watching = False  # a receive() is reading the connection for the disconnect

    # ---------------------------------------------------------------- receive

    async def receive(self) -> Message:
        if self.gone or self._refused or self._complete:
            await trio.lowlevel.checkpoint()
            return _DISCONNECT
        if not self._body_done:
            try:
                chunk = await self.exchange.body.receive_body_chunk()
            except ClientDisconnected:
                self.gone = True
                return _DISCONNECT
            except HTTPError as error:
                await self._refuse(error)
                return _DISCONNECT
            body = self.exchange.body
            # Done when nothing came, or all a declared length did (no read needed to know).
            self._body_done = not chunk or body.received == body.declared
            return {"type": "http.request", "body": chunk, "more_body": not self._body_done}
        await self._wait_for_the_end()
        return _DISCONNECT

    async def _wait_for_the_end(self) -> None:
        """Until the client leaves or the response is complete.

        receive() may be called from several tasks at once (sse-starlette listens for the
        disconnect while Starlette's ``is_disconnected()`` calls it in a cancelled scope): one
        of them reads the connection, since two reads would raise ``trio.BusyResourceError``;
        the others wait, and one takes over if the reader is cancelled.
        """
        while not (self.gone or self._complete):
            if self._wake is None:
                self._wake = trio.Event()
            wake = self._wake
            if self._watching:
                await wake.wait()
                continue
            self._watching = True
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch)
                    await wake.wait()
                    nursery.cancel_scope.cancel()
            finally:
                self._watching = False
                self._wake_up()

    async def _watch(self) -> None:
        with contextlib.suppress(ClientDisconnected):
            await self.exchange.wait_for_disconnect()
        self.gone = True
        self._wake_up()

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    async def _refuse(self, error: HTTPError) -> None:
        """Answer a body we will not read (too large, malformed) in the app's place."""
        self._refused = True
        if self.exchange.started:
            return  # too late for an answer: the connection will close after the response
        response = error_response(error.status, error.detail, error.headers)
        await self.exchange.respond(response.status, response.headers.raw, response.body)
        self._done()

    def _done(self) -> None:
        """The response is complete (a receive() waiting for that returns)."""
        self._complete = True
        self._wake_up()

    # ---------------------------------------------------------------- send

    async def send(self, message: Message) -> None:
        if self.gone:
            raise ClientGone("the client has gone away")
        if self._refused:
            return  # the server answered for the app (413, 400)
        kind = message.get("type")
        if self._complete:
            raise RuntimeError(f"ASGI message {kind!r} sent after the response was complete")
        try:
            if kind == "http.response.start":
                self._on_start(message)
            elif kind == "http.response.body":
                await self._on_body(message)
            elif kind == "http.response.pathsend":
                await self._on_pathsend(message)
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} for an http scope")
        except ClientDisconnected:
            self.gone = True
            raise ClientGone("the client has gone away") from None

    def _on_start(self, message: Message) -> None:
        if self._start is not None or self.exchange.started:
            raise RuntimeError("'http.response.start' sent twice")
        status = int(message["status"])
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        for name, value in message.get("headers", ()):
            name = bytes(name).lower()
            if name == b"content-length":
                length = int(value)  # ValueError for garbage: the app's bug, a 500
            elif name != b"transfer-encoding":  # the framing is ours
                headers.append((name, bytes(value)))
        self._start = (status, headers, length)

    async def _on_body(self, message: Message) -> None:
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if self._start is not None:  # the first body message: the head goes now
            status, headers, length = self._start
            self._start = None
            if not more:  # the whole body at once: one write with the head
                await self.exchange.respond(status, headers, body, length)
                self._done()
                return
            await self.exchange.start(status, headers, length)
        elif not self.exchange.started:
            raise RuntimeError("'http.response.body' sent before 'http.response.start'")
        await self.exchange.send(body)
        if not more:
            await self.exchange.end()
            self._done()

    async def _on_pathsend(self, message: Message) -> None:
        if self._start is None:
            raise RuntimeError("'http.response.pathsend' needs 'http.response.start' first")
        status, headers, length = self._start
        self._start = None
        path = os.fspath(message["path"])
        with io.FileIO(path, "r") as file:
            size = os.fstat(file.fileno()).st_size
            await self.exchange.start(status, headers, size if length is None else length)
            await self.exchange.send_file(file, 0, size)
            await self.exchange.end()
        self._done()
