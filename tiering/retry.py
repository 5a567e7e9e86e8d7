"""Retrying transient object-store failures: exponential backoff with full jitter.

Only `TransientStoreError` is retried; any other error, and the last transient
one, propagates. Every retry is counted (`on_retry`) so metrics and logs show a
struggling bucket.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from remote_index.store import TransientStoreError

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt n (n >= 1): uniform in [0, min(cap, base * 2**n)] ("full jitter")."""

    base_s: float = 0.1
    cap_s: float = 10.0
    attempts: int = 6

    def delay(self, attempt: int, rng: random.Random = random) -> float:
        return rng.uniform(0, min(self.cap_s, self.base_s * (2 ** attempt)))


async def retrying(operation: Callable[[], Awaitable[T]], backoff: Backoff, *,
                   on_retry: Callable[[int, Exception], None] | None = None) -> T:
    """Run `operation`, retrying transient store errors up to `backoff.attempts` times in all."""
    attempt = 0
    while True:
        try:
            return await operation()
        except TransientStoreError as exc:
            attempt += 1
            if attempt >= backoff.attempts:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            await asyncio.sleep(backoff.delay(attempt))
