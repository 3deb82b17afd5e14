"""Map a URL path to a file under the served directory, or refuse it.

Every path the file server opens, creates, deletes or lists goes through
:func:`resolve_path`.  It checks the text first (no NUL, backslash, ``.``/``..`` segments,
absolute paths or hidden names) and then the real path: after resolving symlinks, the result
must still be inside the root, unless following symlinks out of it was explicitly allowed.
The comparison is on resolved paths by component, never on string prefixes (``/srv/data2`` is
not inside ``/srv/data``).

It touches the file system only through ``os.path.realpath``; nothing is opened.  A symlink
swapped in between this check and the ``open`` that follows could still escape; the file
server narrows that window by opening the resolved path, not the requested one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import HTTPError

__all__ = ["PathPolicy", "resolve_path"]


@dataclass(frozen=True)
class PathPolicy:
    """What the file server may touch.  *root* must already be an absolute real path."""

    root: Path
    follow_symlinks: bool = False
    allow_hidden: bool = False


def resolve_path(policy: PathPolicy, url_path: str) -> Path:
    """The real path that *url_path* (percent-decoded, relative to the root) names.

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
    root = policy.root
    real = Path(os.path.realpath(root.joinpath(*segments)))
    inside = real == root or root in real.parents
    if not inside and not policy.follow_symlinks:
        raise HTTPError(403, "path leads outside the served directory")
    # A symlink with an ordinary name may point at a hidden file.
    if (
        inside
        and not policy.allow_hidden
        and any(part.startswith(".") for part in real.relative_to(root).parts)
    ):
        raise HTTPError(403, "hidden files are not served")
    return real
