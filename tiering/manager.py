"""The tiering manager: which partitions are tiered, and the loop that runs their passes.

Every `task_interval_ms` each tracked partition whose pass is not running, and
whose backoff (after a failed pass) has expired, starts a pass. Passes of
different partitions run concurrently; uploads share `parallel_uploads` slots
and one token bucket. A failing object store never blocks produce or reads:
passes fail, back off exponentially (up to `MAX_BACKOFF_S`), and the
`tierbroker_remote_store_unavailable` gauge and a log line say so until a pass
succeeds again. Local segments are only deleted by a pass that has read a
committed manifest, so nothing is deleted early while the bucket is down.

Owned by the server: `run()` is one task of its TaskGroup; passes are children
of that task and are cancelled with it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from broker.log import PartitionLog
from remote_index.keys import PartitionKeys, topic_description_key
from remote_index.manifest import ManifestStore, TopicDescription
from remote_index.store import ObjectStore

from .metrics import TieringMetrics
from .partition_tier import PartitionTier, TopicPartitionRef
from .policy import TieringSettings, TierPolicy
from .rollback import TopicRollback
from remote_index.rate_limit import TokenBucket
from .uploader import SegmentUploader

log = logging.getLogger("tiering")

MAX_BACKOFF_S = 60.0


class TieringManager:
    def __init__(self, store: ObjectStore, settings: TieringSettings, metrics: TieringMetrics):
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.bucket = TokenBucket(settings.copy_bytes_per_s)
        self.uploader = SegmentUploader(store, self.bucket, settings, metrics)
        self._slots = asyncio.Semaphore(settings.parallel_uploads)
        self.partitions: dict[TopicPartitionRef, PartitionTier] = {}
        self._running: dict[TopicPartitionRef, asyncio.Task] = {}
        self._retry_at: dict[TopicPartitionRef, tuple[float, float]] = {}  # ref -> (when, last delay)
        self._wake = asyncio.Event()
        self._failing = False
        self._descriptions: dict[tuple[str, str], TopicDescription] = {}  # waiting to be written
        self.rollbacks: dict[str, TopicRollback] = {}
        self._rollback_tasks: dict[str, asyncio.Task] = {}

    # -- what is tiered ------------------------------------------------------

    def track(self, ref: TopicPartitionRef, plog: PartitionLog, policy: TierPolicy) -> None:
        """Start (or keep) tiering a partition with `policy`."""
        tier = self.partitions.get(ref)
        if tier is None:
            self.partitions[ref] = PartitionTier(ref, plog, policy, self.store, self.settings.hashed_prefix,
                                                 self.metrics)
        else:
            tier.policy = policy
        self._wake.set()

    def untrack(self, ref: TopicPartitionRef) -> None:
        """Stop tiering a partition; its log becomes local-only (no remote range)."""
        tier = self.partitions.pop(ref, None)
        if tier is not None:
            tier.log.set_remote_range(None, None)
        self._retry_at.pop(ref, None)
        task = self._running.pop(ref, None)
        if task is not None:
            task.cancel()

    def tier_of(self, ref: TopicPartitionRef) -> PartitionTier | None:
        return self.partitions.get(ref)

    async def load_manifest(self, keys: PartitionKeys):
        """A partition's manifest straight from the bucket (recovery)."""
        return await ManifestStore(self.store, keys).load()

    def describe_topic_later(self, topic: str, topic_id: str, partitions: int, configs: dict[str, str]) -> None:
        """Have the loop (re)write the topic's description, which recovery from the
        bucket needs; retried on the next interval while the store fails."""
        doc = TopicDescription(topic, topic_id, partitions, dict(configs), self.settings.hashed_prefix)
        self._descriptions[(topic, topic_id)] = doc
        self._wake.set()

    async def _write_descriptions(self) -> None:
        for name, doc in list(self._descriptions.items()):
            try:
                await self.store.put(doc.key, doc.to_bytes())
            except Exception as exc:
                log.warning("could not write the description of topic %s yet: %s", doc.name, exc)
                return
            if self._descriptions.get(name) is doc:
                del self._descriptions[name]

    async def delete_topic(self, topic: str, topic_id: str, partitions: int) -> None:
        """Remove everything a deleted topic had in the bucket (best effort; logged)."""
        for index in range(partitions):
            self.untrack(TopicPartitionRef(topic, topic_id, index))
        self._descriptions.pop((topic, topic_id), None)
        try:
            for index in range(partitions):
                keys = PartitionKeys(topic, topic_id, index, self.settings.hashed_prefix)
                listed = await self.store.list(keys.partition_prefix)
                await self.store.delete_many([info.key for info in listed])
            await self.store.delete(topic_description_key(topic, topic_id))
            log.info("deleted the remote data of topic %s", topic)
        except Exception as exc:
            log.error("could not delete the remote data of deleted topic %s: %s", topic, exc)

    # -- rollback ------------------------------------------------------------

    async def start_rollback(self, topic: str, topic_id: str, logs: list[PartitionLog], *, delete_remote: bool,
                             rate_bytes_per_s: int | None, on_finished) -> TopicRollback:
        """Plan and start restoring `topic` (partition logs in index order). Raises
        RollbackRefused before anything changes; `on_finished(rollback)` runs once it is done."""
        running = self.rollbacks.get(topic)
        if running is not None and running.progress.state in ("restoring", "deleting-remote", "finishing"):
            return running
        tiers = []
        for index, plog in enumerate(logs):
            ref = TopicPartitionRef(topic, topic_id, index)
            tier = self.partitions.get(ref)
            if tier is None:
                tier = PartitionTier(ref, plog, TierPolicy.read_only(), self.store, self.settings.hashed_prefix,
                                     self.metrics)
            tiers.append(tier)
        for tier in tiers:
            tier.rolling_back = True  # passes starting from now on leave the partition alone
        in_flight = [self._running[t.ref] for t in tiers if t.ref in self._running]
        if in_flight:
            await asyncio.wait(in_flight)  # a pass that already started must not delete under the restore
        rollback = TopicRollback(topic, tiers, self.store, delete_remote=delete_remote,
                                 rate_bytes_per_s=rate_bytes_per_s, on_progress=self._rollback_progress,
                                 headroom_bytes=self.settings.rollback_headroom_bytes)
        try:
            await rollback.prepare()
        except BaseException:
            for tier in tiers:
                tier.rolling_back = False
            raise
        for tier in tiers:
            self.partitions.setdefault(tier.ref, tier)
        self.rollbacks[topic] = rollback
        task = asyncio.ensure_future(self._run_rollback(rollback, on_finished))
        self._rollback_tasks[topic] = task
        task.add_done_callback(lambda _t: self._rollback_tasks.pop(topic, None))
        log.info("rolling back topic %s to local-only: %d segments, %d bytes to restore%s", topic,
                 rollback.progress.total_segments, rollback.progress.total_bytes,
                 f" at {rate_bytes_per_s} bytes/s" if rate_bytes_per_s else "")
        return rollback

    async def _run_rollback(self, rollback: TopicRollback, on_finished) -> None:
        try:
            await rollback.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            return  # logged by the rollback; progress says "failed"
        for tier in rollback.tiers:
            tier.rolling_back = False
        await on_finished(rollback)
        rollback.progress.state = "done"
        self._rollback_progress(rollback.progress)

    def _rollback_progress(self, progress) -> None:
        self.metrics.rollback_restored_bytes.labels(progress.topic).set(progress.restored_bytes)
        self.metrics.rollback_total_bytes.labels(progress.topic).set(progress.total_bytes)

    def rolling_back(self, topic: str) -> bool:
        rollback = self.rollbacks.get(topic)
        return rollback is not None and rollback.progress.state in ("restoring", "deleting-remote")

    # -- the loop ------------------------------------------------------------

    def wake(self) -> None:
        """Run passes now rather than at the next interval (e.g. after a roll)."""
        self._wake.set()

    async def run(self) -> None:
        interval = self.settings.task_interval_ms / 1000
        try:
            while True:
                self._wake.clear()
                await self._write_descriptions()
                self._start_due_passes()
                try:
                    await asyncio.wait_for(self._wake.wait(), interval)
                except asyncio.TimeoutError:
                    pass
        finally:
            tasks = list(self._running.values()) + list(self._rollback_tasks.values())
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def _start_due_passes(self) -> None:
        now = time.monotonic()
        for ref, tier in list(self.partitions.items()):
            if ref in self._running:
                continue
            retry_at = self._retry_at.get(ref)
            if retry_at is not None and retry_at[0] > now:
                continue
            self._running[ref] = asyncio.ensure_future(self._pass(ref, tier))

    async def _pass(self, ref: TopicPartitionRef, tier: PartitionTier) -> None:
        try:
            await tier.run_pass(self.uploader, self._slots)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = min(MAX_BACKOFF_S, max(1.0, self._retry_at.get(ref, (0, 0.5))[1] * 2))
            self._retry_at[ref] = (time.monotonic() + delay, delay)
            if not self._failing:
                log.error("object store unavailable for %s: %s; uploads back off and retry, and no "
                          "local segment is deleted before its upload commits", ref, exc)
            else:
                log.warning("tiering pass of %s failed again (%s); next try in %.0fs", ref, exc, delay)
            self._failing = True
            self.metrics.store_unavailable.set(1)
        else:
            if self._retry_at.pop(ref, None) is not None and self._failing:
                log.info("object store reachable again: tiering of %s resumed", ref)
                self._failing = False
                self.metrics.store_unavailable.set(0)
        finally:
            self._running.pop(ref, None)

    async def close(self) -> None:
        await self.store.close()
