"""Listening, accepting, and shutting down: the Trio shell around :class:`HTTPConnection`.

:class:`Server` runs ``trio.serve_listeners`` with its own *connection nursery*, which is
shielded from the caller's cancellation.  That is what makes shutdown graceful: when the
caller cancels (or :meth:`Server.shutdown` is called), accepting stops at once, idle
connections close, in-flight requests get ``graceful_timeout`` seconds to finish, and only
then is the connection nursery cancelled.  :meth:`Server.stop_now` skips the wait.

:func:`serve` is the short way: it opens the listeners and runs a :class:`Server`.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import ssl
import sys
import time
import warnings
from collections.abc import Callable, Coroutine, Generator, Sequence
from contextlib import AsyncExitStack
from functools import partial
from types import TracebackType
from typing import Any

import trio

from .accesslog import AccessLogger, LogFormat
from .config import ServerConfig
from .errors import HTTPError
from .http11 import HTTPConnection
from .http11.exchange import ExchangeApp
from .listeners import Address, accept_in_batches, listener_addresses, open_listeners
from .request import Handler

__all__ = ["Address", "ConnectionRegistry", "ServeCall", "Server", "serve"]

log = logging.getLogger("trio_http.error")

#: The answer to every request on a connection over ``limit_concurrency``.
_OVERLOADED = HTTPError(503, "server is busy", headers={"retry-after": "1"}, close=True)


class ConnectionRegistry:
    """The live connections of one server, so shutdown can find the idle ones.

    :meth:`drain` marks the server as draining: idle connections are closed at once, busy ones
    finish their current response (sent with ``Connection: close``) and then close.
    Connections that only answer ``503`` (over ``limit_concurrency``) are kept apart, so they
    do not count against the limit.
    """

    def __init__(self) -> None:
        self.connections: set[HTTPConnection] = set()
        self.refusing: set[HTTPConnection] = set()
        self.draining = False

    def add(self, connection: HTTPConnection) -> None:
        (self.refusing if connection.refusing else self.connections).add(connection)

    def discard(self, connection: HTTPConnection) -> None:
        (self.refusing if connection.refusing else self.connections).discard(connection)

    def drain(self) -> None:
        self.draining = True
        for connection in [*self.connections, *self.refusing]:
            connection.close_if_idle()


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


class _AcceptFailures(logging.Filter):
    """Turns trio's line per failed ``accept`` (every 100 ms while out of file descriptors)
    into one line when the failures start and one with their count when accepting works
    again."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self._since = 0.0
        self._reason = ""

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("accept returned"):
            return True
        if self.count == 0:
            self._since = time.monotonic()
            error = record.exc_info[1] if record.exc_info else None
            code = getattr(error, "errno", None) or 0
            self._reason = f"{errno.errorcode.get(code, code)} ({os.strerror(code)})"
            log.error(
                "cannot accept connections: %s; retrying every 0.1 s, logged again when it "
                "recovers",
                self._reason,
            )
        self.count += 1
        return False

    def recovered(self) -> None:
        if self.count:
            log.warning(
                "accepting connections again after %d failed attempts in %.1f s: %s",
                self.count,
                time.monotonic() - self._since,
                self._reason,
            )
            self.count = 0


class Server:
    """An HTTP server for *handler*.  Run it once with :meth:`run`; stop it by cancelling
    that, or with :meth:`shutdown` (graceful) and :meth:`stop_now`."""

    def __init__(
        self,
        handler: Handler | ExchangeApp,
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
        self._started = False
        self._accept_failures = _AcceptFailures()

    async def run(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept on *listeners* until shut down; reports the bound addresses via *task_status*.

        Returns after a shutdown once every connection is closed.  Closes the listeners.
        Raises ``RuntimeError`` if this server has run before: create a new one instead.
        """
        if self._started:
            raise RuntimeError("this Server has already run; create a new Server to serve again")
        self._started = True
        trio_accept_log = logging.getLogger("trio.serve_listeners")
        trio_accept_log.addFilter(self._accept_failures)
        try:
            async with trio.open_nursery() as nursery:
                try:
                    # In the try: a cancellation while it starts must still end the shielded
                    # connection nursery (_begin_drain), or it would wait for ever.
                    connections: trio.Nursery = await nursery.start(self._hold_connections)
                    with self._stop_accepting:
                        if self._stop_requested:
                            self._stop_accepting.cancel()
                        async with trio.open_nursery() as acceptors:
                            await acceptors.start(self._accept, list(listeners), connections)
                            task_status.started(listener_addresses(listeners))
                finally:
                    self._begin_drain(self.config.graceful_timeout)
        finally:
            trio_accept_log.removeFilter(self._accept_failures)
            self._accept_failures.recovered()

    async def serve(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Deprecated alias of :meth:`run` (to be removed after 0.2)."""
        warnings.warn("Server.serve() is now Server.run()", DeprecationWarning, stacklevel=2)
        await self.run(listeners, task_status=task_status)

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
            self._handle,
            accept_in_batches(listeners),
            handler_nursery=connections,
            task_status=task_status,
        )

    def _handle(self, stream: trio.abc.Stream) -> Coroutine[Any, Any, None]:
        """The connection's task: ``HTTPConnection.run``, answering ``503`` when over the limit.

        A plain function returning the coroutine (``serve_listeners`` awaits what it returns):
        an ``async def`` here would stay suspended under every connection for its whole life,
        one more frame of memory per idle connection.
        """
        self._accept_failures.recovered()
        limit = self.config.limit_concurrency
        overloaded = limit is not None and len(self.registry.connections) >= limit
        connection = HTTPConnection(
            stream,
            self.handler,
            self.config,
            client=_client_address(stream),
            registry=self.registry,
            access_logger=self._access_logger,
            refuse_with=_OVERLOADED if overloaded else None,
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


def serve(
    handler: Handler,
    host: str | None = "127.0.0.1",
    port: int = 8000,
    *,
    config: ServerConfig | None = None,
    backlog: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
) -> ServeCall:
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
    return ServeCall(
        partial(Server, handler, config), host, port, backlog, ssl_context, task_status
    )


class ServeCall(Coroutine[Any, Any, None]):
    """What :func:`serve` returns: a coroutine and an async context manager at once.

    It opens the listeners and runs the server *make_server* builds.  The coroutine is created
    only when first driven, so using the object purely as a context manager leaves no
    never-awaited coroutine behind.
    """

    def __init__(
        self,
        make_server: Callable[[], Server],
        host: str | None,
        port: int,
        backlog: int | None,
        ssl_context: ssl.SSLContext | None,
        task_status: trio.TaskStatus[list[Address]],
    ) -> None:
        self._make_server = make_server
        self._host = host
        self._port = port
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._task_status = task_status
        self._coroutine: Coroutine[Any, Any, None] | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None

    async def _run(
        self, *, task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await open_listeners(
            self._host, self._port, backlog=self._backlog, ssl_context=self._ssl_context
        )
        await self._make_server().run(listeners, task_status=task_status)

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
        stack = AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        try:
            addresses: list[Address] = await nursery.start(self._run)
        except BaseException:
            # It could not start (no listener, a failed lifespan startup): leave the nursery
            # now, so the error reaches the caller as itself.
            nursery.cancel_scope.cancel()
            await stack.aclose()
            raise
        self._exit_stack, self._nursery = stack, nursery
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


def __getattr__(name: str) -> Any:
    if name == "Serving":  # the old name of what serve() returns
        warnings.warn("trio_http.server.Serving is private now", DeprecationWarning, stacklevel=2)
        return ServeCall
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
