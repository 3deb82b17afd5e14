"""Running a route-layer WebSocket handler: handshake, accept or refuse, close, log."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from ..errors import HTTPError
from ..http11.head import peer_name
from ..request import Request
from ..response import BaseResponse, Response, error_response
from .handshake import check_handshake
from .session import WebSocket, WebSocketClosed, WebSocketSettings

__all__ = ["WebSocketHandler", "log_fields", "serve_websocket"]

log = logging.getLogger("trio_http.error")

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
    logged traceback; the close code and message counts go to the request's access-log line.
    Returns the response for the connection (ignored after a 101).
    """
    offer = check_handshake(
        request.method, request.http_version, request.headers,
        allowed_origins=settings.allowed_origins,
    )  # fmt: skip
    if isinstance(offer, HTTPError):
        raise offer
    failure: Exception | None = None  # raised before the 101: answered as HTTP
    result: BaseResponse | None = None
    async with trio.open_nursery() as nursery:
        websocket = WebSocket(request, offer, settings, nursery)
        try:
            result = await handler(websocket)
        except WebSocketClosed:
            pass  # the handler let the peer's close end it: fine
        except Exception as exc:
            if websocket.state == "connecting":
                failure = exc
            else:
                peer = peer_name(request.client)
                log.exception("%s: WebSocket handler failed for %s", peer, request.target)
                await websocket.close(1011, "internal error")
        if websocket.state != "connecting":
            await websocket.close(1000)
        nursery.cancel_scope.cancel()  # the reader (pings come from the shared timer)
    if failure is not None:
        raise failure  # outside the nursery: an HTTPError keeps its status, the rest is a 500
    if websocket.state == "connecting":
        return result if isinstance(result, BaseResponse) else error_response(403, "refused")
    request.log_fields = log_fields(websocket)
    return Response(status=200)  # not sent: the connection switched protocols


def log_fields(websocket: WebSocket) -> dict[str, str | int]:
    """What the access-log line of a WebSocket's request adds: close code, messages and bytes
    each way (its duration is the line's own)."""
    return {
        "ws_close": websocket.close_code or 1006,
        "ws_in": f"{websocket.messages_in}/{websocket.bytes_in}B",
        "ws_out": f"{websocket.messages_out}/{websocket.bytes_out}B",
    }
