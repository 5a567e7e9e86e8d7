"""Retention across the tiers, as pure decisions (Kafka's rules for tiered topics).

Local (`local.retention.ms` / `local.retention.bytes`): the oldest local segments
go once the remote tier has committed their copy (their next offset is at most
the remote end offset) and they are past local retention. A segment that is not
uploaded yet is never deleted locally, whatever its age: that is what keeps a
down bucket from costing data.

Total (`retention.ms` / `retention.bytes`) applies to the whole log: the oldest
remote segments go once they are past retention.ms, or while the log (remote
bytes plus the local bytes not yet uploaded) exceeds retention.bytes.

The size rule deletes a segment only if the log is still at least the limit
without it, as Kafka does. Timestamps are batch max timestamps; a segment
without timestamps (-1) never expires by time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Decision:
    count: int
    reason: str = ""


def _expired(max_timestamp: int, now_ms: int, retention_ms: int) -> bool:
    return retention_ms >= 0 and max_timestamp >= 0 and now_ms - max_timestamp > retention_ms


def local_segments_to_delete(segments: Sequence, remote_end: int | None, local_retention_ms: int,
                             local_retention_bytes: int, now_ms: int) -> Decision:
    """How many of the oldest local segments (`SegmentInfo`s, active last) may go."""
    if remote_end is None:
        return Decision(0)
    local_bytes = sum(s.size_bytes for s in segments)
    count, reason = 0, ""
    for segment in segments:
        if segment.is_active or segment.next_offset > remote_end:
            break
        if _expired(segment.max_timestamp_ms, now_ms, local_retention_ms):
            reason = reason or f"local.retention.ms={local_retention_ms}"
        elif local_retention_bytes >= 0 and local_bytes - segment.size_bytes >= local_retention_bytes:
            reason = reason or f"local.retention.bytes={local_retention_bytes}"
        else:
            break
        count += 1
        local_bytes -= segment.size_bytes
    return Decision(count, reason)


def remote_segments_to_delete(remote: Sequence, local_only_bytes: int, retention_ms: int,
                              retention_bytes: int, now_ms: int) -> Decision:
    """How many of the oldest committed remote segments (`RemoteSegment`s) are past
    total retention. `local_only_bytes`: local data the remote tier does not hold."""
    total = local_only_bytes + sum(r.size_bytes for r in remote)
    count, reason = 0, ""
    for segment in remote:
        if _expired(segment.max_timestamp, now_ms, retention_ms):
            reason = reason or f"retention.ms={retention_ms}"
        elif retention_bytes >= 0 and total - segment.size_bytes >= retention_bytes:
            reason = reason or f"retention.bytes={retention_bytes}"
        else:
            break
        count += 1
        total -= segment.size_bytes
    return Decision(count, reason)
