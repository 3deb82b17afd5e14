"""Lifespan: startup/shutdown events, the auto/on/off modes, failures, timeouts, no leaked task.

Every test runs the lifespan in its own nursery: the nursery closing at the end of the test is
the proof that the application's task has ended.  Time-outs use the autojump clock, so nothing
here sleeps for real.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from trio_http.asgi.lifespan import Lifespan, LifespanFailed, LifespanMode
from trio_http.asgi.types import ASGIApp, Receive, Scope, Send

LOGGER = "trio_http.error"


@pytest.fixture(autouse=True)
def capture_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


class Recorder:
    """A well-behaved lifespan application that records what it sees."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.received: list[str] = []
        self.finished = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        try:
            message = await receive()
            self.received.append(message["type"])
            scope["state"]["pool"] = "connected"
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            self.received.append(message["type"])
            scope["state"]["pool"] = "closed"
            await send({"type": "lifespan.shutdown.complete"})
        finally:
            self.finished = True


async def test_startup_and_shutdown_complete(caplog: pytest.LogCaptureFixture) -> None:
    app = Recorder()
    state: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "auto", state)
        await lifespan.startup(nursery)
        assert app.received == ["lifespan.startup"]
        assert state == {"pool": "connected"}
        (scope,) = app.scopes
        assert scope["type"] == "lifespan"
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.0"}
        assert scope["state"] is state  # shared: what startup stores reaches the HTTP side
        await lifespan.shutdown()
        assert app.finished
        assert app.received == ["lifespan.startup", "lifespan.shutdown"]
        assert state == {"pool": "closed"}
        await lifespan.shutdown()  # a second shutdown does nothing
    info = records(caplog, logging.INFO)
    assert info == ["Application startup complete.", "Application shutdown complete."]
    assert not records(caplog, logging.ERROR)


async def test_mode_off_never_calls_the_application() -> None:
    app = Recorder()
    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "off", {})
        await lifespan.startup(nursery)
        await lifespan.shutdown()
    assert app.scopes == []


async def test_shutdown_before_startup_does_nothing() -> None:
    app = Recorder()
    await Lifespan(app, "on", {}).shutdown()
    assert app.scopes == []


async def test_startup_twice_is_a_programming_error() -> None:
    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(Recorder(), "on", {})
        await lifespan.startup(nursery)
        with pytest.raises(RuntimeError, match="only be called once"):
            await lifespan.startup(nursery)
        await lifespan.shutdown()


def test_invalid_mode() -> None:
    with pytest.raises(ValueError, match="lifespan mode must be"):
        Lifespan(Recorder(), "maybe", {})  # type: ignore[arg-type]


