"""What the partition log hands back: append and read results, segment snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker.protocol.primitives import FileRegion


@dataclass(frozen=True)
class AppendResult:
    base_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 when the topic uses CreateTime
    log_start_offset: int
    duplicate: bool = False  # an idempotent retry: nothing was written, offsets are the original's


@dataclass(frozen=True)
class ReadResult:
    # FileRegion over a private os.dup of the segment fd: the caller sends and closes it.
    # b"" when the first batch exceeds max_bytes and min_one_batch is False; None at the log end.
    records: FileRegion | bytes | None
    high_watermark: int
    log_start_offset: int


@dataclass(frozen=True)
class SegmentInfo:
    """Read-only snapshot of one segment (tiering decides uploads from these)."""

    base_offset: int
    next_offset: int
    size_bytes: int
    max_timestamp_ms: int  # -1 when no batch carries a timestamp
    path: Path
    is_active: bool
