"""Settings of one partition's local log (Kafka's topic-level `segment.*`/`retention.*` keys)."""

from __future__ import annotations

from dataclasses import dataclass

# Index entries hold positions and relative offsets as int32.
MAX_INT32 = (1 << 31) - 1


@dataclass(frozen=True)
class LogConfig:
    """Effective settings for one partition; the server resolves broker defaults + topic overrides.

    -1 in `retention_ms` / `retention_bytes` means unlimited, as in Kafka.
    """

    segment_bytes: int = 1 << 30
    segment_ms: int = 7 * 24 * 3600 * 1000
    segment_jitter_ms: int = 0
    index_interval_bytes: int = 4096
    segment_index_bytes: int = 10 * 1024 * 1024  # max index file size -> roll when full
    retention_ms: int = 7 * 24 * 3600 * 1000  # -1 = unlimited
    retention_bytes: int = -1  # -1 = unlimited
    file_delete_delay_ms: int = 60000
    message_timestamp_type: str = "CreateTime"  # or "LogAppendTime"

    def __post_init__(self) -> None:
        if not 1 <= self.segment_bytes <= MAX_INT32:
            raise ValueError(f"segment_bytes must be in [1, {MAX_INT32}], got {self.segment_bytes}")
        if self.segment_ms < 1:
            raise ValueError(f"segment_ms must be >= 1, got {self.segment_ms}")
        if self.segment_jitter_ms < 0:
            raise ValueError(f"segment_jitter_ms must be >= 0, got {self.segment_jitter_ms}")
        if self.index_interval_bytes < 0:
            raise ValueError(f"index_interval_bytes must be >= 0, got {self.index_interval_bytes}")
        if self.segment_index_bytes < 12:
            raise ValueError(f"segment_index_bytes must hold at least one entry, got {self.segment_index_bytes}")
        if self.retention_ms < -1 or self.retention_bytes < -1:
            raise ValueError("retention_ms and retention_bytes must be >= 0 or -1 (unlimited)")
        if self.file_delete_delay_ms < 0:
            raise ValueError(f"file_delete_delay_ms must be >= 0, got {self.file_delete_delay_ms}")
        if self.message_timestamp_type not in ("CreateTime", "LogAppendTime"):
            raise ValueError(
                f"message_timestamp_type must be CreateTime or LogAppendTime, got {self.message_timestamp_type!r}"
            )

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @property
    def max_offset_index_entries(self) -> int:
        return self.segment_index_bytes // 8

    @property
    def max_time_index_entries(self) -> int:
        return self.segment_index_bytes // 12
