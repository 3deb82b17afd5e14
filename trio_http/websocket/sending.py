"""Sending frames whole: one at a time (the turn, handed to waiting senders in order), and
answers the protocol owes shielded from the caller's cancellation."""

from __future__ import annotations

import trio

__all__ = ["SendTurn", "answering"]


class SendTurn:
    """Whose turn it is to write a frame.  Free, :meth:`take` costs no scheduler round (a
    ``trio.Lock`` cost one, or its bookkeeping, per message: bench/ab_cpu.py); taken, the
    caller waits, and :meth:`release` hands the turn straight to the first waiter (FIFO)."""

    __slots__ = ("_waiting", "busy")

    def __init__(self) -> None:
        self.busy = False
        self._waiting: trio.lowlevel.ParkingLot | None = None  # made only when someone waits

    async def take(self) -> None:
        """Wait for the turn (a checkpoint either way: cancelled, the turn is not taken)."""
        if self.busy:
            if self._waiting is None:
                self._waiting = trio.lowlevel.ParkingLot()
            await self._waiting.park()  # woken with the turn
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
            self.busy = True

    def release(self) -> None:
        if self._waiting:
            self._waiting.unpark()
        else:
            self.busy = False


def answering(seconds: float) -> trio.CancelScope:
    """A scope for an answer the protocol owes (a pong, a close): the caller's cancellation
    does not reach it (a frame cut short would break the stream), *seconds* bound it."""
    return trio.CancelScope(deadline=trio.current_time() + seconds, shield=True)
