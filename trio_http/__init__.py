"""trio-http: an HTTP/1.1 server for Trio, built on h11.

The public API::

    app = trio_http.App()

    @app.get("/hello/{name}")
    async def hello(request: trio_http.Request) -> trio_http.Response:
        return trio_http.Response(f"hello {request.path_params['name']}\\n")

    trio.run(trio_http.serve, app, "127.0.0.1", 8000)
"""

from __future__ import annotations

__version__ = "0.1.0"

from .compression import CompressionPolicy
from .config import ServerConfig
from .errors import BodyTooLarge, ClientDisconnected, HTTPError
from .headers import Headers
from .request import Request
from .response import BaseResponse, FileResponse, Response, StreamingResponse
from .routing import App, Handler
from .server import Server, serve

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
    "Request",
    "Response",
    "Server",
    "ServerConfig",
    "StreamingResponse",
    "__version__",
    "serve",
]
