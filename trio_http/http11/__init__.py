"""The HTTP/1.1 connection core: the Trio side of h11.

- ``connection.py``: :class:`HTTPConnection`, the loop (read a request, serve it, finish its
  body, next);
- ``body.py``: the request body, read lazily as the handler asks;
- ``finalizer.py``: the one place every response passes (coding, Vary, framing fields);
- ``writer.py``: sends a finalized response, one strategy per response type;
- ``upgrade.py``: the stream a protocol gets after ``101 Switching Protocols``.
"""

from __future__ import annotations

from .connection import HTTPConnection

__all__ = ["HTTPConnection"]
