"""trio-http: an HTTP/1.1 server for Trio, built on h11.

The public API::

    app = trio_http.App()

    @app.get("/hello/{name}")
    async def hello(request: trio_http.Request) -> trio_http.Response:
        return trio_http.Response(f"hello {request.path_params['name']}\\n")

    trio.run(trio_http.serve, app, "127.0.0.1", 8000)

The names are imported on first use, so that importing a pure module of the package
(``trio_http.protocol``, ``trio_http.headers``, ...) does not load trio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .compression import CompressionPolicy
    from .config import ServerConfig
    from .errors import BodyTooLarge, ClientDisconnected, HTTPError
    from .headers import Headers
    from .request import Handler, Request
    from .response import (
        BaseResponse,
        FileResponse,
        Representation,
        Response,
        StreamingResponse,
        Upgrade,
    )
    from .routing import App
    from .server import Server, serve
    from .websocket import WebSocket, WebSocketClosed, WebSocketSettings

#: Public name -> the module that defines it.
_EXPORTS = {
    "App": "routing",
    "BaseResponse": "response",
    "BodyTooLarge": "errors",
    "ClientDisconnected": "errors",
    "CompressionPolicy": "compression",
    "FileResponse": "response",
    "HTTPError": "errors",
    "Handler": "request",
    "Headers": "headers",
    "Representation": "response",
    "Request": "request",
    "Response": "response",
    "Server": "server",
    "ServerConfig": "config",
    "StreamingResponse": "response",
    "Upgrade": "response",
    "WebSocket": "websocket",
    "WebSocketClosed": "websocket",
    "WebSocketSettings": "websocket",
    "serve": "server",
}

__all__ = [
    "App",
    "BaseResponse",
    "BodyTooLarge",
    "ClientDisconnected",
    "CompressionPolicy",
    "FileResponse",
    "HTTPError",
    "Handler",
    "Headers",
    "Representation",
    "Request",
    "Response",
    "Server",
    "ServerConfig",
    "StreamingResponse",
    "Upgrade",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketSettings",
    "__version__",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trio_http' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return __all__
