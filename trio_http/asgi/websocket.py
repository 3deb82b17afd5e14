"""Serving an ASGI application's ``websocket`` scope (asgiref specs/www, "WebSocket").

The handshake is checked first (the same rules as the route layer).  The application then
gets ``websocket.connect`` and accepts with ``websocket.accept`` (the ``101`` goes out then),
or refuses: ``websocket.close`` before accepting gives ``403``, and the
``websocket.http.response`` extension sends a response of its own.  After that, messages map
to :class:`~trio_http.websocket.WebSocket` calls; the peer's close becomes
``websocket.disconnect`` with its code.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from ..errors import HTTPError
from ..http11.exchange import Exchange
from ..http11.head import peer_name
from ..response import error_response
from ..websocket.handshake import check_handshake
from ..websocket.route import log_fields
from ..websocket.session import WebSocket, WebSocketClosed
from ..websocket.settings import WebSocketSettings
from .types import ASGIApp, Message, Scope

__all__ = ["raised_only", "serve_websocket_scope"]

log = logging.getLogger("trio_http.error")


async def serve_websocket_scope(
    app: ASGIApp, scope: Scope, exchange: Exchange, settings: WebSocketSettings
) -> None:
    """Run *app* for the WebSocket handshake in *exchange*; *scope* is its http-like scope."""
    request = exchange.request
    offer = check_handshake(
        request.method, request.http_version, request.headers,
        allowed_origins=settings.allowed_origins,
    )  # fmt: skip
    if isinstance(offer, HTTPError):
        response = error_response(offer.status, offer.detail, offer.headers)
        await exchange.respond(response.status, response.headers.raw, response.body)
        return
    scope["type"] = "websocket"
    scope["scheme"] = {"http": "ws", "https": "wss"}.get(scope["scheme"], scope["scheme"])
    scope["subprotocols"] = list(offer.subprotocols)
    extensions = scope["extensions"]  # keeps "tls" over TLS
    extensions.pop("http.response.pathsend", None)
    extensions["websocket.http.response"] = {}
    failure: Exception | None = None  # raised before the 101: the connection answers 500
    async with trio.open_nursery() as nursery:
        cycle = _Cycle(exchange, WebSocket(request, offer, settings, nursery))
        try:
            await app(scope, cycle.receive, cycle.send)
        except Exception as exc:
            if raised_only(exc, ClientGone):
                pass  # the client went away and the app let send() say so: nothing failed
            elif cycle.websocket.state == "connecting":
                failure = exc
            else:
                peer = peer_name(exchange.request.client)
                log.exception("%s: ASGI WebSocket application failed", peer)
                await cycle.websocket.close(1011, "internal error")
        if failure is None:
            await cycle.finish()
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if cycle.websocket.close_code is not None:
        request.log_fields = log_fields(cycle.websocket)


class _Cycle:
    # Slots: it lives as long as the WebSocket (bench ws-idle).
    __slots__ = ("_connected", "_decided", "_decided_event", "_denial", "exchange", "websocket")

    def __init__(self, exchange: Exchange, websocket: WebSocket) -> None:
        self.exchange = exchange
        self.websocket = websocket
        self._connected = False  # websocket.connect was delivered
        self._decided = False  # accepted, or refused with a response
        self._decided_event: trio.Event | None = None  # made only if receive() waits for it
        self._denial: Message | None = None  # a websocket.http.response.start

    async def receive(self) -> Message:
        if not self._connected:
            self._connected = True
            await trio.lowlevel.checkpoint()
            return {"type": "websocket.connect"}
        if not self._decided:
            if self._decided_event is None:
                self._decided_event = trio.Event()
            await self._decided_event.wait()
        try:
            data = await self.websocket.receive()
        except (WebSocketClosed, RuntimeError) as exc:
            code = exc.code if isinstance(exc, WebSocketClosed) else 1006
            return {
                "type": "websocket.disconnect",
                "code": code,
                "reason": getattr(exc, "reason", ""),
            }
        if isinstance(data, str):
            return {"type": "websocket.receive", "text": data}
        return {"type": "websocket.receive", "bytes": data}

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        websocket = self.websocket
        if kind == "websocket.accept" and websocket.state == "connecting":
            headers: list[tuple[bytes, bytes]] = [
                (bytes(name).lower(), bytes(value)) for name, value in message.get("headers", ())
            ]
            await websocket.accept(message.get("subprotocol"), headers)
            self._decide()
        elif kind == "websocket.send" and websocket.state != "connecting":
            data: Any = message.get("bytes")
            if data is None:
                data = message.get("text")
            try:
                await websocket.send(data)
            except WebSocketClosed as exc:
                raise ClientGone(str(exc)) from None
        elif kind == "websocket.close":
            if websocket.state == "connecting":
                await self._refuse()
            else:
                await websocket.close(int(message.get("code", 1000)), message.get("reason") or "")
        elif kind == "websocket.http.response.start" and websocket.state == "connecting":
            self._denial = message
        elif kind == "websocket.http.response.body" and websocket.state == "connecting":
            await self._deny(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in state {websocket.state}")

    async def _refuse(self) -> None:
        """``websocket.close`` before accepting: 403 (the spec's "HTTP 403 response")."""
        if self._decided:
            return
        response = error_response(403, "the WebSocket was refused")
        await self.exchange.respond(response.status, response.headers.raw, response.body)
        self._decide()

    async def _deny(self, message: Message) -> None:
        """The ``websocket.http.response`` extension: the app's own response, in pieces."""
        start = self._denial
        if start is None:
            raise RuntimeError("'websocket.http.response.body' before its start")
        headers = [(bytes(n).lower(), bytes(v)) for n, v in start.get("headers", ())]
        body = bytes(message.get("body", b""))
        if not self.exchange.started:
            if not message.get("more_body"):
                await self.exchange.respond(int(start["status"]), headers, body)
                self._decide()
                return
            await self.exchange.start(int(start["status"]), headers, None)
        await self.exchange.send(body)
        if not message.get("more_body"):
            await self.exchange.end()
            self._decide()

    def _decide(self) -> None:
        self._decided = True
        if self._decided_event is not None:
            self._decided_event.set()

    async def finish(self) -> None:
        """After the app returns: close an open WebSocket (1000), refuse an undecided one."""
        if self.websocket.state == "connecting":
            await self._refuse()
        elif self.websocket.state == "open":
            await self.websocket.close(1000)


class ClientGone(OSError):
    """``websocket.send`` after the WebSocket closed (the spec asks for an OSError)."""


def raised_only(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether *exc* is a *kind*, was raised while handling one, or is a group of nothing else.

    For the ClientGone that send() raised: Starlette turns it into its own ClientDisconnect or
    WebSocketDisconnect (raised in its ``except OSError``), and an application's nursery
    (Quart-Trio's; trio's groups are strict) wraps it in an ExceptionGroup.
    """
    if isinstance(exc, BaseExceptionGroup):
        return all(raised_only(member, kind) for member in exc.exceptions)
    if isinstance(exc, kind):
        return True
    # Only a framework's own name for the client leaving, raised while handling ours, counts:
    # any other exception in an ``except OSError`` or ``finally`` is the application's bug.
    if type(exc).__name__ not in _DISCONNECT_NAMES:
        return False
    context = exc.__cause__ or exc.__context__
    return isinstance(context, kind)


#: What frameworks raise in place of the OSError of ``send()`` (Starlette's).
_DISCONNECT_NAMES = frozenset({"ClientDisconnect", "WebSocketDisconnect"})
