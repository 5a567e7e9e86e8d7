"""The coordinator's clock: monotonic deadlines, wall-clock timestamps, and timers.

Group timers (session expiry, rebalance timeouts, the initial rebalance delay)
are plain callbacks scheduled on the event loop: they run on the loop thread,
never concurrently with a request handler, so the group state they touch needs
no lock. `LoopScheduler` is the real one; `ManualScheduler` is the test double
(time moves only when a test calls `advance`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Callable, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """What the coordinator needs from time. Callbacks run on the event loop."""

    def monotonic_ms(self) -> int: ...

    def wall_ms(self) -> int: ...

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> TimerHandle: ...


class LoopScheduler:
    """Timers on the running asyncio loop (`loop.call_later`)."""

    def monotonic_ms(self) -> int:
        return int(time.monotonic() * 1000)

    def wall_ms(self) -> int:
        return int(time.time() * 1000)

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(delay_ms, 0) / 1000, callback)


class _ManualHandle:
    __slots__ = ("deadline", "seq", "callback", "cancelled")

    def __init__(self, deadline: int, seq: int, callback: Callable[[], None]):
        self.deadline = deadline
        self.seq = seq
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: "_ManualHandle") -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)


class ManualScheduler:
    """A fake clock for tests: timers fire, in deadline order, inside `advance`."""

    def __init__(self, start_wall_ms: int = 1_700_000_000_000):
        self.now = 0
        self.wall_offset = start_wall_ms
        self._timers: list[_ManualHandle] = []
        self._seq = itertools.count()

    def monotonic_ms(self) -> int:
        return self.now

    def wall_ms(self) -> int:
        return self.wall_offset + self.now

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> TimerHandle:
        handle = _ManualHandle(self.now + max(delay_ms, 0), next(self._seq), callback)
        heapq.heappush(self._timers, handle)
        return handle

    def advance(self, ms: int) -> None:
        """Move time forward by `ms`, firing every timer that falls due on the way
        (a timer scheduled by a callback fires too if it is due in the window)."""
        target = self.now + ms
        while self._timers and self._timers[0].deadline <= target:
            handle = heapq.heappop(self._timers)
            if handle.cancelled:
                continue
            self.now = max(self.now, handle.deadline)
            handle.callback()
        self.now = target

    def pending(self) -> int:
        return sum(1 for h in self._timers if not h.cancelled)
