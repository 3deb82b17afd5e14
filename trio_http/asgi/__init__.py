"""Hosting ASGI 3 applications (Starlette, FastAPI, Quart-Trio, ...) on trio-http.

- ``server.py``: :class:`ASGIServer` and :func:`serve_asgi`: the lifespan around a server;
- ``http.py``: :class:`ASGIHost`, the ``http`` scope over the connection's exchange seam;
- ``scope.py``: building the scope (pure);
- ``lifespan.py``: the lifespan protocol (startup before serving, shutdown after draining);
- ``loader.py``: ``MODULE:ATTR`` to an application, with one clear line when it fails;
- ``proxy.py``: trusted ``Forwarded`` / ``X-Forwarded-*`` headers (pure);
- ``types.py``: the ASGI type aliases.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .http import ASGIHost as ASGIHost
    from .lifespan import LifespanFailed as LifespanFailed
    from .loader import AppLoadError as AppLoadError
    from .loader import load_app as load_app
    from .proxy import TrustedProxies as TrustedProxies
    from .scope import ScopeSettings as ScopeSettings
    from .server import ASGIServer as ASGIServer
    from .server import serve_asgi as serve_asgi

#: Public name -> its module; imported on first use, so the pure modules load without trio.
_EXPORTS = {
    "ASGIHost": "http",
    "ASGIServer": "server",
    "AppLoadError": "loader",
    "LifespanFailed": "lifespan",
    "ScopeSettings": "scope",
    "TrustedProxies": "proxy",
    "load_app": "loader",
    "serve_asgi": "server",
}

__all__ = [
    "ASGIHost",
    "ASGIServer",
    "AppLoadError",
    "LifespanFailed",
    "ScopeSettings",
    "TrustedProxies",
    "load_app",
    "serve_asgi",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trio_http.asgi' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
