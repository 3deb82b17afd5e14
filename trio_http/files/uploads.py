"""Uploads written atomically, and the temporary files of uploads that died.

A body is streamed into a temporary file in the target's directory, ``fsync``-ed and renamed
over the target, so the target name only ever holds a complete old or a complete new file; any
failure (client gone, body too large, disk full, shutdown) removes the temporary file.

With *expected* digests (RFC 9530 ``Content-Digest`` / ``Repr-Digest``, see
:func:`~trio_http.digests.expected_digests`) the body is hashed in the worker thread that
writes each buffer, and compared before the rename: on a mismatch the temporary file is
removed and the target is left as it was.

While a temporary file is written, its writer holds an exclusive ``flock`` on it.  A server
killed outright (``SIGKILL``, a crash) leaves its temporary files behind; at startup,
:func:`remove_stale_uploads` deletes those that no process holds locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import logging
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from ..digests import DigestMismatch
from ..errors import HTTPError
from ..protocol.digest import ExpectedDigest, new_hash
from .paths import http_error_for

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "make_parent_directories",
    "read_chunks",
    "remove_directories",
    "remove_stale_uploads",
    "write_atomically",
]

log = logging.getLogger("trio_http.error")

#: Upload bytes gathered in memory before one write to disk (in a worker thread).
WRITE_BUFFER_SIZE = 1024 * 1024
#: Temporary upload files: hidden, so never listed or served, and recognisable.
TEMP_PREFIX = ".trio-http-upload-"
TEMP_SUFFIX = ".part"


async def make_parent_directories(target: Path) -> list[Path]:
    """Create *target*'s missing parent directories, like ``mkdir -p`` (in a worker thread);
    return those it created, outermost first (see :func:`remove_directories`).

    Raises ``HTTPError(409)`` when a parent is a file, or what
    :func:`~.paths.http_error_for` makes of another ``OSError``.
    """
    missing = []
    parent = target.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    try:
        await trio.to_thread.run_sync(lambda: target.parent.mkdir(parents=True, exist_ok=True))
    except (FileExistsError, NotADirectoryError):
        raise HTTPError(409, "a parent of that path is a file") from None
    except OSError as exc:
        raise http_error_for(exc, writing=True) from None
    return missing[::-1]


def remove_directories(created: list[Path]) -> None:
    """Undo :func:`make_parent_directories` after a refused upload: remove the folders it
    made, innermost first, as long as they are empty (someone may have used them since)."""
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            return


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once at import, before any threads write.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


async def write_atomically(
    body: AsyncIterator[bytes],
    target: Path,
    *,
    expected: Sequence[ExpectedDigest] | None = None,
) -> None:
    """Write *body* to *target*: all of it, durably, or nothing (``OSError`` passes through).

    With *expected*, the body must have every one of those digests, or
    :class:`~trio_http.digests.DigestMismatch` (``400``) is raised and nothing is written.
    """
    hashers = {item.algorithm: new_hash(item.algorithm) for item in expected or ()}
    fd, temp_name = _locked_temp_file(target.parent)
    renamed = False
    try:
        pending = bytearray()
        async for chunk in body:
            pending += chunk
            if len(pending) >= WRITE_BUFFER_SIZE:
                await trio.to_thread.run_sync(_write_and_hash, fd, pending, hashers)
                pending.clear()
        await trio.to_thread.run_sync(
            _finish, fd, pending, temp_name, target, hashers, tuple(expected or ())
        )
        renamed = True
    finally:
        os.close(fd)
        if not renamed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)


async def read_chunks(path: str, size: int = WRITE_BUFFER_SIZE) -> AsyncIterator[bytes]:
    """The bytes of the file at *path*, *size* at a time, read in worker threads."""
    file = await trio.to_thread.run_sync(open, path, "rb", 0)
    try:
        while chunk := await trio.to_thread.run_sync(file.read, size):
            yield chunk
    finally:
        file.close()


def remove_stale_uploads(root: Path) -> int:
    """Delete the temporary files under *root* that no process is writing; return how many.

    Walks the tree (symlinks are not followed; what cannot be read is skipped) for regular
    files named like temporary uploads, and deletes each one it can lock: a live upload, in
    this process or in another worker serving the same directory, holds its lock and is kept.
    Blocking: run it in a worker thread.
    """
    removed = 0
    for directory, _, names in os.walk(root):  # errors skipped, links not followed
        for name in names:
            if (
                name.startswith(TEMP_PREFIX)
                and name.endswith(TEMP_SUFFIX)
                and _remove_if_stale(os.path.join(directory, name))
            ):
                removed += 1
    if removed:
        log.info("removed %d stale upload temporary file(s) under %s", removed, root)
    return removed


def _locked_temp_file(directory: Path) -> tuple[int, str]:
    """A new temporary file in *directory*, open and locked (``flock``) by this process.

    Between ``mkstemp`` and ``flock`` the file is unlocked, and a :func:`remove_stale_uploads`
    in another worker may take it for stale and delete it; then this starts over.
    """
    for _ in range(5):
        fd, name = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a remover holds it, and deletes it
            continue
        except OSError:
            return fd, name  # no locks on this file system: removers skip its files too
        if os.fstat(fd).st_nlink:
            return fd, name
        os.close(fd)  # a remover deleted it before the lock was taken
    raise HTTPError(503, "could not create a temporary file", close=True)


def _remove_if_stale(path: str) -> bool:
    """Delete the temporary upload file *path* if no process holds its lock."""
    try:
        # O_NOFOLLOW: never a symlink's target; O_NONBLOCK: a FIFO does not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live upload holds it: OSError
        # Delete only the file that was locked, not one renamed to that name meanwhile.
        current = os.stat(path, follow_symlinks=False)
        if (current.st_dev, current.st_ino) != (st.st_dev, st.st_ino):
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # releases the lock


def _write_and_hash(fd: int, data: bytes | bytearray, hashers: dict[str, _Hash]) -> None:
    """Hash and write *data* (in a worker thread: hashlib releases the GIL on large buffers)."""
    for hasher in hashers.values():
        hasher.update(data)
    _write_all(fd, data)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _finish(
    fd: int,
    pending: bytearray,
    temp_name: str,
    target: Path,
    hashers: dict[str, _Hash],
    expected: tuple[ExpectedDigest, ...],
) -> None:
    """Write the rest, check the digests, make it durable, and move it into place (in a
    worker thread).  Raises :class:`DigestMismatch` before anything is renamed."""
    _write_and_hash(fd, pending, hashers)
    computed = {algorithm: hasher.digest() for algorithm, hasher in hashers.items()}
    for item in expected:
        if not hmac.compare_digest(computed[item.algorithm], item.value):
            raise DigestMismatch(item.field, item.algorithm)
    # mkstemp creates 0600; give the file the mode an ordinary create would have.
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.fsync(fd)
    os.replace(temp_name, target)
    # Make the rename itself durable: fsync the directory entry.
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
