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
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import HTTPError

__all__ = ["PathPolicy", "resolve_path", "resolve_path_text"]


@dataclass(frozen=True)
class PathPolicy:
    """What the file server may touch.  *root* must already be an absolute real path."""

    root: Path
    follow_symlinks: bool = False
    allow_hidden: bool = False
    _root_text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_root_text", os.fspath(self.root))


def resolve_path(policy: PathPolicy, url_path: str) -> Path:
    """:func:`resolve_path_text` as a :class:`~pathlib.Path`."""
    return Path(resolve_path_text(policy, url_path))


def resolve_path_text(policy: PathPolicy, url_path: str) -> str:
    """The real path that *url_path* (percent-decoded, relative to the root) names.

    A ``str`` rather than a ``Path`` because the hot path (serving a file) only hands it to
    ``os.open``, and building a ``Path`` costs more than the walk below the root.

    A trailing ``/`` is allowed (a directory URL); the empty string is the root itself.
    Raises ``HTTPError(400)`` for a malformed path, ``HTTPError(403)`` for a hidden name or one
    that resolves outside the root.  The path need not exist.
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
    # A symlink with an ordinary name may point at a hidden file.
    if (
        inside
        and not policy.allow_hidden
        and any(part.startswith(".") for part in resolved.relative_to(root).parts)
    ):
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
        except OSError:
            # Missing, or below a non-directory: nothing further can be a symlink, and
            # realpath would keep the rest as written.
            return "/".join([path, *segments[index + 1 :]]), False
        if stat.S_ISLNK(mode):
            return os.path.realpath("/".join([path, *segments[index + 1 :]])), True
    return path or "/", False
