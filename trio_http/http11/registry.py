"""What a connection needs from the server that keeps it (trio_http.server.ConnectionRegistry)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .connection import HTTPConnection

__all__ = ["UNREGISTERED", "Registry"]


class Registry(Protocol):
    """Where a server keeps its connections, so a shutdown can find them."""

    #: The server is shutting down: finish the current response, then close.
    draining: bool

    def add(self, connection: HTTPConnection) -> None: ...

    def discard(self, connection: HTTPConnection) -> None: ...


class _Unregistered:
    """The registry of a connection outside a server (tests, ``TestClient``): never drains."""

    __slots__ = ()
    draining = False

    def add(self, connection: HTTPConnection) -> None: ...

    def discard(self, connection: HTTPConnection) -> None: ...


#: For a connection that no server keeps.
UNREGISTERED: Registry = _Unregistered()
