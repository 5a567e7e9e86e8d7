"""Group commit: many concurrent flush requests share few fsyncs.

A *round* captures, on the event-loop thread, the log end offset and private
`os.dup` copies of every file descriptor with unsynced data, then fsyncs them in
a worker thread. When the round ends, every offset below the captured end offset
is durable.

At most one round runs at a time. A caller whose offset is already covered
returns at once; one covered by the running round waits for it; one that is not
(it appended after the round started) waits for that round to end and then joins
the next one, which a single caller starts on behalf of all waiters. So N
concurrent callers cost at most two rounds after the one in flight, however
large N is.

Concurrency: `flush` runs on the event loop; the worker thread only ever touches
the dup'd descriptors of its round and closes them itself, so appends, rolls and
segment deletion continue freely while an fsync runs (closing the original
descriptors never pulls one out from under an fsync).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .files import Fsync, fsync_directory
from .segment import Segment


@dataclass
class FlushRound:
    """What one fsync round covers and what it must do."""

    target_offset: int  # every offset below this is durable once the round ends
    fds: list[int] = field(default_factory=list)  # private dups, closed by the round
    sync_directory: bool = False
    after_sync: Callable[[], None] | None = None  # worker thread, after the fsyncs (e.g. checkpoint)
    on_success: Callable[[], None] | None = None  # event loop, after the round succeeded


class GroupCommit:
    """Coalesces `flush` requests of one partition into shared fsync rounds."""

    def __init__(
        self,
        directory: Path,
        prepare: Callable[[], FlushRound],
        on_failure: Callable[[BaseException], None],
        flushed_offset: int,
        fsync: Fsync = os.fsync,
    ):
        self.directory = directory
        self.flushed_offset = flushed_offset  # every offset < this is durable
        self.rounds = 0  # completed rounds, for tests and metrics
        self._prepare = prepare
        self._on_failure = on_failure
        self._fsync = fsync
        self._running: asyncio.Task | None = None

    async def flush(self, up_to_offset: int) -> None:
        """Return once `flushed_offset > up_to_offset`. The caller clamps to what exists."""
        while self.flushed_offset <= up_to_offset:
            running = self._running
            if running is None:
                running = self._running = asyncio.get_running_loop().create_task(self._round())
            # shield: a cancelled caller must not cancel a round others wait on
            await asyncio.shield(running)

    async def _round(self) -> None:
        try:
            flush_round = self._prepare()
            try:
                await asyncio.to_thread(self._sync, flush_round)
            except BaseException as exc:
                self._on_failure(exc)
                raise
            self.rounds += 1
            if flush_round.target_offset > self.flushed_offset:
                self.flushed_offset = flush_round.target_offset
            if flush_round.on_success is not None:
                flush_round.on_success()
        finally:
            self._running = None

    def _sync(self, flush_round: FlushRound) -> None:
        fsync = self._fsync
        try:
            for fd in flush_round.fds:
                fsync(fd)
        finally:
            for fd in flush_round.fds:
                os.close(fd)
        if flush_round.sync_directory:
            fsync_directory(self.directory, fsync)
        if flush_round.after_sync is not None:
            flush_round.after_sync()

    @property
    def in_flight(self) -> asyncio.Task | None:
        return self._running


Captured = list[tuple[Segment, int, list[int]]]  # (segment, size covered, index-file fds covered)


def capture_unsynced(segments: list[Segment]) -> tuple[Captured, list[int]]:
    """What a round must sync, and private dups of those descriptors (event loop)."""
    captured: Captured = []
    fds: list[int] = []
    try:
        for segment in segments:
            if segment.synced_size < segment.size or segment.unsynced_files:
                index_fds = list(segment.unsynced_files)
                captured.append((segment, segment.size, index_fds))
                fds.append(os.dup(segment.fd))
                fds.extend(os.dup(fd) for fd in index_fds)
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    return captured, fds


def mark_synced(captured: Captured) -> None:
    """After a successful round (event loop): record what is durable, close synced index files."""
    for segment, size, index_fds in captured:
        if segment.closed:  # deleted or closed meanwhile: its descriptors are gone already
            continue
        segment.synced_size = max(segment.synced_size, size)
        for fd in index_fds:
            if fd in segment.unsynced_files:
                segment.unsynced_files.remove(fd)
                os.close(fd)
