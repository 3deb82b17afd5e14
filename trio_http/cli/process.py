"""Running a server as a process: logging, signals, the listening line, listen errors, workers.

Shared by ``serve`` and ``run``.  The first SIGTERM/SIGINT shuts down gracefully, a second one
stops at once.  Before the server listens (an ASGI application still starting up), the first
one means "shut down as soon as the startup is over, without serving", the second cancels the
startup.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import socket
import sys
from collections.abc import Callable

import trio

from ..listeners import Address, open_listeners
from ..server import Server
from ..workers import reserve_port, reuse_port_supported, supervise, watch_supervisor
from .addresses import format_url, reachable_urls

__all__ = ["configure_logging", "listen_error", "run_server", "run_workers"]

log = logging.getLogger("trio_http")

#: Called with the server's nursery once it listens (for background chores).
AfterListening = Callable[[trio.Nursery], None]


def configure_logging(level: str) -> None:
    errors = logging.StreamHandler(sys.stderr)
    errors.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("trio_http")
    root.addHandler(errors)
    root.setLevel(level.upper())
    # The access log is data, not diagnostics: plain lines on stdout, at INFO whatever
    # --log-level says, but for debug, which also shows the lines of quiet requests (/healthz).
    access = logging.getLogger("trio_http.access")
    access_handler = logging.StreamHandler(sys.stdout)
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(access_handler)
    access.setLevel(logging.DEBUG if level == "debug" else logging.INFO)
    access.propagate = False


class _Lifecycle(trio.TaskStatus[list[Address]]):
    """Announces the server once it listens, and stops it on signals or when the supervisor
    dies: gracefully the first time, at once the second."""

    def __init__(
        self,
        server: Server,
        nursery: trio.Nursery,
        scheme: str,
        what: str,
        after: AfterListening | None,
    ) -> None:
        self.server = server
        self.nursery = nursery
        self.scheme = scheme
        self.what = what
        self.after = after
        self.listening = False
        self.shutting_down = False

    def started(self, value: list[Address] | None = None) -> None:
        """Called by ``Server.run`` once it accepts connections."""
        self.listening = True
        bound = value or []
        urls = ", ".join(format_url(self.scheme, host, port) for host, port in bound)
        log.info("listening on %s, %s", urls, self.what)
        if any(host in ("0.0.0.0", "::") for host, _ in bound):
            log.info("reachable at %s", ", ".join(reachable_urls(self.scheme, bound)))
        if self.after is not None:
            self.after(self.nursery)

    async def watch_signals(self) -> None:
        """First SIGTERM/SIGINT: graceful shutdown.  Second: stop now (and stop watching)."""
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if self.server.registry.draining or self.shutting_down:
                    log.info("%s again: stopping now", name)
                    self.server.stop_now()
                    if not self.listening:
                        # The application is still starting up: nothing to drain, and its
                        # startup may never end.
                        self.nursery.cancel_scope.cancel()
                    return
                if self.listening:
                    log.info(
                        "%s: shutting down (in-flight requests get %ss)",
                        name,
                        self.server.config.graceful_timeout,
                    )
                else:
                    log.info("%s: shutting down once the application has started", name)
                self.shutdown()

    def shutdown(self) -> None:
        self.shutting_down = True
        self.server.shutdown()


async def _run(
    server: Server, args: argparse.Namespace, what: str, after: AfterListening | None
) -> None:
    listeners = await open_listeners(
        args.host,
        args.port,
        backlog=args.backlog,
        ssl_context=args.ssl_context,
        reuse_port=args.reuse_port,
    )
    scheme = "https" if args.ssl_context else "http"
    async with trio.open_nursery() as nursery:
        lifecycle = _Lifecycle(server, nursery, scheme, what, after)
        # Install the signal handlers before announcing that we listen: a supervisor may
        # send SIGTERM as soon as it sees the log line.
        nursery.start_soon(lifecycle.watch_signals)
        nursery.start_soon(watch_supervisor, lifecycle.shutdown)
        await trio.lowlevel.checkpoint()
        # Shut down before listening (a signal while an ASGI application starts up), run()
        # returns without calling started(): no listening line, and a clean exit.
        await server.run(listeners, task_status=lifecycle)
        nursery.cancel_scope.cancel()
    log.info("stopped")


def run_server(
    server: Server,
    args: argparse.Namespace,
    what: str,
    *,
    after_listening: AfterListening | None = None,
) -> int:
    """Listen as *args* say, run *server* until a signal stops it; the exit status.

    Logs ``listening on URL, WHAT`` once listening, then calls *after_listening*.  Cannot
    listen: one error line, status 1.  Other exceptions (an ASGI startup failure) propagate.
    """
    try:
        trio.run(_run, server, args, what, after_listening)
    except OSError as exc:
        return listen_error(args, exc)
    except KeyboardInterrupt:  # pragma: no cover - the signal receiver handles SIGINT
        return 130
    return 0


def listen_error(args: argparse.Namespace, exc: OSError) -> int:
    if exc.errno == errno.EADDRINUSE:
        reason = "address already in use"
    elif exc.errno == errno.EACCES:
        reason = "permission denied (ports below 1024 need privileges)"
    else:
        reason = exc.strerror or str(exc)
    print(f"trio-http: error: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
    return 1


def supervisor_command(argv: list[str], port: int, *extra: str) -> list[str]:
    """The command line of a supervised child: this one on the reserved *port*, plus *extra*.

    argparse keeps the last occurrence of an option, so what is appended overrides the user's.
    """
    command = [sys.executable, "-m", "trio_http", *argv]
    return [*command, "--port", str(port), "--reuse-port", *extra]


def reserve_shared_port(args: argparse.Namespace, option: str) -> socket.socket | int:
    """The port a supervisor keeps for its children (``SO_REUSEPORT``), or the exit status
    after saying why it cannot."""
    if not reuse_port_supported():
        print(
            f"trio-http: error: {option} needs SO_REUSEPORT, which this system lacks",
            file=sys.stderr,
        )
        return 2
    try:
        return reserve_port(args.host, args.port)
    except OSError as exc:
        return listen_error(args, exc)


def run_workers(args: argparse.Namespace, argv: list[str]) -> int:
    """Supervise ``--workers`` processes that share the port (see workers.py)."""
    reserved = reserve_shared_port(args, "--workers")
    if isinstance(reserved, int):
        return reserved
    with reserved:
        port = reserved.getsockname()[1]
        command = supervisor_command(argv, port, "--workers", "1")
        log.info("supervising %d workers on %s:%d", args.workers, args.host, port)
        return trio.run(supervise, command, args.workers)
