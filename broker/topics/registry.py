"""The broker's topics: create, delete, add partitions, change configs, recover.

Owned by the event loop; every mutation holds `_lock`, so two CreateTopics for
one name cannot both succeed. Disk work (opening logs, removing directories)
runs in worker threads on partitions that are not yet, or no longer, visible to
request handlers. Crash ordering is described in `store.py`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from pathlib import Path

from tiering import TieringManager, TierPolicy

from ..config import BrokerConfig, InvalidConfigError, TopicConfig, validate_topic_overrides
from ..log import PartitionLog
from ..protocol import errors
from .partition import Partition
from .store import METADATA_DIR, TopicRecord, TopicStore
from .topic import Topic, check_topic_name, log_config_for

log = logging.getLogger("broker.topics")

MAX_PARTITIONS = 10_000
DELETE_SUFFIX = "-delete"


def partition_dir_name(topic: str, index: int) -> str:
    return f"{topic}-{index}"


class TopicRegistry:
    def __init__(self, config: BrokerConfig, log_dirs: list[Path]):
        self.config = config
        self.log_dirs = log_dirs
        for directory in log_dirs:
            directory.mkdir(parents=True, exist_ok=True)
        self.store = TopicStore(log_dirs[0])
        self.topics: dict[str, Topic] = {}
        self._by_id: dict[uuid.UUID, Topic] = {}
        self._lock = asyncio.Lock()
        self.tiering: TieringManager | None = None

    # -- startup / shutdown -------------------------------------------------

    def open_all(self) -> None:
        """Load every stored topic and recover its partitions' logs. Blocking."""
        for record in self.store.load_all():
            try:
                topic_config = TopicConfig(self.config, record.configs)
            except InvalidConfigError as exc:
                # A stored override that no longer validates must not stop the broker.
                log.error("topic %s: ignoring stored configs %s: %s", record.name, record.configs, exc)
                topic_config = TopicConfig(self.config, {})
            topic = Topic(record.name, record.topic_id, topic_config)
            for index in range(len(record.partition_dirs)):
                directory = record.partition_dirs[index] / partition_dir_name(record.name, index)
                partition_log = PartitionLog.open(directory, log_config_for(topic_config))
                topic.partitions.append(Partition(topic, index, partition_log))
            self._register(topic)
            log.info("loaded topic %s (%d partitions)", topic.name, len(topic.partitions))
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        expected = {
            (d, partition_dir_name(t.name, p.index))
            for t in self.topics.values() for p in t.partitions
            for d in [p.log.directory.parent]
        }
        for log_dir in self.log_dirs:
            for entry in log_dir.iterdir():
                if not entry.is_dir() or entry.name == METADATA_DIR or entry.name.startswith("."):
                    continue
                if (log_dir, entry.name) in expected:
                    continue
                if entry.name.endswith(DELETE_SUFFIX) or _looks_like_partition_dir(entry.name):
                    log.warning("removing %s: no topic owns it (left by an interrupted create or delete)",
                                entry)
                    shutil.rmtree(entry, ignore_errors=True)

    def close_all(self) -> None:
        for topic in self.topics.values():
            for partition in topic.partitions:
                partition.log.close()

    def attach_tiering(self, tiering: TieringManager) -> None:
        """Hand every tiered topic's partitions to the tiering manager, now and after
        every change of topics, partitions or configs."""
        self.tiering = tiering
        for topic in self.topics.values():
            self.sync_tiering(topic)

    def sync_tiering(self, topic: Topic) -> None:
        """Attach the topic's partitions to the tiering manager, or detach them, per its
        config. A topic being rolled back stays attached (read-only) until it is done."""
        if self.tiering is None:
            return
        policy = TierPolicy.from_topic_config(topic.config)
        if not policy.remote_enabled and self.tiering.rolling_back(topic.name):
            return
        for partition in topic.partitions:
            if policy.remote_enabled:
                self.tiering.track(partition.tier_ref, partition.log, policy)
            else:
                self.tiering.untrack(partition.tier_ref)
        if policy.remote_enabled:
            self.tiering.describe_topic_later(topic.name, str(topic.topic_id), len(topic.partitions),
                                              topic.overrides)

    # -- lookups -------------------------------------------------------------

    def get(self, name: str) -> Topic | None:
        return self.topics.get(name)

    def by_id(self, topic_id: uuid.UUID) -> Topic | None:
        return self._by_id.get(topic_id)

    def require(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            raise errors.UnknownTopicOrPartition(f"this broker has no topic {name!r}")
        return topic

    def partition(self, name: str, index: int) -> Partition:
        return self.require(name).partition(index)

    def all_partitions(self):
        for topic in list(self.topics.values()):
            yield from topic.partitions

    # -- mutations -----------------------------------------------------------

    async def create(self, name: str, num_partitions: int | None, configs: dict[str, str],
                     validate_only: bool = False) -> Topic:
        check_topic_name(name)
        count = self.config.get("num.partitions") if num_partitions in (None, -1) else num_partitions
        if count < 1 or count > MAX_PARTITIONS:
            raise errors.InvalidPartitions(f"number of partitions must be between 1 and "
                                           f"{MAX_PARTITIONS}, not {count}")
        try:
            overrides = validate_topic_overrides(configs, self.config)
        except InvalidConfigError as exc:
            raise errors.InvalidConfig(str(exc)) from None
        async with self._lock:
            if name in self.topics:
                raise errors.TopicAlreadyExists(f"topic {name!r} already exists")
            if _collides(name, self.topics):
                raise errors.InvalidTopicException(
                    f"topic {name!r} collides with an existing topic: '.' and '_' are the same in metric names")
            topic = Topic(name, uuid.uuid4(), TopicConfig(self.config, overrides))
            if validate_only:
                return topic
            topic.partitions = await asyncio.to_thread(self._open_new_partitions, topic, count)
            self._persist(topic)
            self._register(topic)
            self.sync_tiering(topic)
        log.info("created topic %s with %d partitions%s", name, count,
                 f" and configs {overrides}" if overrides else "")
        return topic

    async def create_recovered(self, name: str, topic_id: uuid.UUID, configs: dict[str, str],
                               start_offsets: list[int]) -> Topic:
        """Recreate a topic from the remote tier: same id and configs, and partition i's
        empty local log starting at `start_offsets[i]` (where its remote data ends)."""
        check_topic_name(name)
        try:
            overrides = validate_topic_overrides(configs, self.config)
        except InvalidConfigError as exc:
            raise errors.InvalidConfig(str(exc)) from None
        async with self._lock:
            if name in self.topics or topic_id in self._by_id:
                raise errors.TopicAlreadyExists(f"topic {name!r} (or its id {topic_id}) already exists")
            topic = Topic(name, topic_id, TopicConfig(self.config, overrides))
            topic.partitions = await asyncio.to_thread(self._open_recovered_partitions, topic, start_offsets)
            self._persist(topic)
            self._register(topic)
            self.sync_tiering(topic)
        return topic

    def _open_recovered_partitions(self, topic: Topic, start_offsets: list[int]) -> list[Partition]:
        log_config = log_config_for(topic.config)
        opened = []
        for index, start in enumerate(start_offsets):
            directory = self._least_loaded_log_dir(opened) / partition_dir_name(topic.name, index)
            if directory.exists():
                shutil.rmtree(directory)
            opened.append(Partition(topic, index, PartitionLog.create_at(directory, log_config, start)))
        return opened

    async def ensure(self, name: str) -> Topic:
        """Auto-create: the topic named by a client that asked for it, with defaults."""
        topic = self.topics.get(name)
        if topic is not None:
            return topic
        try:
            return await self.create(name, None, {})
        except errors.TopicAlreadyExists:
            return self.require(name)

    async def delete(self, name: str) -> None:
        async with self._lock:
            topic = self.require(name)
            self.store.remove(topic.topic_id)
            del self.topics[name]
            del self._by_id[topic.topic_id]
            for partition in topic.partitions:
                partition.wake_waiters()
            await asyncio.to_thread(_delete_partition_logs, topic)
            if topic.tiered and self.tiering is not None:
                await self.tiering.delete_topic(topic.name, str(topic.topic_id), len(topic.partitions))
        log.info("deleted topic %s", name)

    async def create_partitions(self, name: str, total: int, validate_only: bool = False) -> None:
        async with self._lock:
            topic = self.require(name)
            current = len(topic.partitions)
            if total <= current:
                raise errors.InvalidPartitions(
                    f"topic {name!r} has {current} partitions; the new count {total} must be larger")
            if total > MAX_PARTITIONS:
                raise errors.InvalidPartitions(f"at most {MAX_PARTITIONS} partitions per topic")
            if validate_only:
                return
            added = await asyncio.to_thread(self._open_new_partitions, topic, total)
            topic.partitions.extend(added)
            self._persist(topic)
            self.sync_tiering(topic)
        log.info("topic %s now has %d partitions (was %d)", name, total, current)

    async def set_overrides(self, name: str, overrides: dict[str, str], validate_only: bool = False) -> None:
        """Replace a topic's config overrides (already merged by the caller)."""
        try:
            overrides = validate_topic_overrides(overrides, self.config)
        except InvalidConfigError as exc:
            raise errors.InvalidConfig(str(exc)) from None
        async with self._lock:
            topic = self.require(name)
            if validate_only:
                return
            topic.config = TopicConfig(self.config, overrides)
            self._persist(topic)
            log_config = log_config_for(topic.config)
            for partition in topic.partitions:
                partition.log.update_config(log_config)
            self.sync_tiering(topic)
        log.info("topic %s configs are now %s", name, overrides)

    # -- helpers ---------------------------------------------------------------

    def _open_new_partitions(self, topic: Topic, total: int) -> list[Partition]:
        """Empty logs for partitions len(topic.partitions)..total-1 (not yet visible). Blocking."""
        log_config = log_config_for(topic.config)
        opened = []
        for index in range(len(topic.partitions), total):
            directory = self._least_loaded_log_dir(opened) / partition_dir_name(topic.name, index)
            if directory.exists():
                shutil.rmtree(directory)  # leftover of an interrupted create
            opened.append(Partition(topic, index, PartitionLog.open(directory, log_config)))
        return opened

    def _least_loaded_log_dir(self, also: list[Partition]) -> Path:
        """The log dir holding the fewest partitions (counting `also`, not yet registered)."""
        counts = {d: 0 for d in self.log_dirs}
        for partition in [*self.all_partitions(), *also]:
            parent = partition.log.directory.parent
            if parent in counts:
                counts[parent] += 1
        return min(self.log_dirs, key=lambda d: counts[d])

    def _persist(self, topic: Topic) -> None:
        self.store.save(TopicRecord(
            topic.name, topic.topic_id,
            {p.index: p.log.directory.parent for p in topic.partitions},
            dict(topic.overrides)))

    def _register(self, topic: Topic) -> None:
        self.topics[topic.name] = topic
        self._by_id[topic.topic_id] = topic


def _delete_partition_logs(topic: Topic) -> None:
    for partition in topic.partitions:
        partition.log.delete()


def _collides(name: str, topics: dict[str, Topic]) -> bool:
    normal = name.replace(".", "_")
    return any(other.replace(".", "_") == normal for other in topics if other != name)


def _looks_like_partition_dir(name: str) -> bool:
    topic, _, index = name.rpartition("-")
    return bool(topic) and index.isdigit()
