"""The built-in endpoints: the CodeCrafters contract plus the file server.

They use nothing but the public route layer, so they double as its first example.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import HTTPError
from .files import FileServer
from .files.access import AccessRules
from .files.tus import TusServer
from .request import Request
from .response import Response
from .routing import App

__all__ = ["BuiltApp", "ResumableUploads", "build", "build_app"]


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


@dataclass(frozen=True)
class ResumableUploads:
    """The tus endpoint at ``/uploads/`` (see :class:`~trio_http.files.tus.TusServer`)."""

    #: Largest ``Upload-Length`` (``--max-body-size``).
    max_size: int = 1024**3
    #: Unfinished uploads not written for this long are removed (``--upload-expiry``).
    expiry: float = 24 * 3600.0
    #: Unfinished uploads at once; more get ``503``.
    max_uploads: int = 100


@dataclass(frozen=True)
class BuiltApp:
    """The app, and what must run beside it while it serves (the expiry of tus uploads)."""

    app: App
    background: tuple[Callable[[], Awaitable[None]], ...] = ()


def build(
    directory: Path | None = None,
    *,
    read_only: bool = False,
    follow_symlinks: bool = False,
    allow_hidden: bool = False,
    listings: bool = True,
    access: AccessRules | None = None,
    archives: bool = True,
    uploads: ResumableUploads | None = ResumableUploads(),
    trusted_origins: Iterable[str] = (),
) -> BuiltApp:
    """What ``trio-http serve`` runs; without *directory* there are no ``/files`` routes.

    Unless *read_only* or *uploads* is ``None``, resumable uploads are at ``/uploads/``, for
    the same paths and under the same access rules as ``PUT``.
    """
    app = App()
    app.add_route("/", root, ["GET"])
    app.add_route("/echo/{text}", echo, ["GET"])
    app.add_route("/user-agent", user_agent, ["GET"])
    app.add_route("/healthz", healthz, ["GET"])
    if directory is None:
        return BuiltApp(app)
    files = FileServer(
        directory,
        read_only=read_only,
        follow_symlinks=follow_symlinks,
        allow_hidden=allow_hidden,
        listings=listings,
        access=access,
        archives=archives,
        trusted_origins=trusted_origins,
    )
    files.install(app)
    if read_only or uploads is None:
        return BuiltApp(app)

    async def may_write(request: Request, target: str) -> None:
        await files.visitor(request, target, write=True)

    tus = TusServer(
        files.policy.root,
        files.policy,
        max_size=uploads.max_size,
        expiry=uploads.expiry,
        max_uploads=uploads.max_uploads,
        authorize=may_write,
    )
    tus.install(app)
    files.upload_url = tus.prefix + "/"
    return BuiltApp(app, (tus.expire_periodically,))


def build_app(directory: Path | None = None, **options: Any) -> App:
    """:func:`build`'s app alone (tests, and programs that run no background tasks)."""
    return build(directory, **options).app
