"""Server configuration: one frozen object shared by every connection.

The defaults are what ``trio-http serve`` uses; ``docs/configuration.md`` lists them with the
reasons behind them.  Times are in seconds; ``None`` disables a timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .compression import CompressionPolicy

__all__ = ["RESERVED_FIELDS", "ServerConfig"]

#: Fields that describe the message's framing or the connection: never configurable.
RESERVED_FIELDS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer"}
)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class ServerConfig:
    """How the server behaves on the wire.  All fields have production defaults."""

    #: Send a ``Date`` header (RFC 9110 §6.6.1 wants one from a server with a clock).
    date_header: bool = True
    #: The ``Server`` header value, or ``None`` to send none.
    server_header: str | None = "trio-http"

    #: Largest request head (request line and headers) accepted; larger gets 431.
    max_header_size: int = 64 * KiB
    #: Longest request target accepted; longer gets 414.
    max_target_length: int = 8 * KiB
    #: Largest request body accepted; larger gets 413 (before reading, when the length is
    #: declared; as soon as it is crossed, when chunked).
    max_body_size: int = 1 * GiB
    #: After a response, an unread request body up to this size is read and discarded to keep
    #: the connection; a larger one closes the connection instead.
    max_drain_size: int = 256 * KiB

    #: Close a keep-alive connection idle for this long (also advertised in ``Keep-Alive``).
    keep_alive_timeout: float | None = 5.0
    #: A client must send a complete request head within this time of its first byte (408).
    header_timeout: float | None = 10.0
    #: Longest wait for the next piece of a request body (408).
    body_timeout: float | None = 30.0
    #: Longest wait for the client to accept more of a response before giving up on it.
    write_timeout: float | None = 30.0
    #: How long to keep reading (and discarding) after deciding to close, so the client gets
    #: our response rather than a reset (RFC 9112 §9.6).
    linger_timeout: float = 2.0

    #: Requests served on one connection before it is closed (``None``: unlimited).
    max_requests_per_connection: int | None = None
    #: Connections served at once; further connections get ``503`` and are closed.
    limit_concurrency: int | None = None
    #: On shutdown, how long in-flight requests may run before they are cancelled.
    graceful_timeout: float = 30.0

    compression: CompressionPolicy = field(default_factory=CompressionPolicy)
    #: Write one access-log line per request to the ``trio_http.access`` logger.
    access_log: bool = True
    #: Fields added to every response that does not set the same field itself (HSTS, CSP):
    #: ``(("strict-transport-security", "max-age=31536000"),)``.  Framing and connection
    #: fields are refused: those are the server's to set.
    extra_headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name, _ in self.extra_headers:
            if name.lower() in RESERVED_FIELDS:
                raise ValueError(f"extra_headers: {name} is set by the server itself")
