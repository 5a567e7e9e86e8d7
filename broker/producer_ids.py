"""Producer ids for idempotent producers, never handed out twice.

Ids are reserved in blocks: before the first id of a block is given out, the
end of the block is written (atomically, fsync'd) to
`__tierbroker_metadata/producer-ids`. After a crash the broker resumes at the
stored end, skipping whatever was left of the block, so no id is reused even if
the broker died right after handing one out.

Not thread-safe: owned by the event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .log.files import write_file_atomically
from .topics.store import METADATA_DIR

BLOCK_SIZE = 1000


class ProducerIdAllocator:
    def __init__(self, first_log_dir: Path):
        self.path = first_log_dir / METADATA_DIR / "producer-ids"
        self._next = 0
        self._block_end = 0
        self._lock = asyncio.Lock()

    def load(self) -> None:
        """Read the reserved end; ids start there. Blocking (startup)."""
        if self.path.exists():
            text = self.path.read_text().strip()
            self._next = self._block_end = int(text) if text else 0

    async def allocate(self) -> int:
        async with self._lock:
            if self._next >= self._block_end:
                end = self._next + BLOCK_SIZE
                await asyncio.to_thread(write_file_atomically, self.path, f"{end}\n".encode())
                self._block_end = end
            producer_id = self._next
            self._next += 1
            return producer_id
