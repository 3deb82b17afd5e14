"""The exceptions that cross the boundary between handlers and the connection.

What the peer can throw at us (trio's ``BrokenResourceError``, a reset or broken pipe from the
socket, h11's ``RemoteProtocolError`` while reading a body) is mapped to one of these in
:mod:`trio_http.transport` and :mod:`trio_http.http11`, so handler code only ever has to know
this module.
"""

from __future__ import annotations

__all__ = ["BodyTooLarge", "ClientDisconnected", "HTTPError"]


class HTTPError(Exception):
    """Raise from a handler to answer with *status* and a short plain-text *detail*.

    If the response has not started, the connection turns it into a complete response (with
    *headers* added); if it has, the connection is aborted.  Raised by the server itself for a
    request body it will not accept (see :class:`BodyTooLarge`).
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        #: Close the connection after the response (e.g. the request body was not consumed).
        self.close = close

    def __str__(self) -> str:
        return f"{self.status} {self.detail or ''}".rstrip()


class BodyTooLarge(HTTPError):
    """The request body is larger than the server's ``max_body_size`` (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes", close=True)
        self.limit = limit


class ClientDisconnected(Exception):
    """The client went away (reset, closed, or sent an incomplete body) mid-request.

    Raised by :meth:`Request.stream` and :meth:`Request.body`.  Nothing can be sent any more;
    handlers should clean up (the file endpoints delete their temporary file) and let it
    propagate.
    """
