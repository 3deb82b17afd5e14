"""One HTTP/1.1 connection: read a request, serve it, finish its body, next.

:class:`HTTPConnection` joins the pieces: a :mod:`~trio_http.transport` carries the bytes, h11
parses and frames, :mod:`~trio_http.protocol.rules` decides what to accept and when to close,
a :class:`~trio_http.http11.body.RequestBody` reads the body as the handler asks, the
:class:`~trio_http.http11.finalizer.ResponseFinalizer` completes every response and the
:class:`~trio_http.http11.writer.ResponseWriter` sends it.  On failure: the client goes away
(:class:`ClientDisconnected`): abort, log ``499``; unparseable input: its ``4xx``, close; the
handler raises :class:`HTTPError`: its response, anything else ``500``, logged; a response
that cannot be completed (:class:`ResponseAborted`): logged, abort; the deadline fires: nothing
(idle), ``408`` (head or body), abort (write).
"""

from __future__ import annotations

import logging
import time
from typing import cast

import h11
import trio

from ..accesslog import AccessLogger
from ..config import ServerConfig
from ..errors import ClientDisconnected, HTTPError
from ..headers import HeaderInput, Headers
from ..protocol.rules import must_close
from ..request import Handler, Request
from ..response import BaseResponse, Upgrade, error_response
from ..transport import transport_for
from .body import RequestBody
from .exchange import Exchange, ExchangeApp
from .finalizer import finalizer_for
from .head import (
    EMPTY_LINE,
    INCOMPLETE,
    parse_head,
    peer_name,
    read_head,
    restart_after_empty_lines,
    start_request,
)
from .registry import UNREGISTERED, Registry
from .upgrade import UpgradedStream, hand_over, switch
from .writer import ResponseAborted, ResponseWriter

__all__ = ["HTTPConnection"]

log = logging.getLogger("trio_http.error")


