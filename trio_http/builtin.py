"""The built-in endpoints: the CodeCrafters contract plus the file server.

They use nothing but the public route layer, so they double as its first example.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import HTTPError
from .files import FileServer
from .files.access import AccessRules
from .request import Request
from .response import Response
from .routing import App

__all__ = ["build_app"]


async def root(request: Request) -> Response:
    """``GET /``: 200 with an empty body."""
    return Response()


async def echo(request: Request) -> Response:
    """``GET /echo/{text}``: the decoded text back as ``text/plain``.

    Compressed whenever the client accepts it, however short: the contract checks exactly that.
    """
    return Response(request.path_params["text"], content_type="text/plain", compress=True)


async def user_agent(request: Request) -> Response:
    """``GET /user-agent``: the request's ``User-Agent`` value as ``text/plain``."""
    value = request.headers.get("user-agent")
    if value is None:
        raise HTTPError(400, "the request has no User-Agent header")
    # Header bytes are decoded as Latin-1; encoding back the same way echoes them exactly.
    return Response(value.encode("latin-1"), content_type="text/plain")


async def healthz(request: Request) -> Response:
    """``GET /healthz``: ``{"status": "ok"}`` for load balancers and orchestrators.

    Touches no disk and no access rule, and logs at DEBUG: probes every few seconds would
    drown the access log.
    """
    request.access_log_level = logging.DEBUG
    return Response(_HEALTHY, content_type="application/json")


_HEALTHY = b'{"status": "ok"}'


def build_app(
    directory: Path | None = None,
    *,
    read_only: bool = False,
    follow_symlinks: bool = False,
    allow_hidden: bool = False,
    listings: bool = True,
    access: AccessRules | None = None,
    archives: bool = True,
) -> App:
    """The app ``trio-http serve`` runs; without *directory* there are no ``/files`` routes."""
    app = App()
    app.add_route("/", root, ["GET"])
    app.add_route("/echo/{text}", echo, ["GET"])
    app.add_route("/user-agent", user_agent, ["GET"])
    app.add_route("/healthz", healthz, ["GET"])
    if directory is not None:
        FileServer(
            directory,
            read_only=read_only,
            follow_symlinks=follow_symlinks,
            allow_hidden=allow_hidden,
            listings=listings,
            access=access,
            archives=archives,
        ).install(app)
    return app
