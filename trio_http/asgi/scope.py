"""The ``http`` connection scope an ASGI application gets for a request (asgiref specs/www).

Pure: built from plain values the connection already has, so it is tested without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from ..request import Request
from ..websocket.settings import WebSocketSettings
from .proxy import TrustedProxies, client_and_scheme
from .types import Scope

__all__ = ["ASGI_VERSION", "ScopeSettings", "http_scope"]

#: The ASGI versions we implement: ASGI 3, HTTP and WebSocket spec 2.4 (asgiref specs/www).
ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


@dataclass(frozen=True)
class ScopeSettings:
    """What every scope of one server shares."""

    #: The mount point of the app (uvicorn's ``--root-path``): prefixed to ``path``.
    root_path: str = ""
    #: Peers whose ``Forwarded``/``X-Forwarded-*`` headers are believed (``None``: nobody's).
    proxies: TrustedProxies | None = None
    #: The lifespan state; each request gets a shallow copy.
    state: dict[str, Any] = field(default_factory=dict)
    #: Limits and timers of the app's WebSockets.
    websocket: WebSocketSettings = field(default_factory=WebSocketSettings)
    #: ``root_path`` as a proxy that strips it received it: percent-encoded UTF-8 (the front
    #: of every ``raw_path``; latin-1 cannot encode "/日本").
    raw_root_path: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        raw = quote(self.root_path, safe="/!$&'()*+,;=:@").encode("ascii")
        object.__setattr__(self, "raw_root_path", raw)


def http_scope(
    request: Request,
    *,
    server: tuple[str, int] | None,
    tls: bool,
    settings: ScopeSettings,
    extensions: dict[str, Any],
) -> Scope:
    """The scope for *request*, received on *server* (our address), over TLS or not."""
    raw_path = request.path.encode("latin-1")
    scheme = "https" if tls else "http"
    client = request.client
    if settings.proxies is not None:
        client, scheme = client_and_scheme(request.headers.raw, client, scheme, settings.proxies)
    root_path = settings.root_path
    return {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": request.http_version,
        "method": request.method,
        "scheme": scheme,
        # Percent-decoded UTF-8.  The spec's path is a Unicode string: an undecodable byte is
        # U+FFFD (as in uvicorn), not a lone surrogate that fails whoever encodes it (a 500).
        "path": root_path + unquote(request.path, errors="replace"),
        "raw_path": settings.raw_root_path + raw_path,
        "query_string": request.query_string.encode("latin-1"),
        "root_path": root_path,
        "headers": request.headers.raw,
        "client": client,
        "server": server,
        "state": settings.state.copy(),
        "extensions": extensions,
    }
