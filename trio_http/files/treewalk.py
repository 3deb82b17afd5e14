"""The tree an archive holds: entries below a directory, by the listing's rules (blocking).

See :mod:`.archive` for the rules; this module walks and opens, :mod:`.archive` writes.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import HTTPError
from .display import is_utf8
from .paths import PathPolicy, resolve_path_text
from .uploads import TEMP_PREFIX

__all__ = ["READ_SIZE", "Found", "OpenFile", "list_directory", "read_top", "walk_tree"]

log = logging.getLogger("trio_http.error")

#: File data read per step (as for files sent without sendfile: response.FILE_CHUNK_SIZE).
READ_SIZE = 256 * 1024


@dataclass(frozen=True)
class Found:
    """An entry to archive: *rel* is its path below the archived directory (``/`` after a
    directory, empty for the archived directory itself), *real* the path to open, *st* its
    ``stat`` (a directory's; files are described by ``fstat`` once open)."""

    rel: str
    real: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return not self.rel or self.rel.endswith("/")


def list_directory(real: str) -> list[str]:
    """The names in directory *real*, sorted (blocking; ``OSError`` passes through)."""
    return sorted(os.listdir(real))


def read_top(real: str) -> tuple[os.stat_result, list[str]]:
    """The ``stat`` and sorted names of the archived directory (blocking; ``OSError``
    passes through)."""
    return os.stat(real), list_directory(real)


def walk_tree(
    top_st: os.stat_result,
    names: list[str],
    url_dir: str,
    policy: PathPolicy,
    may_read: Callable[[str], bool],
    may_enter: Callable[[str], bool] | None,
) -> Iterator[Found | None]:
    """The entries to archive below the directory (whose ``stat`` and sorted *names* are
    already read), depth first, each directory before its content.  ``None`` for each entry
    skipped: a point where the caller may stop even if nothing is archived for a while."""
    entered = {_identity(top_st)}
    stack: list[tuple[str, Iterator[str]]] = [("", iter(names))]
    while stack:
        rel_dir, pending = stack[-1]
        name = next(pending, None)
        if name is None:
            stack.pop()
            continue
        if name.startswith(TEMP_PREFIX) or not is_utf8(name):
            yield None  # an upload in progress; a name no URL can reach
            continue
        rel = rel_dir + name
        try:
            real = resolve_path_text(policy, url_dir + rel)
            st = os.stat(real)
        except HTTPError:
            yield None  # hidden, or leading out of the root: the policy, not an error
            continue
        except OSError as exc:
            log.info("archive of /%s: skipped %s: %s", url_dir, rel, exc.strerror or exc)
            yield None  # vanished, a broken link or a loop of links
            continue
        if stat.S_ISDIR(st.st_mode):
            rel += "/"
            readable = may_read(url_dir + rel)
            enter = readable if may_enter is None else may_enter(url_dir + rel)
            if not enter or _identity(st) in entered:
                yield None  # not for this visitor; already archived (a link, a loop)
                continue
            entered.add(_identity(st))
            try:
                children = list_directory(real)
            except OSError as exc:
                log.warning("archive of /%s: skipped %s: %s", url_dir, rel, exc.strerror or exc)
                yield None
                continue
            # Not readable but entered: only on the way to what is; no entry of its own.
            yield Found(rel, real, st) if readable else None
            stack.append((rel, iter(children)))
        elif stat.S_ISREG(st.st_mode) and may_read(url_dir + rel):
            yield Found(rel, real, st)
        else:
            yield None  # a FIFO, socket or device; or not for this visitor


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class OpenFile:
    """A regular file opened for archiving: its descriptor and its ``fstat``."""

    def __init__(self, fd: int, st: os.stat_result) -> None:
        self.fd = fd
        self.st = st

    @classmethod
    def open(cls, found: Found, label: str) -> OpenFile | None:
        """Open *found*; ``None`` (logged) if it cannot be opened or is no longer a file."""
        try:
            # O_NONBLOCK: a FIFO swapped in since the walk must not block the thread.
            fd = os.open(found.real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("archive of %s: skipped %s: %s", label, found.rel, exc.strerror or exc)
            return None
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            log.warning("archive of %s: skipped %s: %s", label, found.rel, exc.strerror or exc)
            return None
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return cls(fd, st)

    def chunks(self, label: str, rel: str) -> Iterator[bytes]:
        """The file's data up to its size when opened; ends early (logged) if it shrank or
        a read failed."""
        remaining = self.st.st_size
        while remaining > 0:
            try:
                chunk = os.read(self.fd, min(remaining, READ_SIZE))
            except OSError as exc:
                log.warning(
                    "archive of %s: %s could not be read whole: %s",
                    label,
                    rel,
                    exc.strerror or exc,
                )
                return
            if not chunk:
                log.warning("archive of %s: %s shrank while it was archived", label, rel)
                return
            remaining -= len(chunk)
            yield chunk
        try:
            grown = os.fstat(self.fd).st_size > self.st.st_size
        except OSError:
            grown = False
        if grown:
            log.warning(
                "archive of %s: %s grew while it was archived; cut at %d bytes",
                label,
                rel,
                self.st.st_size,
            )

    def close(self) -> None:
        os.close(self.fd)
