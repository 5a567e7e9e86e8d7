"""The asyncio event loop the broker runs on: the standard library's, unless the
operator asks for uvloop (`tierbroker serve --event-loop uvloop`, installed with
`pip install 'tierbroker[uvloop]'`).

The broker behaves the same on both: the suite runs the response writer's tests
and an end-to-end round trip on each, and everything else on the default.
Measured here on loopback, they trade speed against
cold-read latency, which is why uvloop is not the default:
- uvloop costs less per request: with confluent-kafka producing 100 KiB records,
  about 830 us of broker CPU per 920 KB Produce request against 910 us, and
  1013 against 898 MB/s.
- the cold-read benchmark's tail latency is worse on uvloop, for reasons not
  yet known: Fetch p99 of a reader going flat out 110-136 ms against 62-77 ms
  (five runs each), and its paced reader's p99 with read-ahead 27-41 ms
  against 13-23 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

UVLOOP = "uvloop"
ASYNCIO = "asyncio"
CHOICES = (ASYNCIO, UVLOOP)
DEFAULT = ASYNCIO


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """How to make a loop of kind `choice`; ValueError says what is wrong."""
    if choice == ASYNCIO:
        return asyncio.new_event_loop
    if choice == UVLOOP:
        try:
            import uvloop
        except ImportError:
            raise ValueError("uvloop is not installed (pip install 'tierbroker[uvloop]'); "
                             "or use --event-loop asyncio") from None
        return uvloop.new_event_loop
    raise ValueError(f"unknown event loop {choice!r}; choose one of {', '.join(CHOICES)}")
