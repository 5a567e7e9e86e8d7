"""The asyncio event loop the broker runs on: uvloop where it is installed (it is
a dependency everywhere but Windows), else the standard library's;
`tierbroker serve --event-loop asyncio|uvloop` chooses.

The broker behaves the same on both: the suite runs the response writer's tests
and an end-to-end round trip on each, and everything else on the default.
Measured here on loopback:
- uvloop costs less per request: with confluent-kafka producing 100 KiB
  records, about 830 us of broker CPU per 920 KB Produce request against 910 us
  on the standard loop, and 1013 against 898 MB/s.
- cold reads meet their targets on both (`bench/cold_read.py`, six runs on
  uvloop and four on the standard loop): the paced reader's p99 ratio with
  read-ahead was 0.17-0.33 on uvloop and 0.12-0.26 on the standard loop. uvloop's
  tail is a little longer: in one traced run on each, some large response
  writes took longer there (up to 17 ms against 5 ms for a 3.7 MB writev), for
  reasons not yet known.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable

UVLOOP = "uvloop"
ASYNCIO = "asyncio"
CHOICES = (UVLOOP, ASYNCIO)


def default_choice() -> str:
    """uvloop when it can be imported, else the standard loop."""
    return UVLOOP if importlib.util.find_spec(UVLOOP) is not None else ASYNCIO


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """How to make a loop of kind `choice`; ValueError says what is wrong."""
    if choice == ASYNCIO:
        return asyncio.new_event_loop
    if choice == UVLOOP:
        try:
            import uvloop
        except ImportError:
            raise ValueError("uvloop is not installed (pip install uvloop); "
                             "or use --event-loop asyncio") from None
        return uvloop.new_event_loop
    raise ValueError(f"unknown event loop {choice!r}; choose one of {', '.join(CHOICES)}")
