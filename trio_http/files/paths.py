"""Map a URL path to a file under the served directory, or refuse it.

Every path the file server opens, creates, deletes or lists goes through
:func:`resolve_path`.  It checks the text first (no NUL, backslash, ``.``/``..`` segments,
absolute paths or hidden names) and then the real path: after resolving symlinks, the result
must still be inside the root, unless following symlinks out of it was explicitly allowed.
The comparison is on resolved paths by component, never on string prefixes (``/srv/data2`` is
not inside ``/srv/data``).

It touches the file system only with ``lstat`` on the components below the root (the root is
already real) and, once a symlink turns up, ``os.path.realpath``; nothing is opened.  A
symlink swapped in between this check and the ``open`` that follows could still escape; the
file server narrows that window by opening the resolved path, not the requested one.  The
root itself is resolved once, when the server starts: replacing a directory above it by a
symlink later moves what is served, as it would for any server configured with that path.

:func:`http_error_for` is the one place where an ``OSError`` from a file-system call on a
client-chosen path becomes an answer: a name too long, a path through a file, a symlink loop
are the client's doing and get a ``4xx``, not a ``500`` with a traceback.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HTTPError

__all__ = ["INTERNAL_PREFIX", "PathPolicy", "http_error_for", "resolve_path", "resolve_path_text"]

#: Names the server keeps for itself (upload temporary files, the tus staging folder): never
#: served, listed or written through a URL (404), even with hidden files shown.
INTERNAL_PREFIX = ".trio-http-"


@dataclass(frozen=True)
class PathPolicy:
    """What the file server may touch.  *root* must already be an absolute real path."""

    root: Path
    follow_symlinks: bool = False
    allow_hidden: bool = False
    _root_text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_root_text", os.fspath(self.root))


#: errno -> (status, detail) for every client path; ENOENT and ENOTDIR depend on the method.
_STATUS_FOR_ERRNO: dict[int, tuple[int, str]] = {
    errno.ENAMETOOLONG: (414, "file name or path too long"),
    errno.EACCES: (403, "permission denied"),
    errno.EPERM: (403, "permission denied"),
    errno.EROFS: (403, "the file system is read-only"),
    errno.ELOOP: (403, "too many levels of symbolic links"),
    errno.ENXIO: (403, "not a regular file"),  # a socket, or a device without a driver
    errno.ENODEV: (403, "not a regular file"),
    errno.EEXIST: (409, "a file already has that name"),
    errno.EISDIR: (409, "a directory has that name"),
    errno.ENOTEMPTY: (409, "a directory has that name"),
    errno.EBUSY: (409, "the file is in use"),
    errno.ETXTBSY: (409, "the file is in use"),
    errno.EINVAL: (400, "invalid file name"),
    errno.EILSEQ: (400, "invalid file name"),
}
#: The body cannot be stored: 507 or 413, and the connection closes (its body is unread).
_STORAGE_ERRORS: dict[int, tuple[int, str]] = {
    errno.ENOSPC: (507, "no space left on the server's disk"),
    errno.EDQUOT: (507, "no space left on the server's disk"),
    errno.EMLINK: (507, "the directory cannot hold more entries"),
    errno.EFBIG: (413, "file too large for the server's file system"),
}


def http_error_for(exc: OSError, *, writing: bool = False) -> HTTPError | OSError:
    """The answer to *exc*, raised by a file-system call on a client-chosen path.

    An :class:`HTTPError` whenever the error is the request's doing or a state of the files
    the client can be told about: ``414`` for a name or path too long, ``404`` for a missing
    file or a path through a file when reading (``409`` when *writing*, where it conflicts
    with what is there), ``403`` for permissions and symlink loops, ``409`` for a name taken
    by a directory, ``400`` for a name the file system refuses, ``507`` (or ``413``) when the
    disk cannot hold the upload.  Anything else (``EIO``, ``EMFILE`` ...) is the server's
    fault: *exc* itself is returned, to be raised, answered ``500`` and logged.

    Usage: ``except OSError as exc: raise http_error_for(exc) from None``.
    """
    code = exc.errno
    if code is None:
        return exc
    if code == errno.ENOENT:
        return HTTPError(409, "the target's directory changed") if writing else _not_found()
    if code == errno.ENOTDIR:
        return HTTPError(409, "a parent of that path is a file") if writing else _not_found()
    known = _STATUS_FOR_ERRNO.get(code)
    if known is not None:
        return HTTPError(*known)
    storage = _STORAGE_ERRORS.get(code)
    if storage is not None:
        return HTTPError(*storage, close=True)
    return exc


def _not_found() -> HTTPError:
    return HTTPError(404, "no such file")


def resolve_path(policy: PathPolicy, url_path: str) -> Path:
    """:func:`resolve_path_text` as a :class:`~pathlib.Path`."""
    return Path(resolve_path_text(policy, url_path))


def resolve_path_text(policy: PathPolicy, url_path: str) -> str:
    """The real path that *url_path* (percent-decoded, relative to the root) names.

    A ``str`` rather than a ``Path`` because the hot path (serving a file) only hands it to
    ``os.open``, and building a ``Path`` costs more than the walk below the root.

    A trailing ``/`` is allowed (a directory URL); the empty string is the root itself.
    Raises ``HTTPError(400)`` for a malformed path, ``HTTPError(404)`` for the server's own
    names (:data:`INTERNAL_PREFIX`), ``HTTPError(403)`` for a hidden name or one that resolves
    outside the root, and what :func:`http_error_for` makes of an ``lstat``
    that fails otherwise than for a missing name (``414`` for a name too long, ``403`` for a
    directory that cannot be searched).  The path need not exist.
    """
    if "\x00" in url_path:
        raise HTTPError(400, "path contains a NUL byte")
    if "\\" in url_path:
        raise HTTPError(400, "path contains a backslash")
    if url_path.startswith("/"):
        raise HTTPError(400, "path must be relative to the served directory")
    segments = url_path.split("/")
    if segments[-1] == "":
        segments.pop()  # "dir/" names the directory
    for segment in segments:
        if segment in ("", ".", ".."):
            raise HTTPError(400, "path has an empty, '.' or '..' segment")
        if segment.startswith(INTERNAL_PREFIX):
            raise _not_found()
        if segment.startswith(".") and not policy.allow_hidden:
            raise HTTPError(403, "hidden files are not served")
    real, followed_link = _real_path_below(policy._root_text, segments)
    if not followed_link:
        # No symlink on the way and no "." or ".." segments: inside the root by construction,
        # and every name was checked for a leading dot above.
        return real
    root = policy.root
    resolved = Path(real)
    inside = resolved == root or root in resolved.parents
    if not inside and not policy.follow_symlinks:
        raise HTTPError(403, "path leads outside the served directory")
    # A symlink with an ordinary name may point at a hidden or an internal file.
    parts = resolved.relative_to(root).parts if inside else ()
    if any(part.startswith(INTERNAL_PREFIX) for part in parts):
        raise _not_found()
    if not policy.allow_hidden and any(part.startswith(".") for part in parts):
        raise HTTPError(403, "hidden files are not served")
    return real


def _real_path_below(root: str, segments: list[str]) -> tuple[str, bool]:
    """``os.path.realpath(root/segments)`` for a real *root*, and whether a symlink was met.

    ``realpath`` would ``lstat`` every component from ``/`` down (25 µs for a file six levels
    deep, half the cost of a small-file request); the root's own components are known to be
    real, so only the ones below it are looked at, and ``realpath`` is called only once a
    symlink turns up.
    """
    path = root.rstrip("/")
    for index, segment in enumerate(segments):
        path = f"{path}/{segment}"
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            # Missing, or below a non-directory: nothing further can be a symlink, and
            # realpath would keep the rest as written.
            return "/".join([path, *segments[index + 1 :]]), False
        except OSError as exc:
            # A name too long, a directory that cannot be searched: what lies below cannot be
            # checked for symlinks, so it is refused rather than passed on unchecked.
            raise http_error_for(exc) from None
        if stat.S_ISLNK(mode):
            return os.path.realpath("/".join([path, *segments[index + 1 :]])), True
    return path or "/", False
