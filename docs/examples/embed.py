"""Embed trio-http in a Trio program: an app with its own routes beside another task.

A ticker task increments a counter every second; the app reads and sets it over HTTP.
``serve_counter`` runs both until it is cancelled, which shuts the server down gracefully.
``main`` turns SIGINT and SIGTERM into that cancellation.  Importing this module starts
nothing.

    python docs/examples/embed.py
    curl http://127.0.0.1:8000/count
    curl -X PUT -d 41 http://127.0.0.1:8000/count
    curl http://127.0.0.1:8000/count/watch/3
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from functools import partial

import trio

import trio_http
from trio_http import App, HTTPError, Request, Response, StreamingResponse

#: In-flight requests get 5 seconds once the server is asked to stop.
CONFIG = trio_http.ServerConfig(graceful_timeout=5.0)


class Counter:
    """The state that the ticker task and the handlers share."""

    def __init__(self) -> None:
        self.value = 0


async def tick(counter: Counter, interval: float = 1.0) -> None:
    """Increment *counter* every *interval* seconds, forever."""
    while True:
        await trio.sleep(interval)
        counter.value += 1


def make_app(counter: Counter) -> App:
    """The routes: read, set and watch *counter*."""
    app = App()

    @app.get("/count")
    async def get_count(request: Request) -> Response:
        return Response(f"{counter.value}\n", content_type="text/plain")

    @app.put("/count")
    async def set_count(request: Request) -> Response:
        body = await request.body(max_size=32)  # larger bodies get 413
        try:
            counter.value = int(body)
        except ValueError:
            raise HTTPError(400, "the body must be a whole number") from None
        return Response(status=204)

    @app.get("/count/watch/{times}")
    async def watch(request: Request) -> StreamingResponse:
        try:
            times = int(request.path_params["times"])
        except ValueError:
            times = 0
        if not 1 <= times <= 10:
            raise HTTPError(404, "watch 1 to 10 times")

        async def values() -> AsyncIterator[bytes]:
            for _ in range(times):
                yield f"{counter.value}\n".encode()
                await trio.sleep(1)

        return StreamingResponse(values(), content_type="text/plain")

    return app


async def serve_counter(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Count and serve until cancelled; report the listening addresses through *task_status*."""
    counter = Counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick, counter)
        addresses = await nursery.start(
            partial(trio_http.serve, make_app(counter), host, port, config=CONFIG)
        )
        task_status.started(addresses)


async def run_until_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(serve_counter)
            print("listening on", ", ".join(f"http://{h}:{p}" for h, p in addresses))
            async for _ in signals:
                print("stopping")
                nursery.cancel_scope.cancel()  # graceful: see docs/library.md
                break


def main() -> None:
    # The access log goes to the "trio_http.access" logger at INFO: show it.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    trio.run(run_until_signal)


if __name__ == "__main__":
    main()
