"""One HTTP/1.1 connection: bytes in, h11 events, handler calls, bytes out.

:class:`HTTPConnection` owns a byte stream and an ``h11.Connection``.  Its loop reads a request
head, builds a :class:`~trio_http.Request`, calls the handler, sends the response, and either
starts the next cycle (keep-alive) or closes.  Everything the network or the peer can throw is
caught here and nowhere else: trio's stream errors become :class:`ClientDisconnected`, h11's
``RemoteProtocolError`` becomes an error response, handler exceptions become ``500``.

Timeouts use one cancel scope for the whole connection whose deadline is moved before each
read or write and pushed back to infinity after it, so no scope is created per I/O call.  When
it fires, :attr:`HTTPConnection._waiting_for` says what we were waiting for, which decides the
answer: nothing for an idle connection, ``408`` for a slow request head or body, an abort for a
client that stopped reading.
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import os
import re
import sys
import time
from typing import BinaryIO, Final, Literal, cast

import h11
import trio

from .accesslog import AccessLogger
from .compression import negotiate_and_encode
from .config import ServerConfig
from .errors import BodyTooLarge, ClientDisconnected, HTTPError
from .h11_events import CONTINUE, END_OF_MESSAGE, ResponseHeadCache
from .headers import Headers
from .httpdate import format_http_date
from .request import Request
from .response import BaseResponse, FileResponse, Response, error_response, reason_phrase
from .routing import Handler
from .sendfile import SocketSender

try:
    import fcntl
    import termios

    _FIONREAD: int | None = termios.FIONREAD
except ImportError:  # pragma: no cover - not on Linux or macOS
    _FIONREAD = None

__all__ = ["ConnectionRegistry", "HTTPConnection"]

log = logging.getLogger("trio_http.error")

#: Bytes asked for per read while waiting for a request head, and while reading a body.
HEAD_RECEIVE_SIZE = 64 * 1024
BODY_RECEIVE_SIZE = 256 * 1024
#: Responses up to this size are joined with their head into one write (one syscall); larger
#: bodies are written separately to avoid copying them.
JOIN_LIMIT = 64 * 1024
#: File bodies up to this size are read into memory and sent together with the head.
SMALL_FILE_SIZE = 16 * 1024
#: Status codes that must not carry Content-Length (RFC 9110 §8.6) or a body.
_NO_LENGTH_STATUSES = frozenset({204, 304})

Waiting = Literal["idle", "head", "body", "write", "nothing"]


class _Incomplete(enum.Enum):
    """h11 needs more bytes before it has a request head (its ``NEED_DATA``, typed)."""

    HEAD = "incomplete"


INCOMPLETE: Final = _Incomplete.HEAD


class ConnectionRegistry:
    """The live connections of one server, so shutdown can find the idle ones.

    :meth:`drain` marks the server as draining: idle connections are closed at once, busy ones
    finish their current response (sent with ``Connection: close``) and then close.
    """

    def __init__(self) -> None:
        self.connections: set[HTTPConnection] = set()
        self.draining = False

    def drain(self) -> None:
        self.draining = True
        for connection in list(self.connections):
            connection.close_if_idle()


class _DateCache:
    """The ``Date`` value, formatted once per second rather than once per response."""

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


@functools.lru_cache(maxsize=16)
def _fixed_fields(
    server_header: str | None, keep_alive_timeout: float | None
) -> tuple[tuple[tuple[bytes, bytes], ...], tuple[bytes, bytes] | None]:
    """The fields every response carries, and the Keep-Alive field, encoded once per server.

    Shared by all connections of a server, not built per connection (memory per idle
    connection).  Keep-Alive takes whole seconds: rounded down (the client closes a little
    early, which is safe), and left out below one second rather than advertise "timeout=0".
    """
    constant = ((b"server", server_header.encode("latin-1")),) if server_header else ()
    keep_alive = (
        None
        if keep_alive_timeout is None or keep_alive_timeout < 1
        else (b"keep-alive", b"timeout=%d" % int(keep_alive_timeout))
    )
    return constant, keep_alive


class HTTPConnection:
    """Serve HTTP/1.1 requests from *stream* with *handler* until either side closes.

    :meth:`run` returns when the connection is done; it closes *stream* itself and does not
    raise for anything the client does.  Cancelling it aborts the connection.
    """

    # Slots: an idle keep-alive connection is mostly this object and its task, and servers
    # hold thousands of them (bench idle-conns scenario).
    __slots__ = (
        "_access_logger",
        "_body_declared",
        "_body_received",
        "_client",
        "_client_close",
        "_close_after_response",
        "_config",
        "_conn",
        "_constant_fields",
        "_eof",
        "_fd",
        "_handler",
        "_keep_alive_field",
        "_registry",
        "_requests_served",
        "_stream",
        "_timeout_scope",
        "_waited",
        "_waiting_for",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        handler: Handler,
        config: ServerConfig,
        *,
        client: tuple[str, int] | None = None,
        registry: ConnectionRegistry | None = None,
        access_logger: AccessLogger | None = None,
    ) -> None:
        self._stream = stream
        self._handler = handler
        self._config = config
        self._client = client
        self._registry = registry
        self._access_logger = access_logger
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_size)
        self._timeout_scope = trio.CancelScope()
        # A plain TCP socket's descriptor, for the non-blocking fast paths of _receive and
        # _send; None for TLS and in-memory streams, which always go through trio.
        self._fd = stream.socket.fileno() if type(stream) is trio.SocketStream else None
        self._waited = False
        self._constant_fields, self._keep_alive_field = _fixed_fields(
            config.server_header, config.keep_alive_timeout
        )
        self._waiting_for: Waiting = "nothing"
        self._requests_served = 0
        self._eof = False
        # Per request:
        self._body_received = 0
        self._body_declared: int | None = None
        self._client_close = False
        self._close_after_response = False

    # ---------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Serve requests until the connection closes; always closes the stream.

        The keep-alive loop is written out here, and an idle connection waits for its next
        request right in it rather than a few calls down: every coroutine suspended under an
        idle connection is a frame of about 300 bytes, held for as long as it idles, and a
        server holds thousands of idle connections (docs/performance.md, idle-conns).
        """
        if self._registry is not None:
            self._registry.connections.add(self)
        conn = self._conn
        config = self._config
        graceful = False
        try:
            with self._timeout_scope:
                head_was_read = False
                while True:
                    # After a request whose head had to be read, h11's buffer is usually
                    # empty, and checking that (trailing_data, a copy of the buffer) is
                    # cheaper than a parse attempt (1.8 µs).  After one that was already
                    # buffered, parse first: copying the rest of a pipelined burst once per
                    # request would be quadratic.  Either way each read's bytes are copied
                    # once, plus at most one partial head.
                    if head_was_read and conn.trailing_data == (b"", False):
                        idle = True
                    else:
                        event = self._next_event()
                        idle = event is INCOMPLETE and conn.trailing_data == (b"", False)
                    self._waited = False
                    head_was_read = idle
                    if idle:
                        # Nothing of the next request yet.
                        if self._close_after_response or (
                            self._registry is not None and self._registry.draining
                        ):
                            break
                        timeout = (
                            config.keep_alive_timeout
                            if self._requests_served
                            else config.header_timeout
                        )
                        idle_since = trio.current_time()
                        if self._fd is not None:
                            # Wait before reading: between requests the next one has almost
                            # never arrived yet (counted under wrk: a read tried first failed
                            # once per request).
                            self._begin_wait("idle", timeout)
                            try:
                                await trio.lowlevel.wait_readable(self._fd)
                            except (trio.ClosedResourceError, OSError) as exc:
                                raise ClientDisconnected(str(exc)) from exc
                            await self._deliver_late_cancel()
                            self._end_wait()
                        # What is left of the idle timeout, should the wake-up be spurious.
                        if timeout is not None:
                            timeout -= trio.current_time() - idle_since
                        await self._receive("idle", timeout, HEAD_RECEIVE_SIZE)
                        event = self._next_event()
                    if event is INCOMPLETE:
                        event = await self._rest_of_head()
                        head_was_read = True
                    if event is None:
                        break
                    if not self._waited:
                        # The request was already buffered (pipelining, or a fast client):
                        # with the fast paths nothing has yielded to other tasks, so do it
                        # here, once a request.
                        await trio.lowlevel.checkpoint()
                    if isinstance(event, HTTPError):
                        await self._send_error(event, time.perf_counter())
                        break
                    await self._serve(event)
                    # Not kept alive by this frame while the connection idles (~400 bytes).
                    event = None
                    if conn.our_state is h11.MUST_CLOSE or not await self._finish_request_body():
                        break
                    conn.start_next_cycle()
                graceful = True  # left the loop by a break, not by a fired deadline
            if self._timeout_scope.cancelled_caught:
                graceful = await self._on_timeout()
        except ClientDisconnected:
            graceful = False
        finally:
            if self._registry is not None:
                self._registry.connections.discard(self)
            await self._close(graceful)

    def close_if_idle(self) -> None:
        """Close now if waiting for the next request; else close after the current one."""
        self._close_after_response = True
        if self._waiting_for == "idle":
            self._timeout_scope.cancel()

    def _begin_wait(self, waiting_for: Waiting, timeout: float | None) -> None:
        """Before blocking: note what for (see _on_timeout) and arm the deadline."""
        self._waited = True
        self._waiting_for = waiting_for
        if timeout is not None:
            self._timeout_scope.deadline = trio.current_time() + timeout

    def _end_wait(self) -> None:
        """After blocking.  Never in a ``finally``: a fired deadline leaves the state as it was
        for :meth:`_on_timeout`."""
        self._timeout_scope.deadline = math.inf
        self._waiting_for = "nothing"

    async def _deliver_late_cancel(self) -> None:
        """Raise ``Cancelled`` now if the timeout scope was cancelled while the wait ended.

        trio wakes a task for I/O before it expires deadlines, so a wait can return normally
        in the same tick in which its deadline passed (or a drain cancelled it); the
        cancellation would then hit the next checkpoint, in a handler, as a mysterious
        abort.  Raised here, it is still attributed to the wait (``_waiting_for``).
        """
        if self._timeout_scope.cancel_called:
            await trio.lowlevel.checkpoint()

    def _input_pending(self) -> bool:
        """Whether bytes from the client are waiting in the socket, unread (plain TCP only)."""
        if self._fd is None or _FIONREAD is None:
            return False
        try:
            pending = fcntl.ioctl(self._fd, _FIONREAD, b"\0\0\0\0")
        except OSError:
            return False
        return int.from_bytes(pending, sys.byteorder) > 0

    async def _on_timeout(self) -> bool:
        """Answer a fired timeout; returns whether the close may be graceful."""
        waiting_for = self._waiting_for
        if waiting_for == "idle":
            # Nothing is in flight, so no need to linger -- unless a request arrived just as
            # the timeout fired: closing on its unread bytes would send a reset.
            return self._input_pending()
        if waiting_for in ("head", "body") and self._can_respond():
            what = "request head" if waiting_for == "head" else "request body"
            log.info("%s: timed out waiting for the %s", self._peer(), what)
            with trio.move_on_after(self._config.linger_timeout):
                error = HTTPError(408, f"timed out waiting for the {what}")
                await self._send_error(error, time.perf_counter())
            return True
        log.info("%s: timed out waiting for the client to read the response", self._peer())
        return False

    async def _close(self, graceful: bool) -> None:
        """Close the stream; if *graceful*, half-close and drain first (lingering close).

        Closing a socket with unread input makes the kernel send a reset, which can destroy the
        response we just sent before the client reads it (RFC 9112 §9.6).  So we send FIN, read
        and discard until the client closes or ``linger_timeout`` passes, then close.

        Skipped when the client has said it sends nothing more (``Connection: close`` or
        HTTP/1.0, RFC 9112 §9.6) and all it sent was read, by h11 and from the socket
        (``FIONREAD``): nothing can be in flight, and the half-close, the wait for its FIN and
        the extra read cost a third of a connection-per-request exchange (bench
        close-per-request).
        """
        stream = self._stream
        conn = self._conn
        client_is_done = (
            self._client_close
            and conn.their_state in (h11.DONE, h11.MUST_CLOSE)
            and not conn.trailing_data[0]
            and not self._input_pending()  # e.g. an HTTP/1.0 client's stray CRLF after a body
        )
        if (
            graceful
            and not self._eof
            and not client_is_done
            and isinstance(stream, trio.abc.HalfCloseableStream)
        ):
            with trio.move_on_after(self._config.linger_timeout):
                try:
                    await stream.send_eof()
                    while await stream.receive_some(HEAD_RECEIVE_SIZE):
                        pass
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
        if self._fd is not None:
            # A plain socket closes synchronously; aclose_forcefully's cancel scope and
            # cancelled checkpoint took a fifth of a connection-per-request exchange.
            # (serve_listeners closes the stream again afterwards, which is a no-op then.)
            cast(trio.SocketStream, stream).socket.close()
        else:
            await trio.aclose_forcefully(stream)

    # ---------------------------------------------------------------- reading

    async def _receive(self, waiting_for: Waiting, timeout: float | None, size: int) -> None:
        """Read once from the stream into h11, within *timeout*."""
        fd = self._fd
        if fd is None:
            await self._receive_from_stream(waiting_for, timeout, size)
            return
        # Plain TCP: read the socket directly.  Bytes already waiting cost no trip through the
        # scheduler and no deadline change; waiting is one epoll registration, not trio's
        # receive_some, which would try a recv first as well (docs/performance.md).
        deadline: float | None = None  # set at the first wait: a spurious wake-up keeps it
        while True:
            try:
                data = os.read(fd, size)
                break
            except BlockingIOError:
                pass
            except OSError as exc:
                raise ClientDisconnected(str(exc)) from exc
            if timeout is not None and deadline is None:
                deadline = trio.current_time() + timeout
            self._begin_wait(
                waiting_for, None if deadline is None else deadline - trio.current_time()
            )
            try:
                await trio.lowlevel.wait_readable(fd)
            except (trio.ClosedResourceError, OSError) as exc:
                raise ClientDisconnected(str(exc)) from exc
            await self._deliver_late_cancel()
            self._end_wait()
        self._eof = not data
        self._conn.receive_data(data)

    async def _receive_from_stream(
        self, waiting_for: Waiting, timeout: float | None, size: int
    ) -> None:
        """:meth:`_receive` for streams without a socket to read directly (TLS, memory)."""
        self._begin_wait(waiting_for, timeout)
        try:
            received = await self._stream.receive_some(size)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ClientDisconnected(str(exc)) from exc
        await self._deliver_late_cancel()
        self._end_wait()
        self._eof = not received
        self._conn.receive_data(received)  # type: ignore[arg-type]  # bytearray is fine

    def _next_event(self) -> h11.Request | HTTPError | _Incomplete | None:
        """h11's next event at the start of a cycle, with errors mapped.

        A request head, ``None`` when the client closed, an :class:`HTTPError` for a request
        to refuse before it reaches a handler, or ``INCOMPLETE`` (h11's ``NEED_DATA``).
        """
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            log.info("%s: bad request: %s", self._peer(), exc)
            return HTTPError(exc.error_status_hint, _describe(exc), close=True)
        if isinstance(event, h11.Request):
            return event
        if isinstance(event, h11.ConnectionClosed):
            return None
        assert event is h11.NEED_DATA, event
        return INCOMPLETE

    async def _rest_of_head(self) -> h11.Request | HTTPError | None:
        """Read until a request head whose first bytes have arrived is complete.

        The whole head must arrive within ``header_timeout`` of this call.
        """
        timeout = self._config.header_timeout
        deadline = None if timeout is None else trio.current_time() + timeout
        while True:
            remaining = None if deadline is None else deadline - trio.current_time()
            await self._receive("head", remaining, HEAD_RECEIVE_SIZE)
            event = self._next_event()
            if event is not INCOMPLETE:
                return event

    def _check_request(
        self, event: h11.Request, fields: list[tuple[bytes, bytes]]
    ) -> HTTPError | None:
        """Protocol rules h11 leaves to us (RFC 9112 §2.3, §3, §6.1; RFC 9110 §10.1.1).

        Also notes whether the client asked to close (HTTP/1.0, which h11 never keeps alive,
        or ``Connection: close``), in the same pass over the headers.
        """
        # h11 does no keep-alive for HTTP/1.0.
        self._client_close = event.http_version != b"1.1"
        if event.http_version not in (b"1.1", b"1.0"):
            return HTTPError(505, "this server speaks HTTP versions 1.0 and 1.1", close=True)
        config = self._config
        # h11 enforces max_incomplete_event_size only while a head is incomplete; a large head
        # that arrives in one read gets through, so measure it (close enough: CRLFs, ": ").
        head_size = len(event.method) + len(event.target) + 12
        content_length: bytes | None = None
        chunked = bad_expect = False
        for name, value in fields:
            head_size += len(name) + len(value) + 4
            if name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"expect":
                bad_expect = bad_expect or value.lower() != b"100-continue"
            elif name == b"connection" and b"close" in value.lower():
                tokens = value.lower().split(b",")
                self._client_close = self._client_close or any(
                    token.strip() == b"close" for token in tokens
                )
        if len(event.target) > config.max_target_length:
            return HTTPError(414, f"request target longer than {config.max_target_length}")
        if head_size > config.max_header_size:
            return HTTPError(431, f"request head larger than {config.max_header_size} bytes")
        if bad_expect:
            return HTTPError(417, "only 'Expect: 100-continue' is supported", close=True)
        if chunked and content_length is not None:
            # A message with both is how request smuggling works: refuse, and close, because
            # we cannot know where this request ends.
            return HTTPError(400, "both Content-Length and Transfer-Encoding", close=True)
        self._body_declared = int(content_length) if content_length is not None else None
        if self._body_declared is not None and self._body_declared > self._config.max_body_size:
            return BodyTooLarge(self._config.max_body_size)
        if not chunked and not self._body_declared:
            # No body: let h11 reach the end of the request now (no I/O needed), so that
            # their_state says DONE rather than "body not read".
            end = self._conn.next_event()
            assert isinstance(end, h11.EndOfMessage), end
        return None

    async def receive_body_chunk(self) -> bytes:
        """:class:`~trio_http.request.BodySource` for the current request (see there).

        Sends ``100 Continue`` first if the client is waiting for it: only a handler that
        actually reads the body invites it (lazy 100-continue).
        """
        conn = self._conn
        if conn.their_state is not h11.SEND_BODY:
            return b""
        if conn.client_is_waiting_for_100_continue:
            await self._send(self._send_event(CONTINUE))
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self._eof:
                    raise ClientDisconnected("the client closed mid-body") from exc
                status = exc.error_status_hint
                raise HTTPError(status, f"bad request body: {exc}", close=True) from exc
            if event is h11.NEED_DATA:
                await self._receive("body", self._config.body_timeout, BODY_RECEIVE_SIZE)
                continue
            if isinstance(event, h11.Data):
                self._body_received += len(event.data)
                if self._body_received > self._config.max_body_size:
                    raise BodyTooLarge(self._config.max_body_size)
                return bytes(event.data)
            return b""  # EndOfMessage (trailers are ignored)

    async def _finish_request_body(self) -> bool:
        """After a response, read and discard what the handler left of the request body.

        Returns ``False`` (close the connection) if there is more than ``max_drain_size`` of it
        or it is malformed; the alternative, reading it as the next request, is how smuggling
        and desync bugs happen.
        """
        if self._conn.their_state is h11.DONE:
            return True
        if self._conn.their_state is not h11.SEND_BODY:
            return False
        limit = self._body_received + self._config.max_drain_size
        try:
            while await self.receive_body_chunk():
                if self._body_received > limit:
                    return False
        except (HTTPError, ClientDisconnected):
            return False
        return True  # receive_body_chunk returned b"": the request is complete

    # ---------------------------------------------------------------- serving

    async def _serve(self, event: h11.Request) -> None:
        """Run the handler for one request and send its response (or an error)."""
        started = time.perf_counter()
        self._requests_served += 1
        self._body_received = 0
        self._body_declared = None  # set by _check_request, unless it refuses first
        fields = list(event.headers)
        request = Request(
            event.method.decode("ascii"),
            event.target.decode("ascii"),
            Headers.from_raw(fields),
            http_version=event.http_version.decode("ascii"),
            client=self._client,
            body_source=self,
        )
        status, sent = 500, 0
        try:
            refusal = self._check_request(event, fields)
            if refusal is None:
                response = await self._call_handler(request)
            else:
                log.info(
                    "%s: refused %s %s: %s", self._peer(), request.method, request.target, refusal
                )
                response = self._error_response(refusal)
            status = response.status
            sent = await self._send_response(request, response)
        except ClientDisconnected:
            status = 499  # nginx's "client closed request", familiar to operators
            raise
        finally:
            if self._access_logger is not None:
                self._access_logger.log(
                    request, status, sent, time.perf_counter() - started, self._client
                )

    async def _call_handler(self, request: Request) -> BaseResponse:
        """The handler's response, or the error response for what it raised."""
        try:
            response = await self._handler(request)
        except HTTPError as exc:
            return self._error_response(exc)
        except ClientDisconnected:
            raise
        except Exception:
            log.exception(
                "%s: handler failed for %s %s", self._peer(), request.method, request.target
            )
            self._close_after_response = True
            return error_response(500, "the server failed to handle this request")
        return await negotiate_and_encode(
            response, request.headers.get("accept-encoding"), self._config.compression
        )

    def _can_respond(self) -> bool:
        return self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    def _error_response(self, error: HTTPError) -> Response:
        if error.close:
            self._close_after_response = True
        return error_response(error.status, error.detail, error.headers)

    async def _send_error(self, error: HTTPError, started: float) -> None:
        """Answer a request we could not even parse (or that timed out); always closes."""
        self._close_after_response = True
        if self._can_respond():
            sent = await self._send_response(None, self._error_response(error))
            if self._access_logger is not None:
                duration = time.perf_counter() - started
                self._access_logger.log(None, error.status, sent, duration, self._client)

    def _response_headers(self, request: Request | None, response: BaseResponse) -> Headers:
        """The headers to send: the handler's, plus framing, Date, Server and Connection."""
        headers = response.headers
        raw = headers.raw
        config = self._config
        for name, _ in raw:
            if name == b"content-length":
                headers.remove("content-length")  # ours to set, from the body itself
                raw = headers.raw
                break
        length = response.content_length
        if length is not None and response.status not in _NO_LENGTH_STATUSES:
            raw.append((b"content-length", b"%d" % length))
        if config.date_header:
            raw.append((b"date", _date_cache.get()))
        raw.extend(self._constant_fields)
        if self._must_close_after(request):
            raw.append((b"connection", b"close"))
        elif self._keep_alive_field is not None and request is not None:
            raw.append(self._keep_alive_field)
        return headers

    def _must_close_after(self, request: Request | None) -> bool:
        """Decide, before the response is sent, whether this is the connection's last one."""
        config = self._config
        conn = self._conn
        if (
            self._close_after_response
            or request is None
            or self._client_close
            or (self._registry is not None and self._registry.draining)
            or (
                config.max_requests_per_connection is not None
                and self._requests_served >= config.max_requests_per_connection
            )
        ):
            return True
        if conn.their_state is h11.SEND_BODY:
            # The handler left (some of) the body unread.  If the client is still waiting for
            # 100 Continue it may never send the body; if the rest is large, reading it just
            # to keep the connection is not worth it.
            if conn.client_is_waiting_for_100_continue:
                return True
            remaining = (
                None if self._body_declared is None else self._body_declared - self._body_received
            )
            if remaining is None or remaining > config.max_drain_size:
                return True
        return False

    async def _send_response(self, request: Request | None, response: BaseResponse) -> int:
        """Send *response*; returns the number of body bytes sent.

        A response that cannot be framed (invalid headers from a handler) is replaced by 500.
        Errors while sending the body abort the connection: :class:`ClientDisconnected` if the
        client went away, anything else (a length mismatch, a file that shrank) is logged.
        """
        try:
            headers = self._response_headers(request, response)
            status = response.status
            head = _response_heads.get(status, reason_phrase(status), headers.raw)
        except h11.LocalProtocolError as exc:
            await response.aclose()
            log.error("%s: handler returned an invalid response: %s", self._peer(), exc)
            self._close_after_response = True
            response = error_response(500, "the handler returned an invalid response")
            head = h11.Response(
                status_code=500,
                headers=self._response_headers(request, response).raw,
                reason=reason_phrase(500),
            )
        conn = self._conn
        try:
            data = conn.send(head)
            assert data is not None
            if request is not None and request.method == "HEAD":
                await self._send(data + self._send_event(END_OF_MESSAGE))
                return 0
            if isinstance(response, Response):
                return await self._send_bytes_body(data, response.body)
            if isinstance(response, FileResponse) and response.content_length <= SMALL_FILE_SIZE:
                # One write with the head beats head + sendfile + trailer for small files; the
                # blocking read is a page-cache copy of a few KiB (docs/performance.md).
                return await self._send_bytes_body(data, response.read_all())
            await self._send(data)
            sender = (
                SocketSender.for_stream(self._stream)
                if isinstance(response, FileResponse)
                else None
            )
            if isinstance(response, FileResponse) and sender is not None:
                sent = await self._send_file_body(response, sender)
            else:
                sent = 0
                async for chunk in response.iter_body():
                    await self._send_data(chunk)
                    sent += len(chunk)
            await self._send(self._send_event(END_OF_MESSAGE))
            return sent
        except (ClientDisconnected, trio.Cancelled):
            raise
        except Exception as exc:
            log.error("%s: response aborted: %s", self._peer(), exc, exc_info=True)
            raise ClientDisconnected(f"response aborted: {exc}") from exc
        finally:
            await response.aclose()

    async def _send_bytes_body(self, head: bytes, body: bytes) -> int:
        if len(body) <= JOIN_LIMIT:
            payload = head
            if body:
                payload += self._send_event(h11.Data(data=body))
            await self._send(payload + self._send_event(END_OF_MESSAGE))
        else:
            await self._send(head)
            await self._send_data(body)
            await self._send(self._send_event(END_OF_MESSAGE))
        return len(body)

    async def _send_file_body(self, response: FileResponse, sender: SocketSender) -> int:
        """Send a file response with ``sendfile``, h11 framing the body (see sendfile.py)."""
        sent = 0
        for part in response.parts:
            if isinstance(part, bytes):
                await self._send_data(part)
                sent += len(part)
                continue
            offset, length = part
            # h11 only counts the Data event's length (for Content-Length framing) and hands
            # back the object; sendfile then moves the bytes without copying them through us.
            blank = cast(bytes, _Blank(length))
            pieces = self._conn.send_with_data_passthrough(h11.Data(data=blank))
            assert pieces is not None
            for piece in pieces:
                if isinstance(piece, _Blank):
                    await self._sendfile(sender, response.file, offset, length)
                else:
                    await self._send(piece)
            sent += length
        return sent

    def _send_event(self, event: h11.Event) -> bytes:
        data = self._conn.send(event)
        assert data is not None
        return data

    async def _send_data(self, data: bytes) -> None:
        """Send one piece of body, framed by h11 without copying *data* into a new buffer."""
        pieces = self._conn.send_with_data_passthrough(h11.Data(data=data))
        assert pieces is not None
        for piece in pieces:
            await self._send(piece)

    async def _send(self, data: bytes | memoryview) -> None:
        """Write *data* within ``write_timeout``."""
        if self._fd is not None:
            # Fast path: a write the socket buffer can take whole needs no scheduling.
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise ClientDisconnected(str(exc)) from exc
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        self._begin_wait("write", self._config.write_timeout)
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ClientDisconnected(str(exc)) from exc
        self._end_wait()

    async def _sendfile(
        self, sender: SocketSender, file: BinaryIO, offset: int, length: int
    ) -> None:
        """Send part of *file* with ``sendfile``; ``write_timeout`` bounds each stall."""
        timeout = self._config.write_timeout
        self._begin_wait("write", timeout)
        try:
            async for _ in sender.sendfile(file, offset, length):
                # Progress was made: the client is reading, so restart the write timeout.
                if timeout is not None:
                    self._timeout_scope.deadline = trio.current_time() + timeout
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ClientDisconnected(str(exc)) from exc
        self._end_wait()

    def _peer(self) -> str:
        return f"{self._client[0]}:{self._client[1]}" if self._client else "client"


def _describe(error: h11.RemoteProtocolError) -> str:
    """h11's message without the raw bytes it quotes (those go to the log, not the client)."""
    return re.split(r":? (?:bytearray\(|b['\"])", str(error), maxsplit=1)[0]


class _Blank:
    """A stand-in body of *length* bytes that h11 frames but never reads (for sendfile)."""

    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length
