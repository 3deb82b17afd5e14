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

from ..config import ServerConfig
from ..errors import HTTPError
from ..headers import Headers
from ..protocol.rules import (
    H11_UNKNOWN_CODING,
    RequestFacts,
    check_request,
    describe_h11_error,
    skip_empty_lines,
    transfer_coding_error,
)
from ..request import Request, Upgrader
from ..transport import Transport, Waiting
from .body import RequestBody

__all__ = [
    "EMPTY_LINE",
    "INCOMPLETE",
    "parse_head",
    "peer_name",
    "read_head",
    "restart_after_empty_lines",
]

log = logging.getLogger("trio_http.error")

#: Bytes asked for per read while waiting for a request head.
HEAD_RECEIVE_SIZE = 64 * 1024


class _Incomplete(enum.Enum):
    """h11 has no request head: it needs more bytes (``NEED_DATA``), or it found an empty line
    where a request line should be, and is unusable now."""

    HEAD = "incomplete"
    EMPTY_LINE = "empty line"


INCOMPLETE: Final = _Incomplete.HEAD
EMPTY_LINE: Final = _Incomplete.EMPTY_LINE
#: What h11 says when it finds an empty line first (tests/test_conformance.py notices if its
#: wording changes).
_H11_EMPTY_LINE = "no request line received"

Head = h11.Request | HTTPError | None


def peer_name(client: tuple[str, int] | None) -> str:
    """How the error log names a client."""
    return f"{client[0]}:{client[1]}" if client else "client"


def parse_head(
    conn: h11.Connection, client: tuple[str, int] | None, reads: list[bytes] | None = None
) -> Head | _Incomplete:
    """h11's next event at the start of a cycle: a request head, ``None`` when the client
    closed, the :class:`HTTPError` to answer unparseable input with, ``INCOMPLETE``, or
    ``EMPTY_LINE`` (see :func:`restart_after_empty_lines`).  *reads*: the head's reads so far,
    if it was read (h11 does not say which transfer coding it refused: 400 or 501 depends on
    it; a head already buffered, pipelined, gets 400 either way)."""
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        message = str(exc)
        if message == _H11_EMPTY_LINE:
            return EMPTY_LINE
        log.info("%s: bad request: %s", peer_name(client), exc)
        if message in H11_UNKNOWN_CODING:
            return transfer_coding_error(b"".join(reads or ()))
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
    reads: list[bytes] = []  # this head's reads: a refused Transfer-Encoding is read from them
    waiting_for: Waiting = "idle" if idle else "head"
    wait_until: float | None = None  # the header deadline, from the first read of the head
    while True:
        if waiting_for == "idle":
            timeout = idle_timeout
        else:
            if wait_until is None and header_timeout is not None:
                wait_until = trio.current_time() + header_timeout
            timeout = None if wait_until is None else wait_until - trio.current_time()
        data = await transport.receive(waiting_for, timeout, HEAD_RECEIVE_SIZE)
        waiting_for = "head"
        if not started and data[:1] in (b"\r", b"\n"):
            data = skip_empty_lines(data)  # RFC 9112 §2.2
        if data or transport.eof:  # b"" tells h11 the client closed
            conn.receive_data(data)
        started = started or bool(data)
        reads.append(data)
        event = parse_head(conn, client, reads)
        if event is EMPTY_LINE:  # a CR and its LF in separate reads: too rare to recover
            return HTTPError(400, "no request line received", close=True)
        if event is not INCOMPLETE:
            return event


def restart_after_empty_lines(conn: h11.Connection, max_header_size: int) -> h11.Connection:
    """A fresh h11 connection holding what *conn* had buffered, minus the empty lines first.

    h11 refuses an empty line before a request line; RFC 9112 §2.2 says to ignore it (an old
    client's stray CRLF after a body, say).  Bytes read from the transport are cleaned before
    h11 sees them (in ``read_head``); this handles those already in h11's buffer, which cannot be
    edited, at the start of a cycle, when no other state is worth keeping.
    """
    pending, closed = conn.trailing_data
    fresh = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
    rest = skip_empty_lines(pending)
    if rest:
        fresh.receive_data(rest)
    if closed:
        fresh.receive_data(b"")
    return fresh


def served_version(version: bytes) -> str:
    """The HTTP version a request is served as: HTTP/1.2 and above as 1.1 (RFC 9110 §2.5);
    any other as sent (1.0, 1.1, or a major version that is refused with 505)."""
    if version.startswith(b"1.") and version >= b"1.1":
        return "1.1"
    return version.decode("ascii")


def start_request(
    event: h11.Request,
    conn: h11.Connection,
    transport: Transport,
    config: ServerConfig,
    *,
    client: tuple[str, int] | None,
    upgrader: Upgrader,
) -> tuple[Request, RequestBody, RequestFacts | HTTPError]:
    """The :class:`Request` for a head, its body, and what the checks found: the facts, or
    the error to answer instead of calling the handler (then the body is never read)."""
    # Listed once (walked twice below); h11's Sequence iterates through a Python __getitem__
    # per field, raw_items() is one list (0.7 µs less per request).  Names are tokens
    # (ASCII), so lower() gives what h11's own lower-cased names would be.
    fields = [(name.lower(), value) for name, value in event.headers.raw_items()]
    facts = check_request(event, config, fields)
    if isinstance(facts, HTTPError):
        declared, expected = None, True  # a refused request's body is unknown: left unread
    else:
        declared, expected = facts.declared_length, facts.has_body
        if facts.authority is not None:  # absolute-form: its host is the Host (RFC 9112 §3.2.2)
            fields = [field for field in fields if field[0] != b"host"]
            fields.append((b"host", facts.authority))
    body = RequestBody(
        conn,
        transport,
        declared=declared,
        expected=expected,
        max_body_size=config.max_body_size,
        timeout=config.body_timeout,
    )
    request = Request(
        event.method.decode("ascii"),
        event.target.decode("ascii"),
        Headers.from_raw(fields),
        http_version=served_version(event.http_version),
        client=client,
        body_source=body,
        upgrader=upgrader,
    )
    if not expected:
        # Let h11 reach the end of the request now (no I/O needed), so that their_state says
        # DONE rather than "body not read".
        end = conn.next_event()
        assert isinstance(end, h11.EndOfMessage), end
    return request, body, facts
