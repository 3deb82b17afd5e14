"""Listening, accepting, and shutting down: the Trio shell around :class:`HTTPConnection`.

:class:`Server` runs ``trio.serve_listeners`` with its own *connection nursery*, which is
shielded from the caller's cancellation.  That is what makes shutdown graceful: when the
caller cancels (or :meth:`Server.shutdown` is called), accepting stops at once, idle
connections close, in-flight requests get ``graceful_timeout`` seconds to finish, and only
then is the connection nursery cancelled.  :meth:`Server.stop_now` skips the wait.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import ssl
import sys
from collections.abc import Coroutine, Generator, Sequence
from contextlib import AsyncExitStack
from functools import partial
from types import TracebackType
from typing import Any

import trio

from .accesslog import AccessLogger, LogFormat
from .config import ServerConfig
from .connection import ConnectionRegistry, HTTPConnection
from .routing import Handler

__all__ = ["Address", "Server", "Serving", "serve"]

log = logging.getLogger("trio_http.error")

Address = tuple[str, int]

# Sent without h11 to a connection over the limit: it never gets a task of its own.
_OVERLOADED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 39\r\n"
    b"connection: close\r\nretry-after: 1\r\n\r\n503 Service Unavailable: server is busy\n"
)


def _client_address(stream: trio.abc.Stream) -> Address | None:
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    sock = getattr(stream, "socket", None)
    if sock is None:
        return None
    try:
        peer = sock.getpeername()
    except OSError:
        return None
    if isinstance(peer, tuple):
        # Interned: thousands of connections from a few hosts share one string each.
        return sys.intern(str(peer[0])), int(peer[1])
    return None


async def _refuse_overloaded(stream: trio.abc.Stream) -> None:
    """Answer ``503`` without reading the request; ``serve_listeners`` closes the stream."""
    with (
        trio.move_on_after(1),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError),
    ):
        await stream.send_all(_OVERLOADED)


class Server:
    """An HTTP server for *handler*.  Run it with :meth:`serve`; stop it by cancelling that,
    or with :meth:`shutdown` (graceful) and :meth:`stop_now`."""

    def __init__(
        self,
        handler: Handler,
        config: ServerConfig | None = None,
        *,
        access_log_format: LogFormat = "combined",
    ) -> None:
        self.handler = handler
        self.config = config or ServerConfig()
        self.registry = ConnectionRegistry()
        self._access_logger = AccessLogger(access_log_format) if self.config.access_log else None
        self._stop_accepting = trio.CancelScope()
        self._connections_scope: trio.CancelScope | None = None
        self._draining = trio.Event()
        self._stop_requested = False

    async def serve(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept on *listeners* until shut down; reports the bound addresses via *task_status*.

        Returns after a shutdown once every connection is closed.  Closes the listeners.
        """
        async with trio.open_nursery() as nursery:
            connections: trio.Nursery = await nursery.start(self._hold_connections)
            try:
                with self._stop_accepting:
                    if self._stop_requested:
                        self._stop_accepting.cancel()
                    async with trio.open_nursery() as acceptors:
                        await acceptors.start(self._accept, list(listeners), connections)
                        task_status.started(_listener_addresses(listeners))
            finally:
                self._begin_drain(self.config.graceful_timeout)

    async def _hold_connections(
        self, *, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the connection nursery until a drain is requested and every connection ends.

        Shielded: the caller's cancellation must not reach in-flight requests before they had
        their graceful_timeout.  :meth:`_begin_drain` sets the deadline that ends stragglers.
        """
        with trio.CancelScope(shield=True) as scope:
            self._connections_scope = scope
            async with trio.open_nursery() as connections:
                task_status.started(connections)
                await self._draining.wait()

    async def _accept(
        self,
        listeners: list[trio.abc.Listener[Any]],
        connections: trio.Nursery,
        *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await trio.serve_listeners(
            self._handle, listeners, handler_nursery=connections, task_status=task_status
        )

    def _handle(self, stream: trio.abc.Stream) -> Coroutine[Any, Any, None]:
        """The connection's task: ``HTTPConnection.run``, or a ``503`` when over the limit.

        A plain function returning the coroutine (``serve_listeners`` awaits what it returns):
        an ``async def`` here would stay suspended under every connection for its whole life,
        one more frame of memory per idle connection.
        """
        limit = self.config.limit_concurrency
        if limit is not None and len(self.registry.connections) >= limit:
            return _refuse_overloaded(stream)
        connection = HTTPConnection(
            stream,
            self.handler,
            self.config,
            client=_client_address(stream),
            registry=self.registry,
            access_logger=self._access_logger,
        )
        return connection.run()

    def shutdown(self) -> None:
        """Stop accepting, close idle connections, give the rest ``graceful_timeout``."""
        self._stop_requested = True
        self._stop_accepting.cancel()

    def stop_now(self) -> None:
        """Abort every connection at once."""
        self.shutdown()
        if self._connections_scope is not None:
            self._connections_scope.cancel()

    def _begin_drain(self, timeout: float) -> None:
        self._draining.set()
        self.registry.drain()
        if self._connections_scope is not None:
            deadline = trio.current_time() + timeout if math.isfinite(timeout) else math.inf
            self._connections_scope.deadline = min(self._connections_scope.deadline, deadline)


def _listener_addresses(listeners: Sequence[trio.abc.Listener[Any]]) -> list[Address]:
    addresses = []
    for listener in listeners:
        if isinstance(listener, trio.SSLListener):
            listener = listener.transport_listener
        sock = getattr(listener, "socket", None)
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            host, port = sock.getsockname()[:2]
            addresses.append((str(host), int(port)))
    return addresses


def serve(
    handler: Handler,
    host: str | None = "127.0.0.1",
    port: int = 8000,
    *,
    config: ServerConfig | None = None,
    backlog: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
) -> Serving:
    """Serve *handler* (usually an :class:`~trio_http.App`) on *host*:*port*.

    Two ways to run it.  With ``nursery.start``, which returns the bound addresses once
    listening and serves until the nursery is cancelled (``port=0`` picks a free port)::

        addresses = await nursery.start(trio_http.serve, app, "127.0.0.1", 0)

    Or as an async context manager, which yields the addresses and shuts the server down
    when the block ends::

        async with trio_http.serve(app, "127.0.0.1", 0) as addresses:
            ...

    (``await trio_http.serve(app)`` also works: it serves until cancelled.)

    *host* ``None`` listens on every interface.  With *ssl_context* it serves HTTPS (the TLS
    handshake counts against ``config.header_timeout``).  Cancellation shuts down gracefully
    (see :class:`Server`): in-flight requests get up to ``config.graceful_timeout`` seconds.
    Raises ``OSError`` if it cannot listen.
    """
    return Serving(
        handler,
        host,
        port,
        config=config,
        backlog=backlog,
        ssl_context=ssl_context,
        task_status=task_status,
    )


class Serving(Coroutine[Any, Any, None]):
    """What :func:`serve` returns: a coroutine and an async context manager at once.

    The coroutine is created only when first driven, so using the object purely as a
    context manager leaves no never-awaited coroutine behind.
    """

    def __init__(
        self,
        handler: Handler,
        host: str | None,
        port: int,
        *,
        config: ServerConfig | None,
        backlog: int | None,
        ssl_context: ssl.SSLContext | None,
        task_status: trio.TaskStatus[list[Address]],
    ) -> None:
        self._run = partial(
            _serve, handler, host, port, config=config, backlog=backlog, ssl_context=ssl_context
        )
        self._task_status = task_status
        self._coroutine: Coroutine[Any, Any, None] | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None

    def _driven(self) -> Coroutine[Any, Any, None]:
        if self._coroutine is None:
            self._coroutine = self._run(task_status=self._task_status)
        return self._coroutine

    def send(self, value: Any) -> Any:
        return self._driven().send(value)

    def throw(self, *args: Any) -> Any:
        return self._driven().throw(*args)

    def close(self) -> None:
        if self._coroutine is not None:
            self._coroutine.close()

    def __await__(self) -> Generator[Any, None, None]:
        return self._driven().__await__()

    async def __aenter__(self) -> list[Address]:
        self._exit_stack = AsyncExitStack()
        self._nursery = await self._exit_stack.enter_async_context(trio.open_nursery())
        addresses: list[Address] = await self._nursery.start(self._run)
        return addresses

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._exit_stack is not None and self._nursery is not None
        self._nursery.cancel_scope.cancel()
        suppress: bool | None = await self._exit_stack.__aexit__(exc_type, exc, traceback)
        return suppress


async def _serve(
    handler: Handler,
    host: str | None,
    port: int,
    *,
    config: ServerConfig | None,
    backlog: int | None,
    ssl_context: ssl.SSLContext | None,
    task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
) -> None:
    tcp_listeners = await trio.open_tcp_listeners(port, host=host, backlog=backlog)
    listeners: list[trio.abc.Listener[Any]] = list(tcp_listeners)
    if ssl_context is not None:
        listeners = [
            trio.SSLListener(listener, ssl_context, https_compatible=True)
            for listener in tcp_listeners
        ]
    await Server(handler, config).serve(listeners, task_status=task_status)
