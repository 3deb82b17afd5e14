"""The file server: read, list, write and delete files under one directory, share it.

- ``server.py``: :class:`FileServer`, its routes, and the dispatch of listings, search and
  archives; writes (``PUT``, ``POST``, ``DELETE``, ``MKCOL``);
- ``guard.py``: the access rules applied to requests (URLs, symlink targets, other sites'
  pages); ``access.py``: the rules and HTTP Basic; ``passwords.py``: scrypt hashes;
- ``reading.py``: one file's validators, preconditions and ranges;
- ``paths.py``: URL path -> file-system path, the policy (hidden names, symlinks, the
  server's own names) and the mapping of a client path's ``OSError`` to its ``4xx``;
- ``listing.py``, ``display.py``, ``assets/``: the listing page, JSON and text (pure);
- ``search.py``: bounded name search; ``archive.py``, ``treewalk.py``, ``zipwriter.py``:
  folders as streamed zip and tar.gz;
- ``uploads.py``: atomic writes and the clean-up of uploads that died; ``tus.py``,
  ``tus_store.py``: resumable uploads (tus 1.0.0).
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
