"""Waiting for a condition in end-to-end tests: poll, and fail naming what was
awaited. The timeout only bounds a hang; it is not an assertion about speed."""

from __future__ import annotations

import time


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1, describe=None):
    """Poll `predicate` until it returns something truthy and return that; fail with
    `what`, the last value and what `describe()` says about the state at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    state = f"; {describe()}" if describe is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r}){state}")
