"""Type aliases for ASGI 3 applications and the messages they exchange with the server.

Scopes and messages are plain mutable mappings: the spec calls them ``dict`` and lets either
side add keys, so nothing narrower than ``MutableMapping[str, Any]`` is honest.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]