class HTTPConnection:
    """Serve HTTP/1.1 requests from *stream* with *handler* until either side closes.

    :meth:`run` returns when the connection is done; it closes *stream* itself and does not
    raise for anything the client does.  Cancelling it aborts the connection.  With
    *refuse_with*, every request is answered with that error instead of the handler (the
    server's ``503`` when over ``limit_concurrency``).
    """

    # Slots: an idle keep-alive connection is mostly this object and its task, and servers
    # hold thousands of them (bench idle-conns scenario).
    __slots__ = (
        "_access_logger",
        "_client",
        "_client_close",
        "_close_requested",
        "_config",
        "_conn",
        "_exchange_app",
        "_finalizer",
        "_handler",
        "_head_was_read",
        "_refuse_with",
        "_registry",
        "_requests_served",
        "_timed_out",
        "_transport",
        "_upgraded",
        "_writer",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        handler: Handler | ExchangeApp,
        config: ServerConfig,
        *,
        client: tuple[str, int] | None = None,
        registry: Registry | None = None,
        access_logger: AccessLogger | None = None,
        refuse_with: HTTPError | None = None,
    ) -> None:
        self._transport = transport_for(
            stream, write_timeout=config.write_timeout, linger_timeout=config.linger_timeout
        )
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_size)
        self._writer = ResponseWriter(self._conn, self._transport)
        # An application that writes its responses as it goes (ASGI), or a Handler.
        self._exchange_app = handler if hasattr(handler, "serve_exchange") else None
        self._handler = cast(Handler, handler)
        self._config = config
        self._finalizer = finalizer_for(config)
        self._client = client
        self._registry: Registry = UNREGISTERED if registry is None else registry
        self._access_logger = access_logger
        self._refuse_with = refuse_with
        self._requests_served = 0
        self._head_was_read = False  # the last head came from a read (little else buffered)
        #: Close after the current response (an error demanded it, or a drain).
        self._close_requested = False
        #: The current request's client asked to close (Connection: close, HTTP/1.0).
        self._client_close = False
        #: The stream handed over after a 101 (the connection closes after that exchange).
        self._upgraded: UpgradedStream | None = None
        #: The request whose body timed out (and when it started), for the 408's log line.
        self._timed_out: tuple[Request | None, float] = (None, 0.0)

    # ---------------------------------------------------------------- the loop

    async def run(self) -> None:
        """Serve requests until the connection closes; always closes the transport."""
        self._registry.add(self)
        deadline = self._transport.deadline
        graceful = False
        try:
            with deadline.scope:
                while True:
                    if not await self._exchange(await self._next_request()):  # (see the del)
                        break
                graceful = True  # left the loop, not by a fired deadline
            if deadline.fired:
                graceful = await self._on_timeout()
        except (ClientDisconnected, ResponseAborted):
            graceful = False
        except Exception:  # a bug, or a server fault: this connection is lost, not the server
            log.exception("%s: connection failed", self._peer())
            graceful = False
        finally:
            self._registry.discard(self)
            await self._transport.close(linger=graceful and not self._client_is_done())

    async def _exchange(self, event: h11.Request | HTTPError | None) -> bool:
        """Answer one request (``None``: none came) and log it; returns whether to go on."""
        if event is None:
            return False
        started = time.perf_counter()
        request: Request | None = None
        status, sent = 500, 0
        try:
            if isinstance(event, HTTPError):  # the request could not be parsed
                status, sent = await self._respond(None, None, self._error(event))
                return False
            request, body, refusal = self._start_request(event)
            del event  # not kept while the request is served: a WebSocket's life (nor by run())
            if refusal is not None:
                status, sent = await self._respond(request, body, self._error(refusal))
            elif self._exchange_app is not None:
                status, sent = await self._run_exchange(self._exchange_app, request, body)
            else:
                response = await self._call_handler(request)
                status, sent = await self._respond(request, body, response)
        except ClientDisconnected:
            status = 499  # nginx's "client closed request", familiar to operators
            raise
        except ResponseAborted as exc:
            status, sent = exc.status, exc.sent
            raise
        finally:
            deadline = self._transport.deadline
            if deadline.waiting_for in ("head", "body") and deadline.scope.cancel_called:
                self._timed_out = (request, started)  # _on_timeout answers 408 and logs it
            elif self._access_logger is not None:
                self._log_access(request, status, sent, started)
        conn = self._conn
        keep_going = (
            self._upgraded is None
            and conn.our_state is not h11.MUST_CLOSE
            and (conn.their_state is h11.DONE or await body.drain(self._config.max_drain_size))
        )
        body.close()  # a handler that kept the request must not read the next one's body
        if keep_going:
            conn.start_next_cycle()
        return keep_going

    @property
    def refusing(self) -> bool:
        """Whether this connection only answers with an error (the server is overloaded)."""
        return self._refuse_with is not None

    def close_if_idle(self) -> None:
        """Close now if waiting for the next request; else close after the current one."""
        self._close_requested = True
        if self._transport.deadline.waiting_for == "idle":
            self._transport.deadline.cancel()
        elif self._upgraded is not None:
            self._upgraded.go_away()  # the protocol says goodbye its own way

    # ---------------------------------------------------------------- reading

    async def _next_request(self) -> h11.Request | HTTPError | None:
        """The next request head, or ``None`` when the connection should end quietly."""
        conn = self._conn
        if self._head_was_read and conn.trailing_data == (b"", False):
            idle = True  # the usual case, known without an h11 parse attempt (which costs more)
        else:
            event = parse_head(conn, self._client)
            if event is EMPTY_LINE:  # before a request already buffered: ignore it
                conn = self._conn = restart_after_empty_lines(conn, self._config.max_header_size)
                self._writer = ResponseWriter(conn, self._transport)
                event = parse_head(conn, self._client)
            if event is not INCOMPLETE and event is not EMPTY_LINE:
                # Already buffered (pipelining): nothing has yielded to other tasks, so do it
                # here, once a request, or such a client could starve the others.
                self._head_was_read = False
                await trio.lowlevel.checkpoint()
                return event
            idle = not conn.trailing_data[0]  # nothing of the next request yet
        if idle and (self._close_requested or self._registry.draining):
            return None
        self._head_was_read = True
        config = self._config
        idle_timeout = config.keep_alive_timeout if self._requests_served else config.header_timeout
        return await read_head(
            conn,
            self._transport,
            idle=idle,
            idle_timeout=idle_timeout,
            header_timeout=config.header_timeout,
            client=self._client,
        )

    # ---------------------------------------------------------------- serving

    def _start_request(self, event: h11.Request) -> tuple[Request, RequestBody, HTTPError | None]:
        """Check the request and build it; returns it, its body, and the error to answer
        instead of calling the handler, if any."""
        self._requests_served += 1
        request, body, facts = start_request(
            event, self._conn, self._transport, self._config, client=self._client, upgrader=self
        )
        refusal = self._refuse_with
        if isinstance(facts, HTTPError):
            refusal = facts
            log.info("%s: refused %s %s: %s", self._peer(), request.method, request.target, facts)
            self._client_close = event.http_version != b"1.1"
        else:
            self._client_close = facts.client_close
        return request, body, refusal

    async def _run_exchange(
        self, app: ExchangeApp, request: Request, body: RequestBody
    ) -> tuple[int, int]:
        """Let *app* write its response through an :class:`Exchange`; ``500`` if it sent
        nothing.  Returns the status and body bytes sent."""

        exchange = Exchange(request, body, self._writer, self._transport, self._finalize)
        if await exchange.run(app, self._client, switched=lambda: self._upgraded is not None):
            return (101, 0) if self._upgraded is not None else (exchange.status, exchange.sent)
        self._close_requested = True
        response = error_response(500, "the server failed to handle this request")
        return await self._respond(request, body, response)

    async def _call_handler(self, request: Request) -> BaseResponse:
        """The handler's response, or the error response for what it raised."""
        try:
            return await self._handler(request)
        except HTTPError as exc:
            return self._error(exc)
        except ClientDisconnected:
            raise
        except Exception:
            log.exception(
                "%s: handler failed for %s %s", self._peer(), request.method, request.target
            )
            self._close_requested = True
            return error_response(500, "the server failed to handle this request")

    def _error(self, error: HTTPError) -> BaseResponse:
        if error.close:
            self._close_requested = True
        return error_response(error.status, error.detail, error.headers)

    # ---------------------------------------------------------------- responding

    async def _respond(
        self, request: Request | None, body: RequestBody | None, response: BaseResponse
    ) -> tuple[int, int]:
        """Finalize and send *response* (or switch protocols); returns the status and body
        bytes sent.  A response h11 cannot frame (a handler's invalid header value) is
        replaced by ``500``.  Raises :class:`ResponseAborted` if the body fails."""
        if self._upgraded is not None:  # the handler switched protocols (Request.upgrade)
            await response.aclose()
            return 101, 0
        if isinstance(response, Upgrade):
            return await self._switch_protocols(request, response), 0
        try:
            try:
                last = self._is_last(request, body)
                response, head = await self._finalizer.finalize(request, response, last=last)
            except h11.LocalProtocolError as exc:
                await response.aclose()
                log.error("%s: handler returned an invalid response: %s", self._peer(), exc)
                self._close_requested = True
                response = error_response(500, "the handler returned an invalid response")
                response, head = await self._finalizer.finalize(request, response, last=True)
            head_only = request is not None and request.method == "HEAD"
            return response.status, await self._writer.write(head, response, head_only=head_only)
        except ResponseAborted as exc:
            log.error("%s: response aborted: %s", self._peer(), exc, exc_info=exc.__cause__)
            raise
        finally:
            await response.aclose()

    def _log_access(self, request: Request | None, status: int, sent: int, started: float) -> None:
        if self._access_logger is not None:
            duration = time.perf_counter() - started
            client = self._client if request is None else request.client  # proxy headers
            self._access_logger.log(request, status, sent, duration, client)

    async def _finalize(
        self, request: Request, body: RequestBody, response: BaseResponse
    ) -> tuple[BaseResponse, h11.Response]:
        """An :class:`Exchange`'s response and its head (whether it is the last decided now)."""
        last = self._is_last(request, body)
        return await self._finalizer.finalize(request, response, last=last)

    def _is_last(self, request: Request | None, body: RequestBody | None) -> bool:
        """Whether the response being sent is the connection's last."""
        config = self._config
        return (
            request is None
            or body is None
            or must_close(
                close_requested=self._close_requested,
                client_close=self._client_close,
                draining=self._registry.draining,
                requests_served=self._requests_served,
                max_requests=config.max_requests_per_connection,
                body=body.unread(),
                max_drain_size=config.max_drain_size,
            )
        )

    async def switch_protocols(
        self, request: Request, headers: HeaderInput | Headers | None
    ) -> UpgradedStream:
        """:meth:`Request.upgrade <trio_http.Request.upgrade>`: send ``101`` with *headers*;
        returns the stream, with h11's unread bytes in front.  The connection closes after the
        handler returns.  Raises ``RuntimeError`` if the request cannot switch protocols."""
        if self._upgraded is not None:
            raise RuntimeError("the connection has already switched protocols")
        head = self._finalizer.switching_protocols(Headers(headers))
        self._upgraded = await switch(self._conn, self._writer, self._transport, request, head)
        if self._registry.draining:  # the drain came before the switch: tell the protocol now
            self._upgraded.go_away()
        return self._upgraded

    async def _switch_protocols(self, request: Request | None, upgrade: Upgrade) -> int:
        """Answer an :class:`Upgrade`: switch, then run its handler on the stream."""
        try:
            if request is None:
                raise RuntimeError("no request to upgrade")
            stream = await self.switch_protocols(request, upgrade.headers)
        except RuntimeError as exc:
            log.error("%s: an Upgrade that cannot be honoured: %s", self._peer(), exc)
            self._close_requested = True
            status, _ = await self._respond(request, None, error_response(500, "cannot upgrade"))
            return status
        await hand_over(upgrade, stream, self._peer())
        return 101

    # ---------------------------------------------------------------- ending

    async def _on_timeout(self) -> bool:
        """Answer a fired deadline; returns whether the close may linger."""
        waiting_for = self._transport.deadline.waiting_for
        if waiting_for == "idle":
            # Nothing is in flight, so no need to linger -- unless a request arrived just as
            # the timeout fired: closing on its unread bytes would send a reset.
            return self._transport.input_pending()
        can_respond = self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE)
        if waiting_for in ("head", "body") and can_respond:
            what = "request head" if waiting_for == "head" else "request body"
            log.info("%s: timed out waiting for the %s", self._peer(), what)
            request, started = self._timed_out
            with trio.move_on_after(self._config.linger_timeout):
                error = HTTPError(408, f"timed out waiting for the {what}", close=True)
                status, sent = await self._respond(None, None, self._error(error))
                self._log_access(request, status, sent, started or time.perf_counter())
            return True
        log.info("%s: timed out waiting for the client to read the response", self._peer())
        return False

    def _client_is_done(self) -> bool:
        """The client said it sends nothing more, and all it sent was read (so closing at once
        cannot reset a response: no lingering needed, RFC 9112 §9.6)."""
        conn = self._conn
        if self._upgraded is not None:
            return True
        done = self._client_close and conn.their_state in (h11.DONE, h11.MUST_CLOSE)
        # Unread input (a stray CRLF after a body, say) would make closing send a reset.
        return done and not conn.trailing_data[0] and not self._transport.input_pending()

    def _peer(self) -> str:
        return peer_name(self._client)
