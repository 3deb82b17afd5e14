"""A request body, read from the wire only as the handler asks for it.

:class:`RequestBody` is the :class:`~trio_http.request.BodySource` behind ``request.stream()``
and ``request.body()``.  Because nothing is read until a handler asks, a handler that refuses
a request (404, 413, 403) never invites the body: ``100 Continue`` is sent lazily, on the first
read.  Limits are enforced while reading, and what a handler leaves unread is drained after
the response, up to a limit, so the connection can carry the next request.
"""

from __future__ import annotations

import h11

from ..errors import BodyTooLarge, ClientDisconnected, HTTPError
from ..protocol.h11_events import CONTINUE
from ..protocol.rules import UnreadBody, check_chunk, describe_h11_error
from ..transport import Transport

__all__ = ["RequestBody"]

#: What unread() says of a complete body (the usual case, without an allocation).
_DONE = UnreadBody(done=True, waiting_for_continue=False, remaining=0)

#: Bytes asked for per read while reading a body.
BODY_RECEIVE_SIZE = 256 * 1024


def _chunk_state(conn: h11.Connection) -> tuple[int, bool] | None:
    """For a chunked body: the bytes the current chunk still declares, and whether h11 waits
    for a chunk-size line.  ``None`` for other bodies.

    h11 keeps both in its private ``ChunkedReader``; reading them lets us refuse a 2 GiB chunk
    at its size line and a bare-LF line at once (tests/test_conformance.py notices if h11 changes).
    """
    reader = getattr(conn, "_reader", None)
    rest = getattr(reader, "_bytes_in_chunk", None)
    if not isinstance(rest, int):
        return None
    awaiting_line = rest == 0 and not getattr(reader, "_bytes_to_discard", b"")
    return rest, awaiting_line and not getattr(reader, "_reading_trailer", False)


class RequestBody:
    """The body of the request being served on *conn* (one object per request)."""

    __slots__ = (
        "_closed",
        "_conn",
        "_max_body_size",
        "_timeout",
        "_transport",
        "declared",
        "expected",
        "received",
    )

    def __init__(
        self,
        conn: h11.Connection,
        transport: Transport,
        *,
        declared: int | None,
        expected: bool,
        max_body_size: int,
        timeout: float | None,
    ) -> None:
        self._conn = conn
        self._transport = transport
        self._max_body_size = max_body_size
        self._timeout = timeout
        #: The declared Content-Length (``None``: chunked or no body).
        self.declared = declared
        #: The request announced a body (chunked, or a non-zero length).
        self.expected = expected
        #: Body bytes read so far.
        self.received = 0
        self._closed = False

    async def receive_body_chunk(self) -> bytes:
        """The next piece of the body, or ``b""`` once it is complete.

        Sends ``100 Continue`` first if the client waits for it.  Raises
        :class:`~trio_http.BodyTooLarge` past the limit, :class:`~trio_http.HTTPError` (400)
        for a malformed body and :class:`~trio_http.ClientDisconnected` if the client leaves.
        """
        if self._closed:
            raise RuntimeError("the request is over: its body can no longer be read")
        conn = self._conn
        if conn.their_state is not h11.SEND_BODY:
            return b""
        if conn.client_is_waiting_for_100_continue:
            continue_head = conn.send(CONTINUE)
            assert continue_head is not None
            await self._transport.send(continue_head)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self._transport.eof:
                    raise ClientDisconnected("the client closed mid-body") from exc
                # h11's message without the bytes it quotes: the client's input is not
                # echoed back in the response (h11's exception stays the cause).
                detail = f"bad request body: {describe_h11_error(exc)}"
                raise HTTPError(exc.error_status_hint, detail, close=True) from exc
            if isinstance(event, h11.Data):
                self.received += len(event.data)
                if self.received > self._max_body_size:
                    raise BodyTooLarge(self._max_body_size)
                self._check_chunk()
                return bytes(event.data)
            if event is not h11.NEED_DATA:
                return b""  # EndOfMessage (trailers are ignored)
            self._check_chunk()
            data = await self._transport.receive("body", self._timeout, BODY_RECEIVE_SIZE)
            conn.receive_data(data)

    def _check_chunk(self) -> None:
        state = _chunk_state(self._conn)
        if state is None:
            return
        rest_of_chunk, awaiting_line = state
        error = check_chunk(
            received=self.received,
            rest_of_chunk=rest_of_chunk,
            max_body_size=self._max_body_size,
            pending_line=self._conn.trailing_data[0] if awaiting_line else None,
        )
        if error is not None:
            raise error

    def close(self) -> None:
        """The exchange is over: what is left belongs to the connection (the next request)."""
        self._closed = True

    def keep_for_next_request(self, data: bytes) -> None:
        """Bytes read past the end of this request: h11 keeps them for the next cycle."""
        self._conn.receive_data(data)

    def unread(self) -> UnreadBody:
        """What is left of the body (for the keep-alive decision)."""
        conn = self._conn
        if conn.their_state is not h11.SEND_BODY:
            return _DONE
        remaining = None if self.declared is None else self.declared - self.received
        return UnreadBody(False, conn.client_is_waiting_for_100_continue, remaining)

    async def drain(self, max_drain_size: int) -> bool:
        """After the response, read and discard what the handler left of the body.

        Returns ``False`` (close the connection) if more than *max_drain_size* is left or the
        body is malformed; the alternative, reading it as the next request, is how smuggling
        and desynchronisation happen.
        """
        their_state = self._conn.their_state
        if their_state is h11.DONE:
            return True
        if their_state is not h11.SEND_BODY:
            return False
        limit = self.received + max_drain_size
        try:
            while await self.receive_body_chunk():
                if self.received > limit:
                    return False
        except (HTTPError, ClientDisconnected):
            return False
        return True
