"""The one place every response passes before it is sent, whoever made it.

Handler responses, error responses, ``304`` and ``206`` from the file server, the connection's
own ``408`` and ``503``: :meth:`ResponseFinalizer.finalize` gives each the same treatment:

1. the content coding the client accepts, with ``Vary: Accept-Encoding`` and the variant's
   ``ETag`` (also on a ``304`` or ``206`` that stands for a compressible representation);
2. ``Content-Length`` from the body itself (never from the handler);
3. the digests the request asks for (``Want-Content-Digest``, ``Want-Repr-Digest``: RFC 9530),
   over the bytes as they will be sent;
4. ``Date``, ``Server``, and ``Connection: close`` or ``Keep-Alive``;
5. the configured extra fields (``ServerConfig.extra_headers``: HSTS, CSP), unless the
   response sets them itself.

A new header policy belongs here.  (CORS is answered in the route layer, :mod:`trio_http.cors`,
because a preflight must be answered before routing.)
"""

from __future__ import annotations

import functools
import time

import h11

from ..compression import encode_eligible
from ..config import ServerConfig
from ..digests import DigestCache, digest_fields, wants_digest
from ..errors import HTTPError
from ..headers import Headers
from ..protocol.h11_events import ResponseHeadCache
from ..protocol.httpdate import format_http_date
from ..protocol.rules import NO_CONTENT_STATUSES
from ..request import Request
from ..response import BaseResponse, error_response, reason_phrase

__all__ = ["ResponseFinalizer", "finalizer_for"]


class _DateCache:
    """The ``Date`` value, formatted once per second rather than once per response."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = format_http_date(now).encode("ascii")
        return self._value


_date_cache = _DateCache()
_response_heads = ResponseHeadCache()


class ResponseFinalizer:
    """Finalizes responses for the servers sharing one :class:`~trio_http.ServerConfig`.

    Shared by all their connections (see :func:`finalizer_for`): an idle connection holds no
    copy of the fixed fields.
    """

    __slots__ = (
        "_constant_fields",
        "_date_header",
        "_digests",
        "_extra_fields",
        "_extra_names",
        "_keep_alive_field",
        "_policy",
    )

    def __init__(self, config: ServerConfig) -> None:
        self._policy = config.compression
        self._digests = DigestCache(config.compression)
        self._date_header = config.date_header
        self._constant_fields: tuple[tuple[bytes, bytes], ...] = (
            ((b"server", config.server_header.encode("latin-1")),) if config.server_header else ()
        )
        self._extra_fields = tuple(
            (name.lower().encode("ascii"), value.encode("latin-1"))
            for name, value in config.extra_headers
        )
        self._extra_names = frozenset(name for name, _ in self._extra_fields)
        # Keep-Alive takes whole seconds: rounded down (the client closes a little early, which
        # is safe), and left out below one second rather than advertise "timeout=0".
        timeout = config.keep_alive_timeout
        self._keep_alive_field = (
            None if timeout is None or timeout < 1 else (b"keep-alive", b"timeout=%d" % timeout)
        )

    async def finalize(
        self, request: Request | None, response: BaseResponse, *, last: bool
    ) -> tuple[BaseResponse, h11.Response]:
        """The response to send (perhaps encoded) and its head.

        *request* is ``None`` for an answer to a request that could not be parsed; *last* says
        whether the connection closes after this response.  Raises ``h11.LocalProtocolError``
        if the head is invalid (a handler put a bad value in a header).
        """
        if request is not None:
            # Eligibility first: most responses (ASGI's, empty, binary) are decided without the
            # Accept-Encoding lookup and a coroutine.
            policy = self._policy
            if response.compress is not False and policy.eligible(response):
                accept = request.headers.get("accept-encoding")
                response = await encode_eligible(response, accept, policy)
            if wants_digest(request.headers):
                response = await self._add_digests(request, response)
        return response, self._head(response, last=last, keep_alive=request is not None)

    async def _add_digests(self, request: Request, response: BaseResponse) -> BaseResponse:
        """``Content-Digest`` / ``Repr-Digest`` as the request wants (RFC 9530 §4)."""
        try:
            fields = await digest_fields(
                request.headers, response, self._digests, method=request.method
            )
        except HTTPError as exc:  # a malformed Want-*-Digest on GET or HEAD
            await response.aclose()
            return error_response(exc.status, exc.detail)
        response.headers.raw.extend(fields)
        return response

    def switching_protocols(self, headers: Headers) -> h11.InformationalResponse:
        """The head of a ``101``: *headers*, Date, Server."""
        raw = headers.raw
        if self._date_header:
            raw.append((b"date", _date_cache.get()))
        raw.extend(self._constant_fields)
        if self._extra_fields:
            self._add_extra_fields(raw)
        return h11.InformationalResponse(status_code=101, headers=raw, reason=reason_phrase(101))

    def _head(self, response: BaseResponse, *, last: bool, keep_alive: bool) -> h11.Response:
        headers = response.headers
        raw = headers.raw
        # One pass over the fields: a Content-Length is ours to set, from the body itself; an
        # application's own Date or Server replaces ours; its Connection: close is honoured.
        own_date = own_server = own_length = False
        for name, value in raw:
            if name == b"content-length":
                own_length = True
            elif name == b"date":
                own_date = True
            elif name == b"server":
                own_server = True
            elif name == b"connection" and b"close" in value.lower():
                last = keep_alive = False  # h11 closes after it; add neither field
        if own_length:
            headers.remove("content-length")
            raw = headers.raw
        length = response.content_length
        if length is not None and response.status not in NO_CONTENT_STATUSES:
            raw.append((b"content-length", b"%d" % length))
        if self._date_header and not own_date:
            raw.append((b"date", _date_cache.get()))
        if not own_server:
            raw.extend(self._constant_fields)
        if self._extra_fields:
            self._add_extra_fields(raw)
        if last:
            raw.append((b"connection", b"close"))
        elif self._keep_alive_field is not None and keep_alive:
            raw.append(self._keep_alive_field)
        status = response.status
        return _response_heads.get(status, reason_phrase(status), raw)

    def _add_extra_fields(self, raw: list[tuple[bytes, bytes]]) -> None:
        """The configured fields (``--header``) the response does not set itself."""
        present = self._extra_names.intersection(name for name, _ in raw)
        raw.extend(field for field in self._extra_fields if field[0] not in present)


@functools.lru_cache(maxsize=16)
def finalizer_for(config: ServerConfig) -> ResponseFinalizer:
    """The finalizer for *config*, built once per configuration."""
    return ResponseFinalizer(config)
