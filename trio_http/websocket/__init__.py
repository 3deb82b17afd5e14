"""WebSockets (RFC 6455, RFC 7692 compression) over the connection's upgrade seam, via wsproto.

- ``handshake.py``: the opening handshake, pure: what a request offers, what a 101 says;
- ``deflate.py``: ``permessage-deflate`` with the size limit on the inflated message;
- ``session.py``: :class:`WebSocket`: the frames, pings, close handshake, limits;
- ``route.py``: :func:`serve_websocket`, which a route handler of :meth:`App.websocket
  <trio_http.App.websocket>` runs.
"""

from __future__ import annotations

from .route import WebSocketHandler, serve_websocket
from .session import WebSocket, WebSocketClosed
from .settings import WebSocketSettings

__all__ = [
    "WebSocket",
    "WebSocketClosed",
    "WebSocketHandler",
    "WebSocketSettings",
    "serve_websocket",
]
