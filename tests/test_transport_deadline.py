"""The connection's Deadline: the idle wait timed by the shared idle timer, other waits by the
cancel scope's own deadline (trio_http/transport/base.py)."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from trio_http.transport import transport_for
from trio_http.transport.base import Deadline, _idle_timer


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def run(clock: trio.testing.MockClock, fn: object) -> None:
    trio.run(fn, clock=clock)  # type: ignore[arg-type]


def test_an_idle_wait_times_out_exactly_when_due(clock: trio.testing.MockClock) -> None:
    async def main() -> None:
        deadline = Deadline()
        with deadline.scope:
            deadline.arm("idle", 5.0)
            await trio.sleep_forever()
        assert deadline.fired
        assert trio.current_time() == 5.0
        assert deadline.waiting_for == "idle"  # what _on_timeout answers by

    run(clock, main)


def test_a_disarmed_idle_wait_never_fires(clock: trio.testing.MockClock) -> None:
    async def main() -> None:
        deadline = Deadline()
        with deadline.scope:
            deadline.arm("idle", 5.0)
            await trio.sleep(1)
            deadline.disarm()
            await trio.sleep(100)  # a handler that takes long: not an idle timeout
        assert not deadline.fired
        assert deadline.idle_due == math.inf

    run(clock, main)


def test_idle_again_moves_the_one_entry_on(clock: trio.testing.MockClock) -> None:
    """Going idle once per request adds no entry while one is pending; when the entry comes
    round early, the timer moves it to the time now due."""

    async def main() -> None:
        deadline = Deadline()
        with deadline.scope:
            for _ in range(10):  # ten requests, one second apart
                deadline.arm("idle", 5.0)
                await trio.sleep(1)
                deadline.disarm()
            assert len(_idle_timer()._heap) == 1
            deadline.arm("idle", 5.0)  # idle from t=10: due at 15, not at the entry's 5
            await trio.sleep_forever()
        assert deadline.fired
        assert trio.current_time() == 15.0

    run(clock, main)


def test_a_shorter_idle_timeout_than_the_pending_entry_is_honoured(
    clock: trio.testing.MockClock,
) -> None:
    async def main() -> None:
        deadline = Deadline()
        with deadline.scope:
            deadline.arm("idle", 60.0)  # before the first request (header_timeout)
            await trio.sleep(1)
            deadline.disarm()
            deadline.arm("idle", 2.0)  # keep-alive: earlier than the entry
            await trio.sleep_forever()
        assert trio.current_time() == 3.0

    run(clock, main)


def test_other_waits_use_the_scopes_deadline(clock: trio.testing.MockClock) -> None:
    async def main() -> None:
        deadline = Deadline()
        with deadline.scope:
            deadline.arm("body", 3.0)
            assert deadline.scope.deadline == 3.0
            deadline.disarm()
            assert deadline.scope.deadline == math.inf
            deadline.arm("write", 2.0)
            await trio.sleep_forever()
        assert deadline.fired
        assert trio.current_time() == 2.0
        assert deadline.waiting_for == "write"

    run(clock, main)


def test_closed_connections_do_not_pile_up_in_the_timer(clock: trio.testing.MockClock) -> None:
    async def main() -> None:
        for _ in range(5000):  # a connection per request, each closed before its timeout
            deadline = Deadline()
            deadline.arm("idle", 60.0)
            deadline.retire()  # what its transport's close() does
        assert len(_idle_timer()._heap) <= 1024 + 1
        survivor = Deadline()
        with survivor.scope:
            survivor.arm("idle", 61.0)
            await trio.sleep_forever()
        assert trio.current_time() == 61.0

    run(clock, main)


def test_a_closed_transport_retires_its_idle_entry(clock: trio.testing.MockClock) -> None:
    async def main() -> None:
        left, _right = trio.testing.memory_stream_pair()
        transport = transport_for(left, write_timeout=None, linger_timeout=0)
        with transport.deadline.scope:
            transport.deadline.arm("idle", 5.0)
            await transport.close(linger=False)
        (entry,) = _idle_timer()._heap
        assert entry[2] is transport.deadline
        assert entry[2]._entry != entry[0]  # stale: skipped when due, dropped by a prune

    run(clock, main)
