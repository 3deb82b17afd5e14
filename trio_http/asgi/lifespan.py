"""The ASGI lifespan protocol: tell the application the server is starting and stopping.

The application is called once with a ``{"type": "lifespan"}`` scope, in a task of the server's
nursery, and lives until shutdown: it receives ``lifespan.startup`` and answers
``lifespan.startup.complete`` (or ``.failed``) before the server accepts connections, then
receives ``lifespan.shutdown`` and answers ``lifespan.shutdown.complete`` (or ``.failed``) after
the last connection has closed.  The scope's ``state`` dict is the one the caller passed in:
what the application puts there during startup is what the HTTP side copies into each request
scope.

Modes, as in uvicorn: ``"on"`` makes any startup failure fatal; ``"auto"`` runs applications
that do not speak the protocol (they raise, return, or send an HTTP message when called with a
lifespan scope - the spec says the server must then carry on without lifespan events);
``"off"`` never calls the application with a lifespan scope at all.  ``lifespan.startup.failed``
is fatal in both ``"on"`` and ``"auto"``: the application has said it cannot serve.

Errors are logged to ``trio_http.error``, except that :meth:`Lifespan.startup` reports a failed
startup by raising :class:`LifespanFailed`, whose one-line message says what happened.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import trio

from trio_http.asgi.types import ASGIApp, Message

__all__ = ["Lifespan", "LifespanFailed", "LifespanMode"]

log = logging.getLogger("trio_http.error")

LifespanMode = Literal["auto", "on", "off"]
_Phase = Literal["idle", "starting", "running", "stopping", "done"]

STARTUP_COMPLETE = "lifespan.startup.complete"
STARTUP_FAILED = "lifespan.startup.failed"
SHUTDOWN_COMPLETE = "lifespan.shutdown.complete"
SHUTDOWN_FAILED = "lifespan.shutdown.failed"
#: What the application may send in each phase; anything else is a protocol error.
_EXPECTED: dict[_Phase, tuple[str, str]] = {
    "starting": (STARTUP_COMPLETE, STARTUP_FAILED),
    "stopping": (SHUTDOWN_COMPLETE, SHUTDOWN_FAILED),
}
_WHEN: dict[_Phase, str] = {
    "idle": "before startup",
    "starting": "during startup",
    "running": "after startup",
    "stopping": "during shutdown",
    "done": "after the lifespan ended",
}


class LifespanFailed(Exception):
    """The application's startup failed; the server must not serve.  ``str()`` is one line."""


class _UnexpectedMessage(RuntimeError):
    """Raised out of ``send()`` into the application for a message it should not have sent."""


