"""Where tus uploads live while they are unfinished: files in a hidden staging folder.

Every function here blocks on the file system; the trio side calls them in worker threads.
An upload's whole state is on disk, so a server restarted (even after ``SIGKILL``) resumes it:

- ``<root>/.trio-http-upload-tus/`` (``0700``): its name starts with
  :data:`~trio_http.files.uploads.TEMP_PREFIX`, so the file server neither serves nor lists it;
  it is inside the served root, so on the file system of (almost) every target, and a finished
  upload is moved into place by ``rename``.
- ``<prefix><id>.tus-data``: the bytes received so far.  Its size *is* the upload's offset.
  Whoever writes or removes it holds an exclusive ``flock`` on it (a PATCH, a DELETE, the
  expiry sweep), in this process or another worker; the lock dies with its process.
- ``<prefix><id>.tus-info``: JSON (length, metadata, target, created, expires), written once,
  atomically (temporary file, ``fsync``, ``rename``, ``fsync`` of the folder).
- ``<prefix><id>.tus-verify``: exists while a PATCH with ``Upload-Checksum`` appends; it holds
  the offset before that PATCH.  Found without its writer (the server died mid-PATCH), the data
  file is cut back to that offset: unverified bytes never count.

The file names end in ``.tus-*``, not ``.part``, so ``remove_stale_uploads`` (which deletes
unlocked ``.part`` files) never touches them; the expiry sweep here owns them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import HTTPError
from ..protocol.tus import is_upload_id
from .uploads import TEMP_PREFIX

__all__ = ["STAGING_NAME", "Busy", "Finished", "Staging", "UploadInfo", "WriteState"]

#: The staging folder's name, inside the served root.
STAGING_NAME = TEMP_PREFIX + "tus"
_DATA, _INFO, _VERIFY, _TEMP = ".tus-data", ".tus-info", ".tus-verify", ".tus-temp"
#: A file of an upload whose other file is missing (a creation or a completion cut short) is
#: removed once it has not changed for this long: long enough for any creation in progress.
ORPHAN_GRACE = 3600.0


class Busy(Exception):
    """Another process holds the upload's lock."""


@dataclass(frozen=True)
class UploadInfo:
    """What an upload's info file holds."""

    length: int
    #: The ``Upload-Metadata`` header as the client sent it (HEAD echoes it).
    metadata: str
    #: The target, relative to the served directory (the ``filename`` metadata).
    target: str
    created: float
    #: When it expires if never touched again (each write moves it: see :meth:`Staging.expires`).
    expires: float
    #: Who created it (the client's address), for the cap on one client's unfinished uploads.
    owner: str = ""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=True).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes) -> UploadInfo:
        """Raises ``ValueError`` for anything that is not an info file this module wrote."""
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("not an object")
        length, metadata, target = raw.get("length"), raw.get("metadata"), raw.get("target")
        created, expires = raw.get("created"), raw.get("expires")
        if not (isinstance(length, int) and length >= 0 and not isinstance(length, bool)):
            raise ValueError("bad length")
        if not (isinstance(metadata, str) and isinstance(target, str) and target):
            raise ValueError("bad metadata or target")
        if not (isinstance(created, int | float) and isinstance(expires, int | float)):
            raise ValueError("bad times")
        owner = raw.get("owner", "")  # absent in info files of earlier versions
        if not isinstance(owner, str):
            raise ValueError("bad owner")
        return cls(length, metadata, target, float(created), float(expires), owner)


class Finished:
    """Uploads this process completed, remembered for *keep* seconds (at most *limit*), so that
    a client whose last answer was lost learns with ``HEAD``, or the ``PATCH`` sent again,
    that the upload is complete: tus 1.0.0 (Core Protocol, HEAD) answers the offset "even if
    [...] the upload is already considered completed".  In memory, not on disk: after a
    restart, or in another ``--workers`` process, a completed upload is unknown (``404``)."""

    def __init__(self, keep: float, limit: int = 256) -> None:
        self.keep = keep
        self.limit = limit
        self._entries: OrderedDict[str, tuple[UploadInfo, float]] = OrderedDict()

    def add(self, upload_id: str, info: UploadInfo, now: float) -> None:
        self._entries[upload_id] = (info, now + self.keep)
        self._entries.move_to_end(upload_id)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def get(self, upload_id: str, now: float) -> UploadInfo | None:
        """The completed upload's info; ``None`` if unknown or kept long enough."""
        info, until = self._entries.get(upload_id, (None, 0.0))
        if info is not None and until <= now:
            del self._entries[upload_id]
            return None
        return info

    def forget(self, upload_id: str) -> None:
        self._entries.pop(upload_id, None)


