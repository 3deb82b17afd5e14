"""Serving an ASGI application: the lifespan around a :class:`~trio_http.Server`.

:class:`ASGIServer` is a :class:`~trio_http.Server` whose requests go to an
:class:`~trio_http.asgi.http.ASGIHost`, with the lifespan protocol around it: startup completes
before the first connection is accepted, shutdown runs after the connections have drained.
:func:`serve_asgi` is the short way, as :func:`trio_http.serve` is for handlers::

    async with trio_http.asgi.serve_asgi(app, "127.0.0.1", 0) as addresses:
        ...
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from functools import partial
from typing import Any

import trio

from ..accesslog import LogFormat
from ..config import ServerConfig
from ..listeners import Address
from ..server import ServeCall, Server
from ..websocket.settings import WebSocketSettings
from .http import ASGIHost
from .lifespan import Lifespan, LifespanFailed, LifespanMode
from .proxy import TrustedProxies
from .scope import ScopeSettings
from .types import ASGIApp

__all__ = ["ASGIServer", "serve_asgi"]


class ASGIServer(Server):
    """A :class:`~trio_http.Server` for the ASGI application *app*.

    *lifespan*: ``"auto"`` runs the lifespan protocol if the app supports it, ``"on"`` requires
    it, ``"off"`` skips it.  *root_path* is where the app is mounted; *proxies* are the peers
    whose ``Forwarded`` / ``X-Forwarded-*`` headers are believed.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: ServerConfig | None = None,
        *,
        lifespan: LifespanMode = "auto",
        root_path: str = "",
        proxies: TrustedProxies | None = None,
        websocket: WebSocketSettings | None = None,
        access_log_format: LogFormat = "combined",
    ) -> None:
        self.settings = ScopeSettings(
            root_path=root_path,
            proxies=proxies,
            state={},
            websocket=websocket or WebSocketSettings(),
        )
        super().__init__(ASGIHost(app, self.settings), config, access_log_format=access_log_format)
        self.app = app
        self.lifespan_mode: LifespanMode = lifespan
        # The lifespan shutdown runs shielded from the caller's cancellation; stop_now ends it.
        self._shutdown_scope = trio.CancelScope(shield=True)

    def stop_now(self) -> None:
        """Abort every connection, and the app's lifespan shutdown, at once."""
        super().stop_now()
        self._shutdown_scope.cancel()

    async def run(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start up the app, serve until shut down, shut the app down.

        Raises :class:`~trio_http.asgi.lifespan.LifespanFailed` (before reporting any address)
        if the app's startup fails; the listeners are closed then, and nothing is served.
        """
        lifespan = Lifespan(self.app, self.lifespan_mode, self.settings.state)
        done = trio.Event()
        failure: LifespanFailed | None = None  # raised below, outside the nursery, as itself
        async with trio.open_nursery() as nursery:
            app_nursery: trio.Nursery = await nursery.start(_shielded_nursery, done)
            try:
                try:
                    await lifespan.startup(app_nursery)
                except BaseException as exc:
                    for listener in listeners:  # nothing will be served
                        await trio.aclose_forcefully(listener)
                    if not isinstance(exc, LifespanFailed):
                        raise
                    failure = exc
                else:
                    try:
                        await super().run(listeners, task_status=task_status)
                    finally:
                        with self._shutdown_scope:
                            await lifespan.shutdown(timeout=self.config.graceful_timeout)
            finally:
                done.set()
        if failure is not None:
            raise failure


async def _shielded_nursery(
    done: trio.Event, *, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED
) -> None:
    """A nursery the caller's cancellation does not reach, until *done*: the lifespan task
    lives there, since shutting the server down by cancelling it must not cancel the app's
    lifespan before its shutdown has run."""
    with trio.CancelScope(shield=True):
        async with trio.open_nursery() as nursery:
            task_status.started(nursery)
            await done.wait()


def serve_asgi(
    app: ASGIApp,
    host: str | None = "127.0.0.1",
    port: int = 8000,
    *,
    config: ServerConfig | None = None,
    lifespan: LifespanMode = "auto",
    root_path: str = "",
    proxies: TrustedProxies | None = None,
    websocket: WebSocketSettings | None = None,
    backlog: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
) -> ServeCall:
    """Serve the ASGI application *app* on *host*:*port*, as :func:`trio_http.serve` does a
    handler: with ``nursery.start`` or as an async context manager (see there)."""
    make_server = partial(
        ASGIServer,
        app,
        config,
        lifespan=lifespan,
        root_path=root_path,
        proxies=proxies,
        websocket=websocket,
    )
    return ServeCall(make_server, host, port, backlog, ssl_context, task_status)
