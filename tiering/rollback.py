"""Roll a topic back to local-only storage: restore its remote segments into the local logs.

For each partition, the remote segments below the first local segment that are
still inside retention are restored newest first, each one ending exactly where
the local log begins, so the local log grows backwards with no gap and no
duplicate:

    GET each chunk (rate-limited) -> verify (CRC-32C, decompress) -> write at its
    original position in `<base>.log.tmp` -> fsync, rename, build the indexes
    (worker thread) -> adopt: the segment becomes the log's first and the local
    log start offset moves down to it (event loop)

Producers append at the other end throughout; consumers read the not yet
restored offsets from the bucket and the rest locally. The local log itself is
the progress record: after a crash, a rollback resumes with the segments still
below the local log start (a half-written `.tmp` file is deleted by recovery),
so nothing is restored twice. When every partition is restored, the remote
objects are deleted (or kept, read-only) and the rollback is done.

The disk check happens before anything starts: a rollback that would not fit
is refused with the bytes needed and free.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from dataclasses import dataclass, field

from broker.log import PartitionLog
from remote_index.manifest import RemoteSegment, read_segment_meta
from remote_index.rate_limit import UNLIMITED, TokenBucket
from remote_index.segment_format import decode_chunk
from remote_index.store import ObjectStore

from .partition_tier import PartitionTier
from .retry import Backoff, retrying

log = logging.getLogger("tiering.rollback")


class RollbackRefused(Exception):
    """The rollback cannot start; the message says why (e.g. disk room)."""


@dataclass
class RollbackProgress:
    topic: str
    state: str  # "restoring" | "deleting-remote" | "finishing" | "done" | "failed"
    restored_bytes: int = 0
    total_bytes: int = 0
    restored_segments: int = 0
    total_segments: int = 0
    delete_remote: bool = False
    error: str | None = None
    started_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)

    def to_json(self) -> dict:
        return {
            "topic": self.topic, "state": self.state, "restored_bytes": self.restored_bytes,
            "total_bytes": self.total_bytes, "restored_segments": self.restored_segments,
            "total_segments": self.total_segments, "delete_remote": self.delete_remote, "error": self.error,
        }


def segments_to_restore(tier: PartitionTier) -> list[RemoteSegment]:
    """Committed remote segments below the local log, inside retention, newest first."""
    manifest = tier.manifest
    first_local = tier.log.segments[0].base_offset
    start = manifest.remote_log_start_offset
    if start is None:
        return []
    chosen = [s for s in manifest.finished_segments if s.next_offset <= first_local and s.next_offset > start]
    return list(reversed(chosen))


def check_disk_room(plan: dict[PartitionTier, list[RemoteSegment]], topic: str, headroom: int) -> None:
    """Refuse when any log directory lacks the room the restored segments need plus
    `headroom` (left for producers and metadata while the rollback runs)."""
    needed: dict[str, int] = {}
    for tier, segments in plan.items():
        log_dir = str(tier.log.directory.parent)
        needed[log_dir] = needed.get(log_dir, 0) + sum(s.size_bytes for s in segments)
    for log_dir, nbytes in needed.items():
        free = shutil.disk_usage(log_dir).free
        if nbytes + headroom > free:
            raise RollbackRefused(
                f"rollback of topic {topic} needs {nbytes} bytes in {log_dir} (plus {headroom} bytes "
                f"headroom, remote.log.rollback.headroom.bytes), but only {free} bytes are free")


class TopicRollback:
    """Restores one topic; `progress` is live. Owned by the tiering manager."""

    def __init__(self, topic: str, tiers: list[PartitionTier], store: ObjectStore, *, delete_remote: bool,
                 rate_bytes_per_s: int | None, on_progress=None, headroom_bytes: int = 64 << 20):
        self.topic = topic
        self.tiers = tiers
        self.store = store
        self.delete_remote = delete_remote
        self.bucket = TokenBucket(rate_bytes_per_s or UNLIMITED)
        self.progress = RollbackProgress(topic, "restoring", delete_remote=delete_remote)
        self.on_progress = on_progress or (lambda progress: None)
        self.backoff = Backoff(attempts=8)
        self.headroom_bytes = headroom_bytes

    async def prepare(self) -> None:
        """Load manifests, plan, check the disk. Raises RollbackRefused."""
        for tier in self.tiers:
            tier.rolling_back = True
            await tier.ensure_loaded()
        plan = {tier: segments_to_restore(tier) for tier in self.tiers}
        check_disk_room(plan, self.topic, self.headroom_bytes)
        self.progress.total_bytes = sum(s.size_bytes for segs in plan.values() for s in segs)
        self.progress.total_segments = sum(len(segs) for segs in plan.values())

    async def run(self) -> None:
        try:
            for tier in self.tiers:
                while (segments := segments_to_restore(tier)):
                    await self._restore(tier, segments[0])
            self.progress.state = "deleting-remote"
            self.on_progress(self.progress)
            if self.delete_remote:
                for tier in self.tiers:
                    listed = await retrying(lambda t=tier: self.store.list(t.manifests.keys.partition_prefix),
                                            self.backoff)
                    await retrying(lambda keys=[i.key for i in listed]: self.store.delete_many(keys), self.backoff)
            # "done" is declared by the manager once the broker has detached the topic.
            self.progress.state = "finishing"
            log.info("rollback of topic %s done: %d segments (%d bytes) restored; remote objects %s",
                     self.topic, self.progress.restored_segments, self.progress.restored_bytes,
                     "deleted" if self.delete_remote else "kept (read-only)")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.progress.state = "failed"
            self.progress.error = str(exc)
            log.error("rollback of topic %s failed: %s (it resumes when started again)", self.topic, exc)
            raise
        finally:
            self.on_progress(self.progress)

    async def _restore(self, tier: PartitionTier, segment: RemoteSegment) -> None:
        plog: PartitionLog = tier.log
        meta = await retrying(lambda: read_segment_meta(self.store, segment), self.backoff)
        path = plog.restore_path(segment.base_offset)
        fd = await asyncio.to_thread(os.open, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for entry in meta.chunks:
                await self.bucket.acquire(entry.object_length)
                stored = await retrying(
                    lambda e=entry: self.store.get(segment.data_key, e.object_offset, e.object_end), self.backoff)
                await asyncio.to_thread(_write_chunk, fd, stored, entry, meta.compression, segment.data_key)
        finally:
            os.close(fd)
        staged = await asyncio.to_thread(plog.stage_restored, segment.base_offset, segment.next_offset)
        plog.adopt_restored(staged, tier.manifest.remote_log_start_offset or segment.base_offset)
        self.progress.restored_bytes += segment.size_bytes
        self.progress.restored_segments += 1
        self.on_progress(self.progress)


def _write_chunk(fd: int, stored: bytes, entry, compression: str, key: str) -> None:
    data = decode_chunk(stored, entry, compression, key=key)
    view = memoryview(data)
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:], entry.position + written)
