"""The request object handlers receive.

A :class:`Request` is built from h11's ``Request`` event before the body has been read.  The
body stays on the wire until a handler asks for it, through a :class:`BodySource` supplied by
the connection; this is what makes streaming uploads, lazy ``100 Continue`` and early refusals
(413, 404 before reading) possible.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl, unquote

from .errors import BodyTooLarge
from .headers import Headers

if TYPE_CHECKING:
    import trio

    from .headers import HeaderInput
    from .response import BaseResponse

__all__ = ["BodySource", "Handler", "Request"]


class BodySource(Protocol):
    """Where a request's body comes from (the connection, or a fixed byte string in tests)."""

    async def receive_body_chunk(self) -> bytes:
        """Return the next piece of the body, or ``b""`` once it is complete.

        Raises :class:`~trio_http.ClientDisconnected` if the client goes away first.
        """
        ...


class Upgrader(Protocol):
    """What switches a request's connection to another protocol (the connection)."""

    async def switch_protocols(
        self, request: Request, headers: HeaderInput | Headers | None
    ) -> trio.abc.Stream: ...


class _NoBody:
    async def receive_body_chunk(self) -> bytes:
        return b""


_NO_BODY = _NoBody()


class Request:
    """One HTTP request: method, target, headers, client address, and a body to be read.

    ``path`` is the target's path as sent (still percent-encoded); route parameters in
    ``path_params`` are decoded.  The body can be consumed once, either piecewise with
    ``async for chunk in request.stream()`` or whole with ``await request.body()``.
    """

    __slots__ = (
        "_body_consumed",
        "_body_source",
        "_cached_body",
        "_upgrader",
        "access_log_level",
        "client",
        "headers",
        "http_version",
        "log_fields",
        "method",
        "path",
        "path_params",
        "query_string",
        "target",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: Headers,
        *,
        http_version: str = "1.1",
        client: tuple[str, int] | None = None,
        body_source: BodySource | None = None,
        upgrader: Upgrader | None = None,
    ) -> None:
        self.method = method
        self.target = target
        path, _, query = target.partition("?")
        if not path.startswith("/") and "://" in path:
            # absolute-form, which a server must accept (RFC 9112 §3.2.2): drop the authority.
            path = "/" + path.partition("://")[2].partition("/")[2]
        self.path = path
        self.query_string = query
        self.headers = headers
        self.http_version = http_version
        self.client = client
        self.path_params: dict[str, str] = {}
        #: Fields a protocol adds to this request's access-log line (a WebSocket's close code
        #: and message counts), appended as ``name=value`` (combined) or keys (JSON).
        self.log_fields: dict[str, str | int] | None = None
        #: The level of this request's access-log line: a handler lowers it for requests an
        #: operator does not want to see at the default level (``/healthz`` probes).
        self.access_log_level = logging.INFO
        self._body_source: BodySource = body_source or _NO_BODY
        self._body_consumed = False
        self._cached_body: bytes | None = None
        self._upgrader = upgrader

    @property
    def query(self) -> dict[str, list[str]]:
        """The decoded query parameters, each name mapped to all its values."""
        params: dict[str, list[str]] = {}
        for name, value in parse_qsl(self.query_string, keep_blank_values=True):
            params.setdefault(name, []).append(value)
        return params

    @property
    def decoded_path(self) -> str:
        """``path`` percent-decoded as UTF-8 (invalid sequences replaced)."""
        return unquote(self.path, errors="replace")

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body in pieces as they arrive; the iterator ends with the body.

        May be called once.  Raises :class:`~trio_http.ClientDisconnected` if the client goes
        away mid-body and :class:`~trio_http.BodyTooLarge` (an ``HTTPError(413)``) once the body
        crosses the server's limit.  Cancellation leaves the rest of the body unread; the
        connection then closes rather than misread it as the next request.
        """
        if self._body_consumed:
            raise RuntimeError("the request body has already been read")
        self._body_consumed = True
        while chunk := await self._body_source.receive_body_chunk():
            yield chunk

    async def body(self, *, max_size: int | None = None) -> bytes:
        """Read and return the whole body (cached, so it may be called again).

        *max_size* caps what is held in memory; a larger body raises ``BodyTooLarge`` (413).
        """
        if self._cached_body is None:
            parts: list[bytes] = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise BodyTooLarge(max_size)
                parts.append(chunk)
            self._cached_body = b"".join(parts)
        return self._cached_body

    async def upgrade(self, headers: HeaderInput | Headers | None = None) -> trio.abc.Stream:
        """Switch the connection to another protocol: send ``101 Switching Protocols`` with
        *headers* (``Upgrade``, ``Connection: upgrade``, what the protocol needs) and return
        the connection's stream, with whatever the client sent after its request in front.

        The handler then speaks the new protocol on the stream; the connection closes when the
        handler returns (its return value is not sent).  Raises ``RuntimeError`` unless the
        client asked to upgrade (HTTP/1.1, ``Upgrade``, ``Connection: upgrade``) and its body
        has been read, or outside a server.  (Returning an :class:`~trio_http.Upgrade` does the
        same in one step.)
        """
        if self._upgrader is None:
            raise RuntimeError("this request is not served by a connection that can upgrade")
        return await self._upgrader.switch_protocols(self, headers)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target!r}>"


#: What serves requests: an :class:`~trio_http.App`, or any async function of a request.
Handler = Callable[[Request], Awaitable["BaseResponse"]]
