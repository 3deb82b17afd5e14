"""``trio-http run --reload``: restart the server whenever a Python file changes (development).

A supervising parent reserves the port (as ``--workers`` does, so ``--port 0`` works and the
port stays the same), watches the directories with watchfiles, and runs the server as a child:
the same command line plus ``--reuse-port --no-reload``.  When a ``.py`` file changes it stops
the child (SIGTERM: a graceful shutdown, lifespan shutdown included; a second SIGTERM after
:data:`PATIENCE` seconds) and starts a new one, which imports the application afresh.  A child
that exits by itself (the application does not import, say) is started again after the next
change.  SIGTERM/SIGINT to the parent are forwarded to the child, and the parent exits once it
has.  The child is in a session of its own and watches the parent, as the workers do.

The parent imports nothing of the application.  watchfiles is an optional dependency (the
``reload`` extra): it is imported only here, and only with ``--reload``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path, PurePath

import trio

from ..workers import SUPERVISOR_ENV
from .process import reserve_shared_port, supervisor_command

__all__ = ["NEEDS_WATCHFILES", "PATIENCE", "run_reloader", "watchfiles_missing"]

log = logging.getLogger("trio_http")

NEEDS_WATCHFILES = "--reload needs watchfiles: pip install 'trio-http[reload]'"
#: Seconds a child has to stop gracefully for a restart before it is told to stop now.
PATIENCE = 5.0


def watchfiles_missing() -> bool:
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return True
    return False


def run_reloader(args: argparse.Namespace, argv: list[str], directories: list[Path]) -> int:
    """Run the server in a child, restarted on changes under *directories*; the exit status."""
    reserved = reserve_shared_port(args, "--reload")
    if isinstance(reserved, int):
        return reserved
    with reserved:
        port = reserved.getsockname()[1]
        command = supervisor_command(argv, port, "--no-reload")
        log.info("watching %s for changes (--reload)", ", ".join(map(str, directories)))
        return trio.run(_Reloader(command, directories).run)


class _Reloader:
    def __init__(self, command: list[str], directories: list[Path]) -> None:
        self.command = command
        self.directories = directories
        self.environment = {**os.environ, SUPERVISOR_ENV: str(os.getpid())}
        self.process: trio.Process | None = None
        self.stopping = False
        self.restarting = False
        #: Set to wake the main loop while no child runs (a change, or a signal).
        self.wake = trio.Event()
        #: Tells watchfiles' thread to return (it polls is_set()).
        self.stop_watching = trio.Event()
        self.status = 0

    async def run(self) -> int:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._watch)
                nursery.start_soon(self._forward_signals, signals)
                try:
                    await self._serve()
                finally:
                    # Stop watchfiles' thread first: cancelling alone waits out its timeout.
                    self.stop_watching.set()
                    nursery.cancel_scope.cancel()
        return self.status

    async def _serve(self) -> None:
        """Run the child; start it again after each change; return once stopped by a signal."""
        while not self.stopping:
            self.restarting = False
            process = await trio.lowlevel.open_process(
                self.command, env=self.environment, start_new_session=True
            )
            self.process = process
            if self.stopping:  # a signal arrived while it was starting
                process.send_signal(signal.SIGTERM)
            status = await process.wait()
            if self.stopping:
                if status not in (0, -signal.SIGTERM, -signal.SIGINT):
                    self.status = 1
                return
            if not self.restarting:
                log.error("the server exited with status %d; restarting on the next change", status)
                await self.wake.wait()
            self.wake = trio.Event()

    def _running(self) -> trio.Process | None:
        process = self.process
        return process if process is not None and process.returncode is None else None

    async def _forward_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            self.stopping = True
            process = self._running()
            if process is not None:
                log.info("%s: stopping the server", signal.Signals(signum).name)
                process.send_signal(signum)
            self.wake.set()

    async def _watch(self, *, task_status: trio.TaskStatus[None]) -> None:
        import watchfiles

        changes = watchfiles.awatch(
            *self.directories,
            watch_filter=watchfiles.PythonFilter(),
            stop_event=self.stop_watching,
        )
        # started() does not yield, so this task runs on into awatch(), which sets up the
        # watches before it first blocks: a change made once the server listens is seen.
        task_status.started()
        try:
            async for batch in changes:
                await self._restart(sorted({path for _, path in batch}))
        except Exception as exc:  # the watches cannot be set up (inotify's limit, ...)
            log.error("--reload cannot watch for changes: %s", exc)
            log.debug("the exception from watchfiles:", exc_info=exc)
            self.status = 1
            self.stopping = True
            process = self._running()
            if process is not None:
                process.send_signal(signal.SIGTERM)
            self.wake.set()

    async def _restart(self, paths: list[str]) -> None:
        """Stop the running server (it is started again by :meth:`_serve`) after a change."""
        shown = ", ".join(self._shown(path) for path in paths[:3])
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        log.info("%s%s changed: restarting the server", shown, more)
        if self.stopping:
            return
        self.restarting = True
        process = self._running()
        if process is None:
            self.wake.set()
            return
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(PATIENCE):
            await process.wait()
        if process.returncode is None and not self.stopping:
            log.warning("the server is slow to stop: stopping it now")
            process.send_signal(signal.SIGTERM)
            await process.wait()

    def _shown(self, path: str) -> str:
        """*path* relative to the watched directory it is in."""
        for directory in self.directories:
            if PurePath(path).is_relative_to(directory):
                return str(PurePath(path).relative_to(directory))
        return path
