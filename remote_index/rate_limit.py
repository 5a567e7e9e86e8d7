"""A token bucket: one bytes-per-second limit shared by many tasks (all uploads; all cold reads).

`acquire(n)` returns once `n` bytes may be sent. The bucket may go into debt: a
caller takes its whole request as soon as the balance is not negative, and the
next caller waits until the debt is paid back. So a 4 MiB chunk never has to be
split, the long-run rate is exactly `rate`, and the largest burst is `burst`
bytes (what accumulates while idle) plus one request.

Waiters are served in arrival order (the lock is FIFO). Not thread-safe: all
callers are tasks on one event loop.
"""

from __future__ import annotations

import asyncio
import time

UNLIMITED = (1 << 63) - 1


class TokenBucket:
    def __init__(self, rate_bytes_per_s: int, burst_bytes: int | None = None, clock=time.monotonic):
        self.rate = rate_bytes_per_s
        self.unlimited = rate_bytes_per_s >= UNLIMITED or rate_bytes_per_s <= 0
        # A tenth of a second of credit smooths scheduling jitter without letting
        # an idle period turn into a visible burst over a 10 s window.
        self.burst = burst_bytes if burst_bytes is not None else max(self.rate // 10, 1)
        self._clock = clock
        self._tokens = 0.0
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.throttled_seconds = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._tokens + (now - self._stamp) * self.rate, self.burst)
        self._stamp = now

    async def acquire(self, nbytes: int) -> float:
        """Wait until `nbytes` may go; returns the seconds this caller was throttled."""
        if self.unlimited or nbytes <= 0:
            return 0.0
        waited = 0.0
        async with self._lock:
            self._refill()
            if self._tokens < 0:
                wait = -self._tokens / self.rate
                await asyncio.sleep(wait)
                waited = wait
                self._refill()
            self._tokens -= nbytes
        self.throttled_seconds += waited
        return waited
