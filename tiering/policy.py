"""What the write side is told: broker-wide settings and one policy per topic.

The broker builds these from its configuration (`from_broker_config`,
`from_topic_config`) and hands them over; nothing in `tiering` reads a config
registry or a global.
"""

from __future__ import annotations

from dataclasses import dataclass

from remote_index.rate_limit import UNLIMITED


@dataclass(frozen=True)
class TieringSettings:
    """Broker-wide knobs of the uploader and the retention task."""

    copy_bytes_per_s: int = UNLIMITED
    parallel_uploads: int = 10
    task_interval_ms: int = 30_000
    multipart_threshold_bytes: int = 32 << 20
    part_bytes: int = 8 << 20
    hashed_prefix: bool = False
    rollback_headroom_bytes: int = 64 << 20

    @classmethod
    def from_broker_config(cls, config) -> "TieringSettings":
        return cls(
            copy_bytes_per_s=config.get("remote.log.manager.copy.max.bytes.per.second"),
            parallel_uploads=config.get("remote.log.manager.thread.pool.size"),
            task_interval_ms=config.get("remote.log.manager.task.interval.ms"),
            multipart_threshold_bytes=config.get("remote.storage.multipart.threshold.bytes"),
            part_bytes=config.get("remote.storage.multipart.part.bytes"),
            hashed_prefix=config.get("remote.storage.key.hashed.prefix"),
            rollback_headroom_bytes=config.get("remote.log.rollback.headroom.bytes"),
        )


@dataclass(frozen=True)
class TierPolicy:
    """One topic's tiering behaviour. Retention values follow Kafka: -1 unlimited;
    the local values are already resolved against the totals (never larger)."""

    remote_enabled: bool
    copy_disabled: bool
    retention_ms: int
    retention_bytes: int
    local_retention_ms: int
    local_retention_bytes: int
    chunk_bytes: int
    chunk_compression: str

    @property
    def uploads(self) -> bool:
        return self.remote_enabled and not self.copy_disabled

    @classmethod
    def read_only(cls) -> "TierPolicy":
        """A partition the remote tier only serves reads for (during a rollback)."""
        return cls(remote_enabled=False, copy_disabled=True, retention_ms=-1, retention_bytes=-1,
                   local_retention_ms=-1, local_retention_bytes=-1, chunk_bytes=1 << 22, chunk_compression="none")

    @classmethod
    def from_topic_config(cls, config) -> "TierPolicy":
        return cls(
            remote_enabled=config.get("remote.storage.enable"),
            copy_disabled=config.get("remote.log.copy.disable"),
            retention_ms=config.get("retention.ms"),
            retention_bytes=config.get("retention.bytes"),
            local_retention_ms=config.local_retention_ms(),
            local_retention_bytes=config.local_retention_bytes(),
            chunk_bytes=config.get("remote.storage.chunk.bytes"),
            chunk_compression=config.get("remote.storage.chunk.compression"),
        )