async def fails_startup(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
    await receive()  # a compliant application may wait here; it is cancelled


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_startup_failed_is_fatal_in_auto_and_on(mode: LifespanMode) -> None:
    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(fails_startup, mode, {})
        with pytest.raises(LifespanFailed) as info:
            await lifespan.startup(nursery)
        await lifespan.shutdown()  # nothing to shut down
    assert str(info.value) == "application startup failed: database unreachable"


async def test_startup_failed_with_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    # Starlette sends traceback.format_exc() as the message, then re-raises.
    trace = 'Traceback (most recent call last):\n  File "app.py", line 3\nOSError: refused\n'

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": trace})
        raise OSError("refused")

    async with trio.open_nursery() as nursery:
        with pytest.raises(LifespanFailed) as info:
            await Lifespan(app, "on", {}).startup(nursery)
    assert str(info.value) == "application startup failed: OSError: refused"
    assert records(caplog, logging.ERROR) == [f"Application startup failed:\n{trace.strip()}"]


async def test_startup_failed_without_a_message() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed"})

    async with trio.open_nursery() as nursery:
        with pytest.raises(LifespanFailed, match=r"^application startup failed: no reason given$"):
            await Lifespan(app, "auto", {}).startup(nursery)


# The common way to refuse other protocols.  Compiled from a string because pytest rewrites the
# asserts of test modules, which would give the AssertionError a message a real one lacks.
_namespace: dict[str, Any] = {}
exec(
    compile(
        "async def http_only(scope, receive, send):\n    assert scope['type'] == 'http'\n",
        "app.py",
        "exec",
    ),
    _namespace,
)
http_only: ASGIApp = _namespace["http_only"]


async def raises_runtime_error(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("no lifespan here")


async def returns_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    pass


async def returns_after_receiving(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()


async def raises_after_receiving(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    message["body"]  # an HTTP-only application reading a request body


async def sends_http_response(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def sends_http_response_and_hangs(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        await send({"type": "http.response.start", "status": 200, "headers": []})
    except RuntimeError:
        await trio.sleep_forever()  # it is cancelled


UNSUPPORTED = [
    (http_only, "the application raised AssertionError before receiving lifespan.startup"),
    (
        raises_runtime_error,
        "the application raised RuntimeError: no lifespan here before receiving lifespan.startup",
    ),
    (returns_at_once, "the application returned without answering lifespan.startup"),
    (returns_after_receiving, "the application returned without answering lifespan.startup"),
    # The spec: an exception raised "with a lifespan.startup message" must be tolerated too.
    (
        raises_after_receiving,
        "the application raised KeyError: 'body' after receiving lifespan.startup",
    ),
    (sends_http_response, "the application sent 'http.response.start'"),
    (sends_http_response_and_hangs, "the application sent 'http.response.start'"),
]


@pytest.mark.parametrize(("app", "reason"), UNSUPPORTED)
async def test_auto_tolerates_applications_without_lifespan(
    caplog: pytest.LogCaptureFixture, app: ASGIApp, reason: str
) -> None:
    state: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "auto", state)
        await lifespan.startup(nursery)
        await lifespan.shutdown()
    assert records(caplog, logging.INFO) == [
        f"ASGI 'lifespan' protocol appears unsupported ({reason})."
    ]
    assert not records(caplog, logging.WARNING)
    assert not records(caplog, logging.ERROR)


@pytest.mark.parametrize(("app", "reason"), UNSUPPORTED)
async def test_on_makes_the_same_applications_fail(app: ASGIApp, reason: str) -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(LifespanFailed) as info:
            await Lifespan(app, "on", {}).startup(nursery)
    assert str(info.value) == f"application startup failed: {reason}"


async def test_on_logs_the_traceback_and_chains_the_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(LifespanFailed) as info:
            await Lifespan(http_only, "on", {}).startup(nursery)
    assert isinstance(info.value.__cause__, AssertionError)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "Exception in ASGI 'lifespan' protocol"
    assert record.exc_info is not None and record.exc_info[0] is AssertionError


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_a_wrong_lifespan_message_fails_even_in_auto(mode: LifespanMode) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.completed"})  # sic

    async with trio.open_nursery() as nursery:
        with pytest.raises(LifespanFailed) as info:
            await Lifespan(app, mode, {}).startup(nursery)
    assert str(info.value) == (
        "application startup failed: the application sent 'lifespan.startup.completed'"
    )


async def test_shutdown_failed_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "could not flush the cache"})

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        await lifespan.startup(nursery)
        await lifespan.shutdown()
    assert records(caplog, logging.ERROR) == [
        "Application shutdown failed: could not flush the cache"
    ]


async def test_exception_during_shutdown_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise OSError("disk full")

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        await lifespan.startup(nursery)
        await lifespan.shutdown()
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.getMessage() == "Exception in ASGI 'lifespan' protocol"
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is OSError


async def test_unexpected_message_during_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        try:
            await send({"type": "lifespan.startup.complete"})
        except RuntimeError as exc:
            raised.append(exc)
            raise

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        await lifespan.startup(nursery)
        await lifespan.shutdown()
    assert records(caplog, logging.ERROR) == [
        "ASGI 'lifespan' protocol error during shutdown:"
        " the application sent 'lifespan.startup.complete'."
    ]
    assert len(raised) == 1  # send() raised into the application, as the spec asks


async def test_shutdown_that_hangs_is_cancelled_after_the_timeout(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    cancelled = trio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        await lifespan.startup(nursery)
        start = trio.current_time()
        await lifespan.shutdown(timeout=5)
        assert trio.current_time() - start == pytest.approx(5)
        assert cancelled.is_set()  # the task is done when shutdown returns
    assert records(caplog, logging.ERROR) == [
        "The ASGI application did not answer lifespan.shutdown within 5 seconds; cancelling it."
    ]
    assert not records(caplog, logging.WARNING)


async def test_application_lingering_after_shutdown_complete_is_cancelled(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        await lifespan.startup(nursery)
        await lifespan.shutdown(timeout=2)
    assert records(caplog, logging.WARNING) == [
        "The ASGI application sent lifespan.shutdown.complete but was still running 2 seconds"
        " after lifespan.shutdown; cancelling it."
    ]
    assert records(caplog, logging.INFO)[-1] == "Application shutdown complete."


async def test_cancelling_startup_cancels_the_application(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled = trio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await trio.sleep_forever()  # a startup that never ends
        finally:
            cancelled.set()

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        with pytest.raises(trio.TooSlowError):
            with trio.fail_after(10):
                await lifespan.startup(nursery)
        await lifespan.shutdown()  # nothing to do: startup never completed
    assert cancelled.is_set()


async def test_exception_after_startup_is_logged_when_it_happens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        raise ValueError("background failure")

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        await lifespan.startup(nursery)
        await trio.testing.wait_all_tasks_blocked()
        assert records(caplog, logging.ERROR) == ["Exception in ASGI 'lifespan' protocol"]
        await lifespan.shutdown()  # the task is gone: nothing to send
    assert records(caplog, logging.ERROR) == ["Exception in ASGI 'lifespan' protocol"]
    assert not records(caplog, logging.WARNING)


async def test_application_returning_after_startup(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        await lifespan.startup(nursery)
        await trio.testing.wait_all_tasks_blocked()
        await lifespan.shutdown()
    assert records(caplog, logging.WARNING) == [
        "The ASGI 'lifespan' task returned before shutdown was sent."
    ]


async def test_application_returning_without_answering_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        await lifespan.startup(nursery)
        await lifespan.shutdown()
    assert records(caplog, logging.WARNING) == [
        "The ASGI application returned without answering lifespan.shutdown."
    ]


async def test_startup_complete_without_receiving_first() -> None:
    # Lenient, as uvicorn is: the answer matters, not whether the question was read.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        await lifespan.startup(nursery)
        await lifespan.shutdown()


async def test_second_startup_complete_is_a_protocol_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.startup.complete"})  # raises; the application ends

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        await lifespan.startup(nursery)
        await trio.testing.wait_all_tasks_blocked()
        await lifespan.shutdown()
    assert records(caplog, logging.ERROR) == [
        "ASGI 'lifespan' protocol error after startup:"
        " the application sent 'lifespan.startup.complete'."
    ]
    assert not records(caplog, logging.WARNING)


async def test_cancelling_shutdown_cancels_the_application(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled = trio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async with trio.open_nursery() as nursery:
        lifespan = Lifespan(app, "on", {})
        await lifespan.startup(nursery)
        start = trio.current_time()
        with trio.move_on_after(1):  # shorter than the shutdown timeout: a second Ctrl+C
            await lifespan.shutdown(timeout=30)
        assert trio.current_time() - start == pytest.approx(1)
    assert cancelled.is_set()
