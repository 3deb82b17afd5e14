"""Running a route-layer WebSocket handler: handshake, accept or refuse, close, log."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import trio

from ..errors import HTTPError
from ..request import Request
from ..response import BaseResponse, Response, error_response
from .handshake import check_handshake
from .session import WebSocket, WebSocketClosed, WebSocketSettings

__all__ = ["WebSocketHandler", "serve_websocket"]

log = logging.getLogger("trio_http.error")
access_log = logging.getLogger("trio_http.access")

#: What ``@app.websocket`` decorates: it accepts the WebSocket (or returns a response to
#: refuse it) and talks until it returns.
WebSocketHandler = Callable[[WebSocket], Awaitable[BaseResponse | None]]


async def serve_websocket(
    request: Request, handler: WebSocketHandler, settings: WebSocketSettings
) -> BaseResponse:
    """Answer *request* with *handler*'s WebSocket.

    An invalid handshake raises its :class:`HTTPError` (426, 400, 405, 403).  A handler that
    returns without accepting refuses with the response it returned (403 if none).  Once
    accepted, a handler that returns closes with ``1000``, one that raises with ``1011`` and a
    logged traceback.  Returns the response for the connection (ignored after a 101).
    """
    offer = check_handshake(
        request.method, request.http_version, request.headers,
        allowed_origins=settings.allowed_origins,
    )  # fmt: skip
    if isinstance(offer, HTTPError):
        raise offer
    async with trio.open_nursery() as nursery:
        websocket = WebSocket(request, offer, settings, nursery)
        try:
            result = await handler(websocket)
        except WebSocketClosed:
            result = None  # the handler let the peer's close end it: fine
        except Exception:
            if websocket.state == "connecting":
                raise  # before the 101: the connection answers 500
            log.exception("%s: WebSocket handler failed for %s", _peer(request), request.target)
            await websocket.close(1011, "internal error")
        if websocket.state == "connecting":
            if isinstance(result, BaseResponse):
                return result
            return error_response(403, "the WebSocket was refused")
        await websocket.close(1000)
        nursery.cancel_scope.cancel()  # the reader and the keep-alive
    _log(websocket)
    return Response(status=200)  # not sent: the connection switched protocols


def _log(websocket: WebSocket) -> None:
    if access_log.isEnabledFor(logging.INFO):
        request = websocket.request
        access_log.info(
            '%s "WebSocket %s" closed %s in %d/%dB out %d/%dB %.3fs',
            request.client[0] if request.client else "-",
            request.target,
            websocket.close_code,
            websocket.messages_in,
            websocket.bytes_in,
            websocket.messages_out,
            websocket.bytes_out,
            time.monotonic() - websocket.opened_at,
        )


def _peer(request: Request) -> str:
    return f"{request.client[0]}:{request.client[1]}" if request.client else "client"
