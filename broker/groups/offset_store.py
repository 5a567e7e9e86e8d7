"""Committed offsets of every group, in memory for reads and on disk for crashes.

Invariant: the in-memory state is the replay of the offsets file. A change is
applied to memory only after the write holding it was fsync'd, and the
coroutine that asked for it returns only then: an answered OffsetCommit
survives SIGKILL.

Concurrency: state is read and changed on the event loop only. The file is
written by one writer task (`run`, owned by the coordinator's run loop) in a
worker thread. Changes queued while a write is in flight go out together in
the next write with one fsync (group commit), in the order they were queued.
The same task compacts the file once it grows past its threshold, between
writes, so compaction never races an append.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Iterable, Mapping

from ..protocol import errors
from .offset_log import (
    CommitRecord,
    CommittedOffset,
    DeleteGroupRecord,
    DeleteOffsetRecord,
    GroupRecord,
    OffsetLog,
    OffsetLogError,
    Record,
    frame,
)

log = logging.getLogger("broker.groups.offsets")

TopicPartition = tuple[str, int]

DEFAULT_COMPACT_THRESHOLD = 16 << 20


@dataclass
class _Write:
    records: list[Record]
    data: bytes
    done: asyncio.Future | None


class OffsetStore:
    def __init__(self, directory: Path, compact_threshold_bytes: int = DEFAULT_COMPACT_THRESHOLD):
        self.file = OffsetLog(directory)
        self.compact_threshold_bytes = compact_threshold_bytes
        self._offsets: dict[str, dict[TopicPartition, CommittedOffset]] = {}
        self._groups: dict[str, GroupRecord] = {}
        self._queue: list[_Write] = []
        self._wakeup = asyncio.Event()
        self._in_flight: Counter[tuple[str, str, int]] = Counter()
        self._compacted_size = 0
        self.compactions = 0

    # -- startup ---------------------------------------------------------------

    def load(self) -> None:
        """Replay the file, then compact it. Blocking: run it in a worker thread
        before the writer starts."""
        records = self.file.replay()
        for record in records:
            self._apply(record)
        self._rewrite()
        log.info("loaded committed offsets of %d groups (%d offsets) from %d records in %s",
                 len(self._offsets), sum(len(o) for o in self._offsets.values()), len(records),
                 self.file.path)

    def _snapshot(self) -> list[Record]:
        records: list[Record] = []
        for group_id in sorted(set(self._groups) | set(self._offsets)):
            if group_id in self._groups:
                records.append(self._groups[group_id])
            for (topic, partition), value in sorted(self._offsets.get(group_id, {}).items()):
                records.append(CommitRecord(group_id, topic, partition, value))
        return records

    def _rewrite(self) -> None:
        self.file.rewrite(self._snapshot())
        self._compacted_size = self.file.size
        self.compactions += 1

    def close(self) -> None:
        """Fail whatever is still queued (the writer is gone) and close the file."""
        queued, self._queue = self._queue, []
        for w in queued:
            if w.done is not None and not w.done.done():
                w.done.set_exception(errors.CoordinatorNotAvailable("the broker is shutting down"))
        self.file.close()

    # -- reads -------------------------------------------------------------------

    def group_ids(self) -> set[str]:
        return set(self._offsets) | set(self._groups)

    def group_record(self, group_id: str) -> GroupRecord | None:
        return self._groups.get(group_id)

    def offsets(self, group_id: str) -> Mapping[TopicPartition, CommittedOffset]:
        """The group's committed offsets (a live read-only view; copy to keep)."""
        return self._offsets.get(group_id, {})

    def has_offsets(self, group_id: str) -> bool:
        return bool(self._offsets.get(group_id))

    def in_flight(self, group_id: str, tp: TopicPartition | None = None) -> bool:
        """A commit for this partition (or any of the group's) is queued or being
        written: expiry leaves it alone."""
        if tp is not None:
            return self._in_flight[(group_id, tp[0], tp[1])] > 0
        return any(key[0] == group_id for key in self._in_flight)

    # -- changes -----------------------------------------------------------------

    def commit(self, group_id: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> Awaitable[None]:
        """Durably store `offsets`: the returned awaitable completes once they are
        fsync'd and visible, or raises CoordinatorNotAvailable when the file cannot
        be written. Raises InvalidRequest at once for a record too large to store.

        The change is queued before this returns (as are the deletes below), so
        changes are ordered by call, not by when their callers get to await."""
        done = self._submit([CommitRecord(group_id, t, p, v) for (t, p), v in offsets.items()])
        keys = [(group_id, t, p) for (t, p) in offsets]
        self._in_flight.update(keys)
        done.add_done_callback(lambda _: self._release(keys))
        return asyncio.shield(done)

    def _release(self, keys: list[tuple[str, str, int]]) -> None:
        self._in_flight.subtract(keys)
        for key in keys:
            if self._in_flight[key] <= 0:
                del self._in_flight[key]

    def delete_offsets(self, group_id: str, tps: Iterable[TopicPartition]) -> Awaitable[None]:
        return asyncio.shield(self._submit([DeleteOffsetRecord(group_id, t, p) for t, p in tps]))

    def delete_group(self, group_id: str) -> Awaitable[None]:
        """Drop the group's offsets and GROUP record."""
        return asyncio.shield(self._submit([DeleteGroupRecord(group_id)]))

    def record_group(self, record: GroupRecord) -> None:
        """Queue a GROUP record without waiting for it: losing the latest one in a
        crash only makes the restarted coordinator keep offsets a little longer."""
        if self._groups.get(record.group_id) == record:
            return
        try:
            self._enqueue([record], None)
        except ValueError as exc:  # called from timer callbacks: never raise
            log.warning("not recording group %.80r: %s", record.group_id, exc)

    def _submit(self, records: list[Record]) -> asyncio.Future:
        done = asyncio.get_running_loop().create_future()
        if not records:
            done.set_result(None)
            return done
        try:
            self._enqueue(records, done)
        except ValueError as exc:
            raise errors.InvalidRequest(str(exc)) from None
        # Callers await it through asyncio.shield: a client hanging up does not
        # withdraw a queued write. Mark a failure as seen even when nobody awaits.
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        return done

    def _enqueue(self, records: list[Record], done: asyncio.Future | None) -> None:
        data = b"".join(frame(r) for r in records)  # ValueError before anything is queued
        self._queue.append(_Write(records, data, done))
        self._wakeup.set()

    # -- the writer ----------------------------------------------------------------

    async def run(self) -> None:
        """The single writer: write queued changes, fsync, apply, answer; compact."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                await self._write(batch)
                if self.file.size > max(self.compact_threshold_bytes, 2 * self._compacted_size):
                    await self._compact()

    async def _write(self, batch: list[_Write]) -> None:
        data = b"".join(w.data for w in batch)
        try:
            await asyncio.to_thread(self.file.append, data)
        except OffsetLogError as exc:
            log.error("cannot store committed offsets: %s", exc)
            for w in batch:
                if w.done is not None and not w.done.done():
                    w.done.set_exception(errors.CoordinatorNotAvailable(
                        f"committed offsets could not be stored: {exc}"))
            return
        for w in batch:
            for record in w.records:
                self._apply(record)
            if w.done is not None and not w.done.done():
                w.done.set_result(None)

    async def _compact(self) -> None:
        before = self.file.size
        records = self._snapshot()
        try:
            await asyncio.to_thread(self.file.rewrite, records)
        except OSError as exc:
            log.error("compacting %s failed (appends continue on the old file): %s",
                      self.file.path, exc)
            self._compacted_size = self.file.size  # do not retry on every write
            return
        self._compacted_size = self.file.size
        self.compactions += 1
        log.info("compacted %s: %d -> %d bytes", self.file.path, before, self.file.size)

    def _apply(self, record: Record) -> None:
        if isinstance(record, CommitRecord):
            self._offsets.setdefault(record.group_id, {})[(record.topic, record.partition)] = record.value
        elif isinstance(record, DeleteOffsetRecord):
            group = self._offsets.get(record.group_id)
            if group is not None:
                group.pop((record.topic, record.partition), None)
                if not group:
                    del self._offsets[record.group_id]
        elif isinstance(record, DeleteGroupRecord):
            self._offsets.pop(record.group_id, None)
            self._groups.pop(record.group_id, None)
        elif isinstance(record, GroupRecord):
            self._groups[record.group_id] = record
