"""One request writes a tus upload at a time: :class:`Writers`.

A request for an upload another request of this process is writing *takes over*: the older
one's :class:`Writer` scope is cancelled, it keeps (and syncs) what it received and answers
``409``; the newer one waits for it to let go (``TAKEOVER_WAIT`` at most), then proceeds.  A
writer in another process (``--workers``) holds the data file's lock: ``423 Locked``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..errors import HTTPError
from .tus_store import Busy, Staging

__all__ = ["TAKEOVER_WAIT", "Writer", "Writers"]

#: How long a request waits for the request it takes over to save its bytes and let go.
TAKEOVER_WAIT = 10.0


class Writer:
    """The request writing an upload in this process, and how to make it let go."""

    __slots__ = ("released", "scope")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.released = trio.Event()


class Writers:
    """The uploads being written by requests of this process, one writer each."""

    def __init__(self, staging: Staging) -> None:
        self.staging = staging
        self.active: dict[str, Writer] = {}

    @asynccontextmanager
    async def locked(self, upload_id: str) -> AsyncIterator[tuple[int, Writer]]:
        """Hold the upload's lock (its data file, open); taking it over from a request of this
        process, ``423`` if another process holds it, ``404`` if the upload is gone."""
        old = self.active.get(upload_id)
        if old is not None:
            old.scope.cancel()
            with trio.move_on_after(TAKEOVER_WAIT):
                await old.released.wait()
            if upload_id in self.active:
                raise HTTPError(423, "another request is writing this upload", close=True)
        writer = self.active[upload_id] = Writer()
        try:
            try:
                fd = await trio.to_thread.run_sync(self.staging.lock, upload_id)
            except Busy:
                raise HTTPError(423, "another server process is writing this upload") from None
            if fd is None:
                raise HTTPError(404, "no such upload")
            try:
                yield fd, writer
            finally:
                os.close(fd)
        finally:
            del self.active[upload_id]
            writer.released.set()
