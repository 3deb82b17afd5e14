"""Run a ``trio_http.Server`` yourself: your own listeners, a read-only file server beside
your own route, a JSON access log, and the CLI's signal handling (the first SIGINT or SIGTERM
shuts down gracefully, a second one stops at once).  Importing this module starts nothing.

    python docs/examples/static_site.py /path/to/site
    curl http://127.0.0.1:8000/static/index.html
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import trio

from trio_http import App, Request, Response, Server, ServerConfig
from trio_http.files import FileServer


def make_app(root: Path) -> App:
    app = App()
    FileServer(root, read_only=True, listings=False).install(app, "/static")

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        return Response("ok\n", content_type="text/plain")

    return app


async def stop_on_signals(server: Server) -> None:
    """First SIGINT or SIGTERM: ``shutdown()``.  Second: ``stop_now()``."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        stopping = False
        async for _ in signals:
            if stopping:
                server.stop_now()  # abort every connection
                return
            stopping = True
            server.shutdown()  # stop accepting; in-flight requests get graceful_timeout


async def serve_until_stopped(
    server: Server,
    listeners: list[trio.SocketListener],
    *,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``server.shutdown()`` or ``server.stop_now()``, e.g. from a signal."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signals, server)

        async def serve(
            *, task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED
        ) -> None:
            await server.run(listeners, task_status=task_status)
            nursery.cancel_scope.cancel()  # every connection is closed: stop watching signals

        addresses = await nursery.start(serve)
        task_status.started(addresses)


async def run(root: Path, port: int = 8000) -> None:
    server = Server(make_app(root), ServerConfig(graceful_timeout=10.0), access_log_format="json")
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(serve_until_stopped, server, listeners)
        print("listening on", ", ".join(f"http://{h}:{p}" for h, p in addresses))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    trio.run(run, Path(sys.argv[1] if len(sys.argv) > 1 else "."))


if __name__ == "__main__":
    main()
