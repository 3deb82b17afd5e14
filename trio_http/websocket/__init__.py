"""WebSockets (RFC 6455, RFC 7692 compression) over the connection's upgrade seam, via wsproto.

- ``handshake.py``: the opening handshake, pure: what a request offers, what a 101 says;
- ``deflate.py``: ``permessage-deflate`` with the size limit on the inflated message;
- ``session.py``: :class:`WebSocket`: who reads, the frames, pings, close handshake, limits;
- ``sending.py``: frames out one at a time (:class:`SendTurn`) and answers owed, whole;
- ``messages.py``: what a WebSocket delivers and raises, pure;
- ``route.py``: :func:`serve_websocket`, which a route handler of :meth:`App.websocket
  <trio_http.App.websocket>` runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .route import WebSocketHandler as WebSocketHandler
    from .route import serve_websocket as serve_websocket
    from .session import WebSocket as WebSocket
    from .session import WebSocketClosed as WebSocketClosed
    from .settings import WebSocketSettings as WebSocketSettings

#: Public name -> its module; imported on first use, so the pure modules load without trio.
_EXPORTS = {
    "WebSocket": "session",
    "WebSocketClosed": "session",
    "WebSocketHandler": "route",
    "WebSocketSettings": "settings",
    "serve_websocket": "route",
}

__all__ = [
    "WebSocket",
    "WebSocketClosed",
    "WebSocketHandler",
    "WebSocketSettings",
    "serve_websocket",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trio_http.websocket' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
