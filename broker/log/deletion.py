"""Delayed deletion of segment files (Kafka's `file.delete.delay.ms`).

A deleted segment's files are first renamed to `*.deleted` (readers holding
dup'd descriptors keep reading the same inode), then unlinked once the delay is
over. Nothing runs in the background: the owner calls `purge(now_ms)` (the
partition log does it on every retention pass). After a restart, leftover
`*.deleted` files are removed by recovery.

Not thread-safe: owned by the partition's event-loop thread.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger("broker.log")


class DeletionQueue:
    def __init__(self, directory: Path):
        self.directory = directory
        self._pending: list[tuple[int, list[Path]]] = []  # (due ms, renamed files)

    def schedule(self, due_ms: int, paths: list[Path]) -> None:
        self._pending.append((due_ms, paths))

    def purge(self, now_ms: int | None) -> int:
        """Unlink the files that are due (all of them when `now_ms` is None); returns how many."""
        keep, removed = [], 0
        for due, paths in self._pending:
            if now_ms is not None and due > now_ms:
                keep.append((due, paths))
                continue
            for path in paths:
                try:
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    logger.warning("%s: could not remove %s: %s", self.directory, path.name, exc)
        self._pending = keep
        return removed

    def __len__(self) -> int:
        return len(self._pending)
