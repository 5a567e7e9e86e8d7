"""A partition as the request handlers see it: its log plus the wake-ups that
long-polling fetches wait on.

Not thread-safe: owned by the event loop. Appends happen on the loop thread, in
arrival order, so offsets are assigned in the order requests were handled.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tiering import TopicPartitionRef

from ..log import AppendResult, PartitionLog
from ..protocol.records import BatchHeader

if TYPE_CHECKING:
    from .topic import Topic


class Partition:
    def __init__(self, topic: "Topic", index: int, log: PartitionLog):
        self.topic = topic
        self.index = index
        self.log = log
        self._waiters: set[asyncio.Future] = set()

    @property
    def name(self) -> str:
        return f"{self.topic.name}-{self.index}"

    @property
    def tier_ref(self) -> TopicPartitionRef:
        """How the tiering manager names this partition."""
        return TopicPartitionRef(self.topic.name, str(self.topic.topic_id), self.index)

    def append(self, records: bytearray, headers: list[BatchHeader], now_ms: int) -> AppendResult:
        result = self.log.append(records, headers, now_ms)
        self.wake_waiters()
        return result

    async def flush(self, up_to_offset: int) -> None:
        await self.log.flush(up_to_offset)

    def wake_waiters(self) -> None:
        """Wake every fetch long-polling on this partition (new data or a change of range)."""
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def add_waiter(self, fut: asyncio.Future) -> None:
        self._waiters.add(fut)

    def remove_waiter(self, fut: asyncio.Future) -> None:
        self._waiters.discard(fut)
