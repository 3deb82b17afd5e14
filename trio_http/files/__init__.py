"""The file server: read, list, write and delete files under one directory.

- ``server.py``: :class:`FileServer`, its routes and responses (validators, ranges, listings);
- ``paths.py``: URL path -> file-system path, the policy (hidden names, symlinks) and the
  mapping of a client path's ``OSError`` to its ``4xx``;
- ``listing.py``: HTML and JSON directory listings (pure);
- ``uploads.py``: atomic writes and the clean-up of uploads that died.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import FileServer as FileServer

__all__ = ["FileServer"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that the pure listing module can be loaded without trio.
    if name == "FileServer":
        from .server import FileServer

        return FileServer
    raise AttributeError(f"module 'trio_http.files' has no attribute {name!r}")