class Lifespan:
    """Runs the lifespan protocol for *app*; see the module docstring.

    Call :meth:`startup` once before serving and :meth:`shutdown` once after.  Neither may be
    called concurrently with the other.
    """

    def __init__(self, app: ASGIApp, mode: LifespanMode, state: dict[str, Any]) -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"lifespan mode must be 'auto', 'on' or 'off', not {mode!r}")
        self.app = app
        self.mode: LifespanMode = mode
        self.state = state
        self._phase: _Phase = "idle"
        # Unbounded, but at most two messages are ever sent (startup, shutdown).
        self._to_app, self._inbox = trio.open_memory_channel[Message](math.inf)
        # Created here and entered by the application's task, so it can be cancelled before
        # that task has even started to run.
        self._cancel_scope = trio.CancelScope()
        #: Set when the current phase is answered: by the application, a protocol error, or
        #: the end of its task.  Replaced when shutdown begins.
        self._answered = trio.Event()
        self._finished = trio.Event()
        self._answer: str | None = None
        self._answer_text = ""
        self._protocol_error: str | None = None
        self._app_error: Exception | None = None
        self._received_startup = False

    async def startup(self, nursery: trio.Nursery) -> None:
        """Start the application in a task of *nursery*; return once it has started up.

        Raises :class:`LifespanFailed` if the application sends ``lifespan.startup.failed``
        or, with mode ``"on"``, if it raises, returns or sends an unexpected message before
        ``lifespan.startup.complete``; with mode ``"auto"`` all of those but a bad
        ``lifespan.*`` message mean "no lifespan support", which is logged at INFO, and
        startup returns.  Whenever startup does not complete, the application's task has been
        cancelled and has ended by the time this returns or raises.

        Does not time out: to bound it, cancel it (``trio.fail_after``); that cancels the
        application's task too.  Raises RuntimeError if called twice.
        """
        if self.mode == "off":
            return
        if self._phase != "idle":
            raise RuntimeError("Lifespan.startup() may only be called once")
        self._phase = "starting"
        nursery.start_soon(self._run, name="ASGI lifespan")
        self._to_app.send_nowait({"type": "lifespan.startup"})
        try:
            await self._answered.wait()
        except BaseException:
            self._cancel_scope.cancel()
            raise
        if self._answer == STARTUP_COMPLETE:
            log.info("Application startup complete.")
            return
        self._phase = "done"
        failure = self._startup_failure()
        self._cancel_scope.cancel()
        await self._finished.wait()
        if failure is not None:
            raise failure

    def _startup_failure(self) -> LifespanFailed | None:
        """What to raise for a startup that did not complete; None for "unsupported"."""
        if self._answer == STARTUP_FAILED:
            text = self._answer_text.strip()
            if "\n" in text:
                # Starlette sends a whole traceback: log it, as the exception carries one line.
                log.error("Application startup failed:\n%s", text)
            summary = text.splitlines()[-1].strip() if text else ""
            return LifespanFailed(f"application startup failed: {summary or 'no reason given'}")
        error = self._app_error
        if self._protocol_error is not None:
            reason = f"the application sent {self._protocol_error}"
            # A bad lifespan.* message comes from an application that speaks the protocol and
            # got it wrong; anything else (typically http.response.start from an HTTP-only
            # application that ignores the scope type) means it does not speak it.
            speaks_lifespan = self._protocol_error.startswith("'lifespan.")
        elif error is not None:
            when = "after" if self._received_startup else "before"
            reason = f"the application raised {_describe(error)} {when} receiving lifespan.startup"
            speaks_lifespan = False
        else:
            reason = "the application returned without answering lifespan.startup"
            speaks_lifespan = False
        if self.mode == "auto" and not speaks_lifespan:
            log.info("ASGI 'lifespan' protocol appears unsupported (%s).", reason)
            if error is not None and not isinstance(error, _UnexpectedMessage):
                log.debug("The exception from the lifespan call:", exc_info=error)
            return None
        if error is not None and not isinstance(error, _UnexpectedMessage):
            log.error("Exception in ASGI 'lifespan' protocol", exc_info=error)
        failure = LifespanFailed(f"application startup failed: {reason}")
        failure.__cause__ = error
        return failure

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer and the application's return.

        ``lifespan.shutdown.failed``, an exception, an unexpected message, or no answer are
        logged as errors, never raised.  If the application has not returned *timeout*
        seconds after the shutdown message, it is cancelled (and that is logged).  When this
        returns, the application's task has ended; if this is cancelled, the task is cancelled
        too.  Does nothing unless :meth:`startup` completed (mode ``"off"``, no lifespan
        support, a failed startup) and after the first call.
        """
        if self._phase != "running":
            return
        if self._finished.is_set():
            self._phase = "done"
            if self._app_error is None:  # an exception was logged when it happened
                log.warning("The ASGI 'lifespan' task returned before shutdown was sent.")
            return
        self._phase = "stopping"
        self._answered = trio.Event()
        self._answer = None
        self._to_app.send_nowait({"type": "lifespan.shutdown"})
        try:
            with trio.move_on_after(timeout):
                await self._answered.wait()
                await self._finished.wait()
            timed_out = not self._finished.is_set()
            if timed_out:
                self._log_shutdown_timeout(timeout)
        finally:
            self._phase = "done"
            self._cancel_scope.cancel()
        await self._finished.wait()
        if self._answer == SHUTDOWN_COMPLETE:
            log.info("Application shutdown complete.")
        elif self._answer == SHUTDOWN_FAILED:
            log.error("Application shutdown failed: %s", self._answer_text or "no reason given")
        elif not timed_out and self._protocol_error is None and self._app_error is None:
            # (A time-out, an unexpected message or an exception has been logged already.)
            log.warning("The ASGI application returned without answering lifespan.shutdown.")

    def _log_shutdown_timeout(self, timeout: float) -> None:
        if self._answer is None:
            log.error(
                "The ASGI application did not answer lifespan.shutdown within %g seconds;"
                " cancelling it.",
                timeout,
            )
        else:
            log.warning(
                "The ASGI application sent %s but was still running %g seconds after"
                " lifespan.shutdown; cancelling it.",
                self._answer,
                timeout,
            )

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            with self._cancel_scope:
                await self.app(scope, self._receive, self._send)
        except Exception as exc:
            self._app_error = exc
            # While starting, startup() decides what an exception means.  Once the phase has
            # been answered, the answer (say, Starlette's shutdown.failed and its traceback,
            # sent before it re-raises) has said it all; an unexpected message was logged.
            unanswered = self._phase == "running" or (
                self._phase == "stopping" and self._answer is None
            )
            if unanswered and not isinstance(exc, _UnexpectedMessage):
                log.error("Exception in ASGI 'lifespan' protocol", exc_info=exc)
        finally:
            self._finished.set()
            self._answered.set()

    async def _receive(self) -> Message:
        message = await self._inbox.receive()
        if message["type"] == "lifespan.startup":
            self._received_startup = True
        return message

    async def _send(self, message: Message) -> None:
        kind = message.get("type") if isinstance(message, Mapping) else None
        if self._answer is None and kind in _EXPECTED.get(self._phase, ()):
            self._answer = kind
            self._answer_text = str(message.get("message") or "")
            if kind == STARTUP_COMPLETE:
                self._phase = "running"
            self._answered.set()
        else:
            self._unexpected(kind)
        await trio.lowlevel.checkpoint()

    def _unexpected(self, kind: object) -> None:
        """Record, log if no one else will, and raise an exception out of send()."""
        what = repr(kind) if isinstance(kind, str) else "a message with no type"
        if self._phase == "starting" and self._answer is None:
            # startup() reports it (raising, or logging "unsupported"); stop waiting for an
            # answer, since the application may catch the error below and never send one.
            self._protocol_error = what
            self._answered.set()
        else:
            log.error(
                "ASGI 'lifespan' protocol error %s: the application sent %s.",
                _WHEN[self._phase],
                what,
            )
            if self._phase == "stopping" and self._answer is None:
                self._protocol_error = what
                self._answered.set()
        raise _UnexpectedMessage(f"unexpected ASGI message in the lifespan protocol: {what}")


def _describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (log lines and LifespanFailed are one line)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
