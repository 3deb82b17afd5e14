"""h11 events that are built once and reused.

h11 events are immutable, and building a ``Response`` is the costly part of sending one: h11
checks every header name and value against its grammar (about 6 µs for five fields, a twelfth
of the whole request cycle of ``GET /``).  Servers send the same heads over and over — the
same status, the same fields, often the same ``Date`` for a whole second — so
:class:`ResponseHeadCache` keeps the events it has built and hands back the one it already
validated.  Nothing is skipped: every event still went through h11's checks once, and an
invalid head raises ``h11.LocalProtocolError`` every time because it is never stored.
"""

from __future__ import annotations

import h11

__all__ = ["CONTINUE", "END_OF_MESSAGE", "ResponseHeadCache"]

END_OF_MESSAGE = h11.EndOfMessage()
CONTINUE = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")


class ResponseHeadCache:
    """``h11.Response`` events keyed by status, reason and header fields.

    Bounded by *max_entries*: when full it starts again from empty, which costs one rebuild
    per distinct head and needs no bookkeeping on the hot path (an LRU would).
    """

    __slots__ = ("_entries", "_max_entries")

    def __init__(self, max_entries: int = 512) -> None:
        self._entries: dict[tuple[object, ...], h11.Response] = {}
        self._max_entries = max_entries

    def get(self, status: int, reason: bytes, fields: list[tuple[bytes, bytes]]) -> h11.Response:
        """The event for this head; raises ``h11.LocalProtocolError`` if h11 rejects it."""
        key = (status, reason, *fields)
        try:
            event = self._entries.get(key)
        except TypeError:  # an unhashable value smuggled into Headers.raw: just don't cache
            return h11.Response(status_code=status, headers=fields, reason=reason)
        if event is None:
            event = h11.Response(status_code=status, headers=fields, reason=reason)
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = event
        return event

    def __len__(self) -> int:
        return len(self._entries)
