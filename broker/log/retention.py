"""Local retention: which of the oldest segments may go. Pure functions, no I/O.

Kafka's rules, applied to the segments in offset order (the active one last):

* `retention.ms`: a segment expires when `now - largest timestamp > retention.ms`
  (largest batch timestamp; the file's mtime when no batch carries one).
* `retention.bytes`: drop the oldest segments while what remains is still at
  least `retention.bytes`.
* log start offset: a segment whose every offset is below it is useless.

Each rule deletes a *prefix* of the segment list (it stops at the first segment
it would keep), so a segment with a timestamp in the future shields everything
after it, as in Kafka. The active segment counts too unless it is empty; when
it would go, the log rolls first so there is always an active segment.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentFacts:
    base_offset: int
    next_offset: int
    size_bytes: int
    largest_timestamp_ms: int
    is_active: bool


def expired_by_time(segments: list[SegmentFacts], now_ms: int, retention_ms: int) -> int:
    """How many of the oldest segments are past `retention_ms` (-1: unlimited)."""
    if retention_ms < 0:
        return 0
    count = 0
    for segment in segments:
        if _is_empty_active(segment) or now_ms - segment.largest_timestamp_ms <= retention_ms:
            break
        count += 1
    return count


def expired_by_size(segments: list[SegmentFacts], retention_bytes: int) -> int:
    """How many of the oldest segments to drop to respect `retention_bytes` (-1: unlimited)."""
    if retention_bytes < 0:
        return 0
    excess = sum(segment.size_bytes for segment in segments) - retention_bytes
    count = 0
    for segment in segments:
        if _is_empty_active(segment) or excess - segment.size_bytes < 0:
            break
        excess -= segment.size_bytes
        count += 1
    return count


def below_log_start(segments: list[SegmentFacts], log_start_offset: int) -> int:
    """How many of the oldest (non-active) segments hold only offsets below the log start."""
    count = 0
    for segment in segments:
        if segment.is_active or segment.next_offset > log_start_offset:
            break
        count += 1
    return count


def segments_to_delete(
    segments: list[SegmentFacts], now_ms: int, retention_ms: int, retention_bytes: int, log_start_offset: int
) -> tuple[int, str]:
    """(number of oldest segments to delete, which rule decided it)."""
    candidates = [
        (expired_by_time(segments, now_ms, retention_ms), f"retention.ms={retention_ms}"),
        (expired_by_size(segments, retention_bytes), f"retention.bytes={retention_bytes}"),
        (below_log_start(segments, log_start_offset), f"log start offset {log_start_offset}"),
    ]
    return max(candidates, key=lambda candidate: candidate[0])


def _is_empty_active(segment: SegmentFacts) -> bool:
    return segment.is_active and segment.size_bytes == 0
