"""Operating the tiers: rollback to local-only, recovery from the bucket, tier status.

The one place the broker's topics meet the tiering manager's operations; the
admin HTTP endpoint, the CLI behind it and AlterConfigs all come through here.

Rollback bookkeeping: a marker file per topic under
`__tierbroker_metadata/rollbacks/<topic_id>.json` is written once the rollback
is planned and accepted, and removed once it is done, so a broker that dies
mid-rollback resumes it at startup (the restore itself is idempotent: see
`tiering.rollback`). The topic's config says `remote.storage.enable=false` from
the start, as the operator asked; the partitions stay attached to the remote
tier, read-only, until every remote segment inside retention is local again.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from broker.config import TopicConfig
from broker.config.storage_url import parse_storage_url
from remote_index.manifest import PartitionManifest, get_topic_description, list_topics
from remote_index.store import StoreError
from tiering.rollback import RollbackProgress, RollbackRefused

from .log.files import write_file_atomically
from .protocol import errors
from .topics.store import METADATA_DIR

log = logging.getLogger("broker.tier_admin")


class TierAdminError(Exception):
    """An operation was refused or failed; the message is for the operator."""


@dataclass
class PartitionTierStatus:
    topic: str
    partition: int
    tiered: bool
    local_start: int
    local_end: int
    remote_start: int | None
    remote_end: int | None
    local_bytes: int
    remote_bytes: int
    upload_lag_bytes: int
    upload_lag_segments: int
    last_upload_ms: int | None
    last_error: str | None
    rollback: str | None

    def to_json(self) -> dict:
        return dict(self.__dict__)


class TierAdmin:
    def __init__(self, node, first_log_dir: Path):
        self.node = node
        self.markers = first_log_dir / METADATA_DIR / "rollbacks"

    @property
    def _registry(self):
        return self.node.topics

    @property
    def _tiering(self):
        return self.node.tiering

    # -- rollback ------------------------------------------------------------

    async def rollback(self, topic_name: str, *, delete_remote: bool, rate_bytes_per_s: int | None,
                       overrides: dict[str, str] | None = None) -> RollbackProgress:
        """Start rolling `topic_name` back to local-only (returns at once)."""
        topic = self._require(topic_name)
        if self._tiering.rolling_back(topic.name):
            return self._tiering.rollbacks[topic.name].progress
        if not topic.tiered and not self._marker(topic.topic_id).exists():
            raise TierAdminError(f"topic {topic.name} is not tiered (remote.storage.enable is false)")
        try:
            rollback = await self._tiering.start_rollback(
                topic.name, str(topic.topic_id), [p.log for p in topic.partitions], delete_remote=delete_remote,
                rate_bytes_per_s=rate_bytes_per_s, on_finished=self._finished)
        except RollbackRefused as exc:
            raise TierAdminError(str(exc)) from None
        except StoreError as exc:
            raise TierAdminError(f"cannot plan the rollback of {topic.name}: the remote tier fails: {exc}") from None
        self.markers.mkdir(parents=True, exist_ok=True)
        self._done_record(topic.topic_id).unlink(missing_ok=True)
        write_file_atomically(self._marker(topic.topic_id), json.dumps(
            {"topic": topic.name, "delete_remote": delete_remote, "rate_bytes_per_s": rate_bytes_per_s}).encode())
        if overrides is None:
            overrides = dict(topic.overrides)
            overrides["remote.storage.enable"] = "false"
            overrides["remote.log.delete.on.disable"] = "true" if delete_remote else "false"
        await self._registry.set_overrides(topic.name, overrides)
        return rollback.progress

    async def rollback_all(self, *, delete_remote: bool, rate_bytes_per_s: int | None) -> list[RollbackProgress]:
        """The cluster-wide rollback: every tiered topic. Disk room is checked per topic."""
        started = []
        for topic in list(self._registry.topics.values()):
            if topic.tiered or self._tiering.rolling_back(topic.name):
                started.append(await self.rollback(topic.name, delete_remote=delete_remote,
                                                   rate_bytes_per_s=rate_bytes_per_s))
        return started

    def rollback_progress(self, topic_name: str) -> RollbackProgress | None:
        """The running or last rollback of a topic, also after a restart."""
        rollback = self._tiering.rollbacks.get(topic_name)
        if rollback is not None:
            return rollback.progress
        topic = self._registry.get(topic_name)
        if topic is None:
            return None
        if self._marker(topic.topic_id).exists():
            return RollbackProgress(topic_name, "restoring")  # resumes when the remote tier answers
        done = self._done_record(topic.topic_id)
        if done.exists():
            return RollbackProgress(**json.loads(done.read_bytes()))
        return None

    async def resume(self) -> None:
        """Startup: continue every rollback a previous run did not finish."""
        if not self.markers.exists():
            return
        for marker in sorted(self.markers.glob("*.json")):
            doc = json.loads(marker.read_bytes())
            topic = self._registry.by_id(uuid.UUID(marker.stem))
            if topic is None:
                marker.unlink()
                continue
            log.info("resuming the rollback of topic %s", topic.name)
            try:
                await self.rollback(topic.name, delete_remote=doc["delete_remote"],
                                    rate_bytes_per_s=doc.get("rate_bytes_per_s"), overrides=dict(topic.overrides))
            except TierAdminError as exc:
                log.error("cannot resume the rollback of topic %s yet: %s", topic.name, exc)

    async def _finished(self, rollback) -> None:
        topic = self._registry.get(rollback.topic)
        if topic is not None:
            self._registry.sync_tiering(topic)  # detach first: the topic is local-only now
            fields = {**rollback.progress.to_json(), "state": "done"}
            write_file_atomically(self._done_record(topic.topic_id), json.dumps(fields).encode())
            self._marker(topic.topic_id).unlink(missing_ok=True)
            if rollback.delete_remote:
                try:
                    await self._tiering.store.delete(rollback.tiers[0].manifests.keys.topic_description_key)
                except StoreError as exc:
                    log.warning("could not delete the description of %s from the bucket: %s", topic.name, exc)

    def _marker(self, topic_id) -> Path:
        return self.markers / f"{topic_id}.json"

    def _done_record(self, topic_id) -> Path:
        """The outcome of a topic's last finished rollback (for status after a restart)."""
        return self.markers / f"{topic_id}.done"

    # -- status --------------------------------------------------------------

    def status(self, topic_name: str | None = None) -> list[PartitionTierStatus]:
        topics = [self._require(topic_name)] if topic_name else sorted(self._registry.topics.values(),
                                                                        key=lambda t: t.name)
        rows = []
        for topic in topics:
            progress = self.rollback_progress(topic.name)
            for partition in topic.partitions:
                plog = partition.log
                tier = self._tiering.tier_of(partition.tier_ref)
                lag_segments, lag_bytes = tier.copy_lag() if tier is not None else (0, 0)
                manifest: PartitionManifest | None = tier.manifest if tier is not None else None
                rows.append(PartitionTierStatus(
                    topic=topic.name, partition=partition.index, tiered=topic.tiered,
                    local_start=plog.log_start_offset, local_end=plog.log_end_offset,
                    remote_start=plog.remote_log_start_offset if tier is not None else None,
                    remote_end=plog.remote_end_offset if tier is not None else None,
                    local_bytes=plog.size_bytes(), remote_bytes=manifest.remote_size_bytes if manifest else 0,
                    upload_lag_bytes=lag_bytes, upload_lag_segments=lag_segments,
                    last_upload_ms=tier.last_upload_ms if tier is not None else None,
                    last_error=tier.last_error if tier is not None else None,
                    rollback=progress.state if progress is not None else None))
        return rows

    # -- recovery from the bucket --------------------------------------------

    async def recover(self, from_url: str, topic_name: str | None = None) -> list[str]:
        """Rebuild topics from the bucket's topic descriptions and manifests alone.

        Each partition's local log starts empty where its remote data ends, so
        consumers read everything from the bucket and producers continue after it.
        """
        self._check_same_bucket(from_url)
        store = self._tiering.store
        try:
            described = await list_topics(store)
        except StoreError as exc:
            raise TierAdminError(f"cannot list topics in {from_url}: {exc}") from None
        wanted = [(name, tid) for name, tid in described if topic_name in (None, name)]
        if topic_name is not None and not wanted:
            raise TierAdminError(f"{from_url} holds no topic named {topic_name}")
        recovered = []
        for name, topic_id in wanted:
            if self._registry.get(name) is not None:
                log.warning("not recovering %s: a topic of that name exists on this broker", name)
                continue
            description = await get_topic_description(store, name, topic_id)
            starts = []
            for index in range(description.partitions):
                keys = description.partition_keys(index)
                manifest = await self._tiering.load_manifest(keys)
                starts.append(manifest.copied_end_offset or 0)
            configs = dict(description.configs)
            configs["remote.storage.enable"] = "true"
            try:
                TopicConfig(self.node.config, configs)
            except Exception as exc:
                raise TierAdminError(f"topic {name}'s stored configs are not valid here: {exc}") from None
            try:
                topic = await self._registry.create_recovered(name, uuid.UUID(topic_id), configs, starts)
            except errors.KafkaError as exc:
                raise TierAdminError(f"cannot recreate topic {name}: {exc.message or exc.name}") from None
            for partition in topic.partitions:  # serve the remote range from the first request on
                await self._tiering.tier_of(partition.tier_ref).ensure_loaded()
            recovered.append(name)
            log.info("recovered topic %s (%d partitions) from %s; local logs start at %s",
                     name, description.partitions, from_url, starts)
        return recovered

    def _check_same_bucket(self, from_url: str) -> None:
        try:
            wanted = parse_storage_url(from_url)
        except ValueError as exc:
            raise TierAdminError(f"--from {from_url}: {exc}") from None
        configured = self.node.config.remote_storage_url()
        if _normalized(wanted) != _normalized(configured):
            raise TierAdminError(
                f"this broker's remote tier is {_describe(configured)}, not {from_url}: recovered topics would "
                f"read their data from the broker's own remote tier, so start the broker with "
                f"remote.storage.url={from_url} (and its remote.storage.s3.* settings) first")

    def _require(self, topic_name: str):
        topic = self._registry.get(topic_name)
        if topic is None:
            raise TierAdminError(f"no topic named {topic_name} on this broker")
        return topic


def _normalized(url):
    path = getattr(url, "path", None)
    if path is not None:
        return ("file", str(Path(path).resolve()))
    return ("s3", url.bucket, url.prefix)


def _describe(url) -> str:
    kind = _normalized(url)
    return f"file://{kind[1]}" if kind[0] == "file" else f"s3://{kind[1]}/{kind[2]}".rstrip("/")
