"""Several worker processes sharing one port, under a supervising parent.

Each worker is an ordinary ``trio-http serve`` process with its own Trio loop and its own
listening socket, bound with ``SO_REUSEPORT`` so the kernel spreads new connections across
the workers.  (Sharing one inherited socket would let every worker wake for every connection;
``SO_REUSEPORT`` gives each worker its own accept queue.)  The parent reserves the port by
binding (not listening on) a socket of its own first, so ``--port 0`` works too.

The parent forwards SIGTERM and SIGINT to the workers (a second signal is forwarded as well,
which the workers take as "stop now"; each worker has a session of its own so that signals
meant for the supervisor's process group reach it only once, through the supervisor),
restarts a worker that dies unexpectedly, and gives up when workers keep dying right after
starting.  Workers watch the supervisor and shut down gracefully when it dies, so no worker
outlives it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable, Sequence

import trio

__all__ = [
    "SUPERVISOR_ENV",
    "reserve_port",
    "reuse_port_supported",
    "supervise",
    "watch_supervisor",
]

log = logging.getLogger("trio_http")

#: Set in a worker's environment to the supervisor's PID.
SUPERVISOR_ENV = "TRIO_HTTP_SUPERVISOR_PID"
#: A worker that dies sooner than this after starting counts as failing to start.
QUICK_DEATH = 1.0
#: Consecutive quick deaths after which the supervisor gives up.
MAX_QUICK_DEATHS = 5


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) a ``SO_REUSEPORT`` socket: the port is ours, its number known.

    Raises ``OSError`` when the port is taken by a process that did not set ``SO_REUSEPORT``.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def watch_supervisor(on_gone: Callable[[], None]) -> None:
    """In a worker: call *on_gone* once the supervisor has died, then return.

    Waits on a pidfd of the supervisor (readable when it exits), so nothing polls.  Not
    ``PR_SET_PDEATHSIG``: that fires when the *thread* that started the worker exits, and trio
    starts processes from worker threads that end after a few idle seconds.  Returns at once
    outside a supervised worker.
    """
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor is None:
        return
    pid = int(supervisor)
    if not hasattr(os, "pidfd_open"):  # not Linux: look every half second instead
        while os.getppid() == pid:  # noqa: ASYNC110 - nothing to wait on but the clock
            await trio.sleep(0.5)
        log.warning("the supervisor (pid %d) is gone: shutting down", pid)
        on_gone()
        return
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        pidfd = None
    if pidfd is not None:
        try:
            # The PID could have been reused between our start and pidfd_open: check that
            # it is still our parent before trusting the descriptor.
            if os.getppid() == pid:
                await trio.lowlevel.wait_readable(pidfd)
        finally:
            os.close(pidfd)
    log.warning("the supervisor (pid %d) is gone: shutting down", pid)
    on_gone()


class _Worker:
    def __init__(self, number: int) -> None:
        self.number = number
        self.process: trio.Process | None = None
        self.quick_deaths = 0


#: Worker exit statuses that stop the supervisor with the same status (see supervise).
FATAL_STATUSES = frozenset({2, 3})


async def supervise(command: Sequence[str], workers: int) -> int:
    """Run *workers* copies of *command*; returns the exit status for the supervisor.

    Returns 0 after a signal-initiated shutdown in which every worker exited cleanly, 1 if
    the workers kept failing to start (or a worker failed during shutdown), and a worker's
    own status 2 or 3 (a usage error, a failed application startup) at once: restarting
    cannot mend those.
    """
    environment = {**os.environ, SUPERVISOR_ENV: str(os.getpid())}
    stopping = False
    failed = False
    fatal: int | None = None
    pool = [_Worker(number) for number in range(1, workers + 1)]

    def stop(signum: int) -> None:
        nonlocal stopping
        stopping = True
        for worker in pool:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(signum)

    async def run_worker(worker: _Worker) -> None:
        """Keep one worker running until the supervisor stops."""
        nonlocal failed, fatal
        while not stopping:
            started = trio.current_time()
            # A session of its own: a terminal's Ctrl-C (sent to the foreground process group)
            # reaches only the supervisor, which forwards it once.  Otherwise every worker
            # would get it twice and take the second as "stop now".
            process = await trio.lowlevel.open_process(
                list(command), env=environment, start_new_session=True
            )
            worker.process = process
            if stopping:  # a signal arrived while it was starting
                process.send_signal(signal.SIGTERM)
            log.info("worker %d started (pid %d)", worker.number, process.pid)
            status = await process.wait()
            if stopping:
                # Killed by the forwarded signal itself: it was still starting, nothing lost.
                if status not in (0, -signal.SIGTERM, -signal.SIGINT):
                    log.error("worker %d exited with status %d", worker.number, status)
                    failed = True
                return
            if status in FATAL_STATUSES:
                log.error("worker %d exited with status %d: stopping", worker.number, status)
                fatal = status
                stop(signal.SIGTERM)
                return
            quick = trio.current_time() - started < QUICK_DEATH
            worker.quick_deaths = worker.quick_deaths + 1 if quick else 0
            log.error("worker %d (pid %d) died with status %d", worker.number, process.pid, status)
            if worker.quick_deaths >= MAX_QUICK_DEATHS:
                log.error("workers keep dying right after starting: giving up")
                failed = True
                stop(signal.SIGTERM)
                return
            # Back off when a worker cannot stay up, so a crash loop does not spin the CPU.
            await trio.sleep(min(worker.quick_deaths, 5) * 0.2)

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def forward_signals() -> None:
                async for signum in signals:
                    log.info("%s: stopping %d workers", signal.Signals(signum).name, workers)
                    stop(signum)

            nursery.start_soon(forward_signals)
            async with trio.open_nursery() as worker_tasks:
                for worker in pool:
                    worker_tasks.start_soon(run_worker, worker)
            # Every worker task returned, which happens only once stopping.
            nursery.cancel_scope.cancel()
    if fatal is not None:
        return fatal
    return 1 if failed else 0