@dataclass
class WriteState:
    """One PATCH's progress, updated by the worker thread that writes (so a write that
    finished while its task was cancelled is still counted)."""

    fd: int
    #: The offset before this request's bytes (where a failed checksum cuts back to).
    start: int
    #: Bytes of this request on disk (not necessarily synced).
    written: int = 0
    hasher: hashlib._Hash | None = None

    @property
    def offset(self) -> int:
        return self.start + self.written


class Staging:
    """The staging folder of one served root (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(os.path.realpath(root)) / STAGING_NAME

    def _path(self, upload_id: str, suffix: str) -> str:
        return os.path.join(self.dir, TEMP_PREFIX + upload_id + suffix)

    def data_path(self, upload_id: str) -> str:
        return self._path(upload_id, _DATA)

    # ------------------------------------------------------------ creating and reading

    def count(self, owner: str) -> tuple[int, int]:
        """How many uploads exist (finished ones are gone), and how many of them *owner*'s."""
        try:
            names = [name for name in os.listdir(self.dir) if name.endswith(_INFO)]
        except FileNotFoundError:
            return 0, 0
        mine = 0
        for name in names:
            info = self.load(name.removeprefix(TEMP_PREFIX).removesuffix(_INFO))
            mine += info is not None and info.owner == owner
        return len(names), mine

    def create(self, upload_id: str, info: UploadInfo) -> None:
        """Create the empty data file, then the info file; durably (``OSError`` passes)."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        # 0666 less the umask, like any new file: renamed into place, it keeps this mode.
        fd = os.open(
            self.data_path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666
        )
        os.close(fd)
        self._write_atomically(upload_id, _INFO, info.to_json())

    def load(self, upload_id: str) -> UploadInfo | None:
        """The upload's info; ``None`` if there is no such upload (or its info is unusable)."""
        try:
            with open(self._path(upload_id, _INFO), "rb") as file:
                return UploadInfo.from_json(file.read(64 * 1024))
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # not written by us: treated as absent, the sweep removes it

    def size(self, upload_id: str) -> int | None:
        """The upload's offset: the data file's size, less what a checksummed PATCH in
        progress has not verified yet; ``None`` if the data file is missing."""
        try:
            size = os.stat(self.data_path(upload_id)).st_size
        except FileNotFoundError:
            return None
        try:
            with open(self._path(upload_id, _VERIFY), "rb") as file:
                return min(size, int(file.read(32)))
        except (FileNotFoundError, ValueError):
            return size

    def lookup(self, upload_id: str, expiry: float) -> tuple[UploadInfo, int, float] | None:
        """The upload's info, offset and expiry time; ``None`` if there is no such upload."""
        info = self.load(upload_id)
        offset = self.size(upload_id) if info is not None else None
        if info is None or offset is None:
            return None
        return info, offset, self.expires(upload_id, info, expiry)

    def expires(self, upload_id: str, info: UploadInfo, expiry: float) -> float:
        """When the upload expires: *expiry* seconds after it was created or last written."""
        try:
            touched = os.stat(self.data_path(upload_id)).st_mtime
        except FileNotFoundError:
            touched = info.created
        return max(info.created, touched) + expiry

    # ------------------------------------------------------------ the lock and writing

    def lock(self, upload_id: str) -> int | None:
        """Open the data file for writing and take its lock; ``None`` if the upload is gone.

        Raises :class:`Busy` if another process holds the lock.  Cuts back bytes of a
        checksummed PATCH that never finished (see the module docstring).
        """
        try:
            fd = os.open(self.data_path(upload_id), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy from None
            if os.fstat(fd).st_nlink == 0:
                os.close(fd)  # removed between open and flock
                return None
            self._recover(upload_id, fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _recover(self, upload_id: str, fd: int) -> None:
        try:
            with open(self._path(upload_id, _VERIFY), "rb") as file:
                start = int(file.read(32))
        except FileNotFoundError:
            return
        except ValueError:
            start = 0  # unreadable marker: keep nothing unverified
        os.ftruncate(fd, min(start, os.fstat(fd).st_size))
        os.fsync(fd)
        self.end_verify(upload_id)

    def begin_verify(self, upload_id: str, start: int) -> None:
        """Record *start* before a checksummed PATCH writes anything."""
        self._write_atomically(upload_id, _VERIFY, str(start).encode("ascii"))

    def end_verify(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(upload_id, _VERIFY))

    @staticmethod
    def write(state: WriteState, data: bytearray) -> None:
        """Append *data* at the state's offset and empty it, hashing it if the PATCH carries a
        checksum.  What is written leaves *data* at once: a write cut short by an error is
        neither lost nor written twice."""
        if state.hasher is not None:
            state.hasher.update(data)
        while data:
            count = os.pwrite(state.fd, data, state.offset)
            state.written += count
            del data[:count]

    @classmethod
    def flush(cls, state: WriteState, data: bytearray) -> None:
        """Write the rest and make every byte of this PATCH durable."""
        cls.write(state, data)
        os.fsync(state.fd)

    def roll_back(self, upload_id: str, state: WriteState) -> None:
        """Cut the data file back to where this PATCH started, durably."""
        os.ftruncate(state.fd, state.start)
        os.fsync(state.fd)
        state.written = 0
        self.end_verify(upload_id)

    # ------------------------------------------------------------ finishing and removing

    def finish(self, upload_id: str, fd: int, target: Path) -> bool:
        """Move the complete data file (its lock held as *fd*) onto *target*, durably.

        Returns ``False`` when *target* is on another file system (``EXDEV``: a directory
        reached through a followed symlink); the caller copies it then.  ``OSError`` passes.
        """
        os.fsync(fd)
        try:
            os.rename(self.data_path(upload_id), target)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return False
            raise
        _fsync_dir(target.parent)
        self.forget(upload_id)
        return True

    def remove(self, upload_id: str) -> None:
        """Delete the data file (call it holding the lock) and then the rest."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.data_path(upload_id))
        self.forget(upload_id)

    def forget(self, upload_id: str) -> None:
        """Delete the upload's info and marker files (its data is gone or moved)."""
        for suffix in (_INFO, _VERIFY, _TEMP):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(upload_id, suffix))
        _fsync_dir(self.dir)

    def sweep(self, now: float, expiry: float) -> int:
        """Remove uploads not written for *expiry* seconds, and orphaned files; return how many
        uploads went.  Uploads locked by a writer (here or in another process) are kept."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return 0
        ids: dict[str, set[str]] = {}
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            upload_id = stem.removeprefix(TEMP_PREFIX)
            if name.startswith(TEMP_PREFIX) and dot and is_upload_id(upload_id):
                ids.setdefault(upload_id, set()).add("." + suffix)
        removed = 0
        for upload_id, suffixes in ids.items():
            info = self.load(upload_id) if _INFO in suffixes else None
            if info is None or _DATA not in suffixes:
                self._remove_orphan(upload_id, suffixes, now)
            elif self.expires(upload_id, info, expiry) <= now and self.discard(upload_id):
                removed += 1
        return removed

    def _remove_orphan(self, upload_id: str, suffixes: set[str], now: float) -> None:
        for suffix in suffixes:
            path = self._path(upload_id, suffix)
            try:
                if os.stat(path).st_mtime + ORPHAN_GRACE > now:
                    continue
            except FileNotFoundError:
                continue
            if suffix == _DATA:
                self.discard(upload_id)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def discard(self, upload_id: str) -> bool:
        """Remove the upload unless a writer holds it; whether it was removed."""
        try:
            fd = self.lock(upload_id)
        except Busy:
            return False
        if fd is None:
            return False
        try:
            self.remove(upload_id)
        finally:
            os.close(fd)
        return True

    def _write_atomically(self, upload_id: str, suffix: str, data: bytes) -> None:
        temp = self._path(upload_id, _TEMP)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self._path(upload_id, suffix))
        _fsync_dir(self.dir)


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def storage_error(exc: OSError) -> HTTPError | OSError:
    """An ``OSError`` from the staging folder: a full disk is the client's answer (507)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return HTTPError(507, "no space left on the server's disk", close=True)
    return exc
