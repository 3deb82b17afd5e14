"""One timer task for every WebSocket's keep-alive, instead of a sleeping task per WebSocket.

A WebSocket asks for a call at a time (:func:`call_at`); the timer, a trio system task started
on first use in each ``trio.run``, makes the call then.  The call must be quick and must not
raise (a WebSocket starts its ping task in its own nursery).  An idle WebSocket then costs a
heap entry here rather than a task, a cancel scope and their frames (2.5 KiB each: bench
ws-idle).  A WebSocket is held weakly: one that is gone is skipped.
"""

from __future__ import annotations

import heapq
import itertools
import math
import weakref
from collections.abc import Callable

import trio

__all__ = ["call_at"]


class _Timer:
    __slots__ = ("_due", "_order", "_sleep")

    def __init__(self) -> None:
        # (when, order, the callback's owner, its method name): order keeps equal times FIFO.
        self._due: list[tuple[float, int, weakref.ref[object], str]] = []
        self._order = itertools.count()
        self._sleep = trio.CancelScope()

    def call_at(self, when: float, owner: object, method: str) -> None:
        heapq.heappush(self._due, (when, next(self._order), weakref.ref(owner), method))
        if when < self._sleep.deadline:
            self._sleep.deadline = when  # wake earlier than planned

    async def run(self) -> None:
        while True:
            now = trio.current_time()
            while self._due and self._due[0][0] <= now:
                _, _, ref, method = heapq.heappop(self._due)
                owner = ref()
                if owner is not None:
                    callback: Callable[[], object] = getattr(owner, method)
                    callback()
            with trio.CancelScope(deadline=self._due[0][0] if self._due else math.inf) as sleep:
                self._sleep = sleep
                await trio.sleep_forever()


_timer: trio.lowlevel.RunVar[_Timer] = trio.lowlevel.RunVar("trio_http.websocket.timer")


def call_at(when: float, owner: object, method: str) -> None:
    """At trio time *when*, call ``owner.method()`` (if *owner* still exists).  The method must
    not raise: it runs in a system task, where an exception ends the whole ``trio.run``."""
    try:
        timer = _timer.get()
    except LookupError:
        timer = _Timer()
        _timer.set(timer)
        trio.lowlevel.spawn_system_task(timer.run, name="trio_http websocket timer")
    timer.call_at(when, owner, method)
