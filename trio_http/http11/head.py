"""Reading a request head: what h11 has buffered first, then from the transport.

The first bytes of the next request may take the keep-alive timeout to arrive; once they have,
the whole head must arrive within ``header_timeout`` of them, a fixed deadline a client cannot
extend by trickling bytes.  Empty lines before a request line are skipped (RFC 9112 §2.2).
"""

from __future__ import annotations

import enum
import logging
from typing import Final

import h11
import trio

from ..errors import HTTPError
from ..protocol.rules import describe_h11_error, skip_empty_lines
from ..transport import Transport

__all__ = ["INCOMPLETE", "fresh_cycle", "parse_head", "peer_name", "read_head"]

log = logging.getLogger("trio_http.error")

#: Bytes asked for per read while waiting for a request head.
HEAD_RECEIVE_SIZE = 64 * 1024


class _Incomplete(enum.Enum):
    """h11 needs more bytes before it has a request head (its ``NEED_DATA``, typed)."""

    HEAD = "incomplete"


INCOMPLETE: Final = _Incomplete.HEAD

Head = h11.Request | HTTPError | None


def peer_name(client: tuple[str, int] | None) -> str:
    """How the error log names a client."""
    return f"{client[0]}:{client[1]}" if client else "client"


def parse_head(conn: h11.Connection, client: tuple[str, int] | None) -> Head | _Incomplete:
    """h11's next event at the start of a cycle: a request head, ``None`` when the client
    closed, the :class:`HTTPError` to answer unparseable input with, or ``INCOMPLETE``."""
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        log.info("%s: bad request: %s", peer_name(client), exc)
        return HTTPError(exc.error_status_hint, describe_h11_error(exc), close=True)
    if isinstance(event, h11.Request):
        return event
    if isinstance(event, h11.ConnectionClosed):
        return None
    return INCOMPLETE


async def read_head(
    conn: h11.Connection,
    transport: Transport,
    *,
    idle: bool,
    idle_timeout: float | None,
    header_timeout: float | None,
    client: tuple[str, int] | None,
) -> Head:
    """Read from *transport* until h11 has a request head (or an error, or the client closed).

    *idle*: nothing of the head is buffered yet, so the first read may take *idle_timeout*.
    """
    started = not idle
    if idle:
        data = await transport.receive("idle", idle_timeout, HEAD_RECEIVE_SIZE)
        started = _feed(conn, transport, data, at_start=True)
        event = parse_head(conn, client)
        if event is not INCOMPLETE:
            return event
    wait_until = None if header_timeout is None else trio.current_time() + header_timeout
    while True:
        remaining = None if wait_until is None else wait_until - trio.current_time()
        data = await transport.receive("head", remaining, HEAD_RECEIVE_SIZE)
        started = _feed(conn, transport, data, at_start=not started) or started
        event = parse_head(conn, client)
        if event is not INCOMPLETE:
            return event


def _feed(conn: h11.Connection, transport: Transport, data: bytes, *, at_start: bool) -> bool:
    """Give h11 bytes of a head; returns whether any were more than empty lines."""
    if at_start:
        data = skip_empty_lines(data)
    if data or transport.eof:  # b"" tells h11 the client closed
        conn.receive_data(data)
    return bool(data)


def fresh_cycle(conn: h11.Connection, max_header_size: int) -> h11.Connection:
    """After a request with a body: the connection to read the next request with.

    Usually *conn* itself.  An old client's stray CRLF after a body is already in h11's
    buffer, which cannot be edited, and h11 would refuse it: then a fresh h11 connection holding
    the rest.
    """
    pending, closed = conn.trailing_data
    if pending[:1] not in (b"\r", b"\n") or (rest := skip_empty_lines(pending)) == pending:
        return conn
    fresh = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
    fresh.receive_data(rest)
    if closed:
        fresh.receive_data(b"")
    return fresh
