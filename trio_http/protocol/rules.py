"""The HTTP/1.1 rules h11 leaves to the server, as pure functions of plain values.

h11 parses and frames messages; what to *accept* and when to *close* is ours.  Each rule here
takes bytes, numbers and flags and returns a plain value, so it is tested without a socket, a
stream or trio (tests/test_rules.py).  The connection (trio_http/http11/connection.py) calls
them and acts on the result.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import h11

from ..errors import BodyTooLarge, HTTPError

__all__ = [
    "H11_UNKNOWN_CODING",
    "NO_CONTENT_STATUSES",
    "Limits",
    "RequestFacts",
    "UnreadBody",
    "check_chunk",
    "check_request",
    "describe_h11_error",
    "is_valid_host",
    "must_close",
    "skip_empty_lines",
    "target_authority",
    "transfer_coding_error",
]


#: Statuses whose responses have no content, and so no body nor Content-Length (RFC 9110
#: §6.4.1, §8.6): a body a handler gives them is not sent.
NO_CONTENT_STATUSES = frozenset({204, 304})


class Limits(Protocol):
    """The request limits :func:`check_request` applies (a ``ServerConfig`` has them)."""

    @property
    def max_header_size(self) -> int: ...

    @property
    def max_target_length(self) -> int: ...

    @property
    def max_body_size(self) -> int: ...


class RequestFacts(NamedTuple):
    """What the checks learned from a request head that the rest of the exchange needs."""

    #: The client said it sends nothing more: ``Connection: close``, or HTTP/1.0 (which h11
    #: never keeps alive).
    client_close: bool
    #: The declared ``Content-Length`` (``None``: chunked, or no body).
    declared_length: int | None
    #: The request has a body to read (chunked, or a non-zero length).
    has_body: bool
    #: The host of an absolute-form target, which replaces the Host field (RFC 9112 §3.2.2).
    authority: bytes | None = None


# RFC 3986 §3.2.2 reg-name: unreserved / pct-encoded / sub-delims; §3.2.3 port: *DIGIT.
_REG_NAME = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
_IPV_FUTURE = re.compile(rb"v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+")


@functools.lru_cache(maxsize=256)  # a client sends the same Host on every request: 1 µs saved
def is_valid_host(value: bytes) -> bool:
    """Whether *value* is a valid ``Host`` field value: ``uri-host [ ":" port ]``.

    RFC 9112 §3.2: a server MUST answer 400 to a request whose Host is invalid.  An empty value
    is valid (a target without an authority); a port must be a number from 0 to 65535, or
    empty (RFC 3986 §3.2.3: ``port = *DIGIT``).
    """
    host, port = value, b""
    if value.startswith(b"["):
        end = value.find(b"]")
        if end < 0:
            return False
        host, rest = value[: end + 1], value[end + 1 :]
        if rest and not rest.startswith(b":"):
            return False
        port = rest[1:]
        literal = host[1:-1]
        if not _IPV_FUTURE.fullmatch(literal):
            try:
                ipaddress.IPv6Address(literal.decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                return False
    else:
        host, colon, port = value.rpartition(b":")
        if not colon:
            host, port = value, b""
        if not _REG_NAME.fullmatch(host):  # also covers IPv4 addresses
            return False
    if port:
        return port.isdigit() and int(port) <= 65535
    return True


def check_request(
    event: h11.Request, limits: Limits, fields: Sequence[tuple[bytes, bytes]] | None = None
) -> RequestFacts | HTTPError:
    """Check a request head h11 accepted (RFC 9112 §2.3, §3, §6.1; RFC 9110 §10.1.1).

    Returns the facts the exchange needs, or the :class:`HTTPError` to answer instead of
    calling the handler (its ``close`` says whether the connection must close after it).
    *fields* are the event's headers as a list, if the caller has one (h11's own sequence is
    slower to walk).
    """
    # RFC 9110 §2.5: a later minor version of HTTP/1 is served as HTTP/1.1 (h11 gives "d.d",
    # and frames anything above 1.0 as 1.1); another major version gets 505.
    if not event.http_version.startswith(b"1."):
        return HTTPError(505, "this server speaks HTTP versions 1.0 and 1.1", close=True)
    client_close = event.http_version == b"1.0"
    # h11 enforces max_incomplete_event_size only while a head is incomplete; a large head
    # that arrives in one read gets through, so measure it (close enough: CRLFs, ": ").
    head_size = len(event.method) + len(event.target) + 12
    content_length: bytes | None = None
    host: bytes | None = None
    chunked = bad_expect = False
    for name, value in event.headers if fields is None else fields:
        head_size += len(name) + len(value) + 4
        if name == b"content-length":
            content_length = value
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"host":
            host = value
        elif name == b"expect":
            bad_expect = bad_expect or value.lower() != b"100-continue"
        elif name == b"connection" and b"close" in value.lower():
            client_close = client_close or any(
                token.strip() == b"close" for token in value.lower().split(b",")
            )
    if len(event.target) > limits.max_target_length:
        return HTTPError(414, f"request target longer than {limits.max_target_length}")
    authority = None
    if event.target[:1] != b"/":
        if not _other_form_is_valid(event.method, event.target):
            return HTTPError(400, "the request target is not of a form this method may use")
        authority = target_authority(event.target)
        if authority is not None:
            # RFC 9112 §3.2.2: the target's host is used and the Host field ignored; an http
            # URI's host is never empty (RFC 9110 §4.2.1) and userinfo is an error (§4.2.4).
            scheme = event.target.partition(b":")[0].lower()
            if not is_valid_host(authority) or (not authority and scheme in _HTTP_SCHEMES):
                return HTTPError(400, "invalid host in the request target", close=True)
            # (The Host field is still checked below: §3.2 refuses an invalid one, whatever
            # the target's form.)
    if head_size > limits.max_header_size:
        return HTTPError(431, f"request head larger than {limits.max_header_size} bytes")
    if host is not None and not is_valid_host(host):
        return HTTPError(400, "invalid Host header", close=True)
    if bad_expect:
        return HTTPError(417, "only 'Expect: 100-continue' is supported", close=True)
    if chunked and content_length is not None:
        # A message with both is how request smuggling works: refuse, and close, because we
        # cannot know where this request ends.
        return HTTPError(400, "both Content-Length and Transfer-Encoding", close=True)
    declared = int(content_length) if content_length is not None else None
    if declared is not None and declared > limits.max_body_size:
        return BodyTooLarge(limits.max_body_size)
    return RequestFacts(client_close, declared, chunked or bool(declared), authority)


# RFC 3986 §3.1: scheme ":" -- the start of an absolute-URI (RFC 9112 §3.2.2).
_HTTP_SCHEMES = (b"http", b"https")
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*:")


def _other_form_is_valid(method: bytes, target: bytes) -> bool:
    """Whether a target that is not origin-form is valid for *method* (RFC 9112 §3.2): ``*``
    only for OPTIONS (§3.2.4), an authority only for CONNECT (§3.2.3), an absolute-URI for
    any method (§3.2.2)."""
    if target == b"*":
        return method == b"OPTIONS"
    return method == b"CONNECT" or _SCHEME.match(target) is not None


def target_authority(target: bytes) -> bytes | None:
    """The authority of an absolute-form *target* with one (``scheme://authority...``), else
    ``None`` (RFC 3986 §3.2: it ends at the first ``/``, ``?`` or ``#``)."""
    scheme_end = target.find(b"://")
    if scheme_end < 0 or not _SCHEME.fullmatch(target, 0, scheme_end + 1):
        return None
    start = scheme_end + 3
    end = len(target)
    for delimiter in (b"/", b"?", b"#"):
        found = target.find(delimiter, start)
        if 0 <= found < end:
            end = found
    return target[start:end]


#: What h11 says (with 501) of any Transfer-Encoding other than one "chunked".
H11_UNKNOWN_CODING = frozenset(
    {"Only Transfer-Encoding: chunked is supported", "multiple Transfer-Encoding headers"}
)
_TRANSFER_ENCODING = re.compile(rb"^transfer-encoding[ \t]*:(.*)$", re.IGNORECASE | re.MULTILINE)


def transfer_coding_error(received: bytes) -> HTTPError:
    """The answer to a head whose Transfer-Encoding h11 refused (:data:`H11_UNKNOWN_CODING`),
    from the *received* bytes that hold the head: 501 when chunked is the final coding (RFC
    9112 §6.1: a coding we do not know), else 400 (§6.3 (4): chunked not final, the body
    length cannot be known; also when the field is not in *received*).  Both close."""
    end = min(
        (i for i in (received.find(b"\r\n\r\n"), received.find(b"\n\n")) if i >= 0),
        default=len(received),
    )
    codings = [
        coding.strip().lower()
        for field in _TRANSFER_ENCODING.finditer(received, 0, end)
        for coding in field[1].split(b",")
    ]
    codings = [coding for coding in codings if coding]
    if codings and codings[-1] == b"chunked":
        return HTTPError(501, "only the chunked transfer coding is supported", close=True)
    return HTTPError(400, "chunked is not the final transfer coding", close=True)


def check_chunk(
    *, received: int, rest_of_chunk: int, max_body_size: int, pending_line: bytes | None
) -> HTTPError | None:
    """Refuse a chunked body as soon as its framing shows it cannot be accepted.

    *rest_of_chunk* is what the chunk being read still declares; a declared chunk that alone
    would cross the limit is refused at once rather than after reading up to the limit.
    *pending_line* is the unparsed start of a chunk-size line, if h11 is waiting for one: a
    line ending in a bare LF would never parse (h11 waits for CRLF), so it is answered with
    400 instead of waiting for a timeout (RFC 9112 §7.1 requires CRLF).
    """
    if received + rest_of_chunk > max_body_size:
        return BodyTooLarge(max_body_size)
    if pending_line is not None:
        line_end = pending_line.find(b"\n")
        if line_end >= 0 and pending_line[line_end - 1 : line_end] != b"\r":
            return HTTPError(400, "chunk line ends in a bare LF", close=True)
    return None


class UnreadBody(NamedTuple):
    """What is left of a request body when the response is about to be sent."""

    #: The body is complete (or there was none).
    done: bool
    #: The client is still waiting for ``100 Continue`` before it sends the body.
    waiting_for_continue: bool
    #: Bytes of it still to come, if the length was declared (``None``: chunked).
    remaining: int | None


def must_close(
    *,
    close_requested: bool,
    client_close: bool,
    draining: bool,
    requests_served: int,
    max_requests: int | None,
    body: UnreadBody,
    max_drain_size: int,
) -> bool:
    """Whether the response about to be sent is the connection's last.

    Decided before sending, so the response can say ``Connection: close``.  Besides the
    obvious reasons, an unread body closes the connection when the client still waits for
    ``100 Continue`` (it may never send the body) or when the rest is too large, or of unknown
    size, to read and discard just to keep the connection.
    """
    if (
        close_requested
        or client_close
        or draining
        or (max_requests is not None and requests_served >= max_requests)
    ):
        return True
    if body.done:
        return False
    if body.waiting_for_continue:
        return True
    return body.remaining is None or body.remaining > max_drain_size


def describe_h11_error(error: h11.RemoteProtocolError) -> str:
    """h11's message without the raw bytes it quotes (those go to the log, not the client)."""
    return re.split(r":? (?:bytearray\(|b['\"])", str(error), maxsplit=1)[0]


def skip_empty_lines(data: bytes) -> bytes:
    """*data* without the empty lines before a request line (RFC 9112 §2.2 SHOULD ignore).

    Only whole lines go: ``CRLF`` or a bare ``LF``; a lone ``CR`` stays for h11 to judge.
    """
    start = 0
    while True:
        if data.startswith(b"\r\n", start):
            start += 2
        elif data.startswith(b"\n", start):
            start += 1
        else:
            return data[start:] if start else data
