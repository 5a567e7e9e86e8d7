"""The write side of one tiered partition: one pass uploads what is eligible,
then applies local and total retention.

A pass runs alone per partition (the manager never starts a second one while
one runs), so uploads of a partition happen strictly in offset order and
garbage collection never races an upload of the same partition. Everything
runs on the event loop; the local log is touched only between awaits.

Eligible for upload: closed, non-empty local segments at or after the remote
end offset (the next offset the remote tier lacks), oldest first. The log's
unified view (`remote_log_start_offset`, `remote_end_offset`) is republished
from the manifest after every commit, so ListOffsets and local retention see a
remote copy only once its manifest entry is COPY_FINISHED.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from broker.log import PartitionLog
from remote_index.keys import PartitionKeys
from remote_index.manifest import ManifestStore, PartitionManifest
from remote_index.segment_state import RemoteSegmentState as State
from remote_index.store import ObjectStore

from . import retention
from .cleanup import collect_garbage
from .metrics import TieringMetrics
from .policy import TierPolicy
from .upload_run import UploadRun
from .uploader import CONFLICT_RETRIES, SegmentUploader, UploadContext

log = logging.getLogger("tiering")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class TopicPartitionRef:
    topic: str
    topic_id: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


class PartitionTier:
    def __init__(self, ref: TopicPartitionRef, plog: PartitionLog, policy: TierPolicy, store: ObjectStore,
                 hashed_prefix: bool, metrics: TieringMetrics):
        self.ref = ref
        self.log = plog
        self.policy = policy
        self.store = store
        self.metrics = metrics
        self.manifests = ManifestStore(store, PartitionKeys(ref.topic, ref.topic_id, ref.partition, hashed_prefix))
        self.needs_gc = True
        self.loaded = False
        # While a rollback restores this partition, passes neither upload nor delete
        # anything: the manifest only serves cold reads and the restore.
        self.rolling_back = False
        self.last_upload_ms: int | None = None
        self.last_error: str | None = None

    @property
    def manifest(self) -> PartitionManifest | None:
        return self.manifests.cached

    async def ensure_loaded(self) -> None:
        if not self.loaded:
            await self.manifests.load()
            self.loaded = True
            self._publish()

    async def run_pass(self, uploader: SegmentUploader, upload_slots) -> None:
        await self.ensure_loaded()
        if self.rolling_back:
            return
        if self.needs_gc:
            await collect_garbage(self.store, self.manifests)
            self.needs_gc = False
        if self.policy.uploads:
            await self._upload_eligible(uploader, upload_slots)
        if self.rolling_back:
            return  # a rollback started while this pass ran: it owns the partition now
        now_ms = _now_ms()
        self._apply_local_retention(now_ms)
        await self._apply_total_retention(now_ms)
        self._update_gauges()

    async def _upload_eligible(self, uploader: SegmentUploader, upload_slots) -> None:
        """Upload eligible segments in offset order until none is left or a rollback
        starts (upload_run.py)."""
        run = UploadRun(uploader, UploadContext(self.ref.topic, self.ref.partition), self.manifests, self.policy,
                        next_eligible=self._next_eligible, should_stop=lambda: self.rolling_back,
                        on_committed=self._on_uploads_committed)
        try:
            await run.run(upload_slots)
        except Exception as exc:
            self.needs_gc = True
            self.last_error = f"upload of segment {run.working_on} failed: {exc}"
            raise
        finally:
            if run.left_started:
                self.needs_gc = True  # COPY_STARTED entries that name no finished objects

    def _on_uploads_committed(self) -> None:
        self.last_upload_ms = _now_ms()
        self.last_error = None
        self._publish()

    def _next_eligible(self, after: int | None = None):
        """The oldest closed, non-empty local segment the remote tier lacks, at or
        after offset `after` when given; None if the next one is the active segment."""
        remote_end = self.log.remote_end_offset
        if after is not None:
            remote_end = after if remote_end is None else max(remote_end, after)
        remote_start = self.manifest.log_start_offset if self.manifest else 0
        for segment in self.log.segments:
            if segment.is_active or not segment.size_bytes:
                return None
            if remote_end is not None and segment.base_offset < remote_end:
                continue
            if segment.next_offset <= max(remote_start, self.log.log_start_offset):
                continue  # already expired or deleted: nothing worth uploading
            return segment
        return None

    def _publish(self) -> None:
        """Make the committed manifest the log's view of the remote range."""
        manifest = self.manifest
        self.log.set_remote_range(manifest.remote_log_start_offset, manifest.copied_end_offset)

    def _apply_local_retention(self, now_ms: int) -> None:
        decision = retention.local_segments_to_delete(
            self.log.segments, self.log.remote_end_offset, self.policy.local_retention_ms,
            self.policy.local_retention_bytes, now_ms)
        if decision.count:
            deleted = self.log.delete_local_segments(decision.count, decision.reason)
            self.metrics.local_deletes.labels(self.ref.topic).inc(len(deleted))
        self.log.purge_deleted_files(now_ms)

    async def _apply_total_retention(self, now_ms: int) -> None:
        manifest = self.manifest
        finished = manifest.finished_segments
        if not finished:
            return
        remote_end = manifest.copied_end_offset
        local_only = sum(s.size_bytes for s in self.log.segments if s.base_offset >= remote_end)
        decision = retention.remote_segments_to_delete(
            finished, local_only, self.policy.retention_ms, self.policy.retention_bytes, now_ms)
        if decision.count:
            doomed = finished[:decision.count]
            await self.delete_remote_segments(doomed, doomed[-1].next_offset, decision.reason)

    async def delete_remote_segments(self, doomed, new_log_start: int, reason: str) -> None:
        """Manifest first (State.DELETE_STARTED and the new log start offset), then the
        objects, then State.DELETE_FINISHED: a crash anywhere leaves work GC finishes."""
        ids = [s.segment_id for s in doomed]
        now_ms = _now_ms()

        def start_delete(m: PartitionManifest) -> PartitionManifest:
            for sid in ids:
                m = m.with_state(sid, State.DELETE_STARTED, now_ms)
            return m.with_log_start_offset(new_log_start)

        await self.manifests.commit(start_delete, conflict_retries=CONFLICT_RETRIES)
        self._publish()
        if self.log.log_start_offset < new_log_start <= self.log.high_watermark:
            self.log.delete_records_before(new_log_start)
        await self.store.delete_many([k for s in doomed for k in s.object_keys])

        def finish_delete(m: PartitionManifest) -> PartitionManifest:
            for sid in ids:
                m = m.with_state(sid, State.DELETE_FINISHED, now_ms)
            return m

        await self.manifests.commit(finish_delete, conflict_retries=CONFLICT_RETRIES)
        self.metrics.remote_deletes.labels(self.ref.topic).inc(len(doomed))
        log.info("%s: deleted %d remote segments [%d, %d) by %s; log start offset is now %d",
                 self.ref, len(doomed), doomed[0].base_offset, doomed[-1].next_offset, reason,
                 self.log.earliest_offset)

    async def delete_records_before(self, offset: int) -> None:
        """DeleteRecords reaching into the remote tier: raise the remote log start
        offset and delete the remote segments wholly below it."""
        await self.ensure_loaded()
        manifest = self.manifest
        doomed = [s for s in manifest.finished_segments if s.next_offset <= offset]
        if doomed:
            await self.delete_remote_segments(doomed, offset, f"DeleteRecords to {offset}")
        elif offset > manifest.log_start_offset and manifest.finished_segments:
            await self.manifests.commit(lambda m: m.with_log_start_offset(offset),
                                         conflict_retries=CONFLICT_RETRIES)
            self._publish()

    def copy_lag(self) -> tuple[int, int]:
        """(segments, bytes) of closed local segments not uploaded yet."""
        remote_end = self.log.remote_end_offset
        pending = [s for s in self.log.segments
                   if not s.is_active and (remote_end is None or s.base_offset >= remote_end)]
        return len(pending), sum(s.size_bytes for s in pending)

    def _update_gauges(self) -> None:
        labels = (self.ref.topic, str(self.ref.partition))
        segments, nbytes = self.copy_lag()
        self.metrics.copy_lag_segments.labels(*labels).set(segments)
        self.metrics.copy_lag_bytes.labels(*labels).set(nbytes)
        self.metrics.remote_log_bytes.labels(*labels).set(self.manifest.remote_size_bytes)
