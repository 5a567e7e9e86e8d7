"""ListOffsets (key 2): offsets by timestamp, plus the special timestamps.

-1 latest (the high watermark), -2 earliest (the log start offset across both
tiers), -3 the record with the largest timestamp (v7+), -4 earliest local (v8+:
the local log start offset), -5 latest tiered (v9+: the last offset whose upload
committed, -1 when none). Any other timestamp finds the earliest offset whose
batch holds a timestamp >= it, or -1 when there is none.
"""

from __future__ import annotations

from ..protocol import errors
from .common import LEADER_EPOCH

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5


async def handle(ctx, req):
    topics = []
    for t in req.topics:
        partitions = []
        for p in t.partitions:
            try:
                partition = ctx.node.topics.partition(t.name, p.partition_index)
                offset, timestamp = _lookup(partition.log, p.timestamp, ctx.version)
            except errors.KafkaError as exc:
                partitions.append({"partition_index": p.partition_index, "error_code": exc.code})
                continue
            out = {"partition_index": p.partition_index, "error_code": 0, "timestamp": timestamp,
                   "offset": offset, "leader_epoch": LEADER_EPOCH if offset >= 0 else -1}
            if ctx.version == 0:
                out["old_style_offsets"] = [offset] if offset >= 0 else []
            partitions.append(out)
        topics.append({"name": t.name, "partitions": partitions})
    return {"topics": topics}


def _lookup(plog, timestamp: int, version: int) -> tuple[int, int]:
    if timestamp == LATEST:
        return plog.high_watermark, -1
    if timestamp == EARLIEST:
        return plog.earliest_offset, -1
    if timestamp == EARLIEST_LOCAL:
        if version < 8:
            raise errors.UnsupportedVersion("earliest-local (-4) needs ListOffsets v8 or later")
        return plog.log_start_offset, -1
    if timestamp == MAX_TIMESTAMP:
        if version < 7:
            raise errors.UnsupportedVersion("max-timestamp (-3) needs ListOffsets v7 or later")
        ts, offset = plog.max_timestamp_and_offset()
        return offset, ts
    if timestamp == LATEST_TIERED:
        if version < 9:
            raise errors.UnsupportedVersion("latest-tiered (-5) needs ListOffsets v9 or later")
        remote_end = plog.remote_end_offset
        return (remote_end - 1, -1) if remote_end is not None else (-1, -1)
    if timestamp < 0:
        raise errors.InvalidRequest(f"timestamp {timestamp} is not a known special value")
    found = plog.offset_for_timestamp(timestamp)
    if found is None:
        return -1, -1
    offset, ts = found
    return offset, ts


def error_response(req, version, error):
    return {"topics": [
        {"name": t.name, "partitions": [
            {"partition_index": p.partition_index, "error_code": error.code} for p in t.partitions]}
        for t in req.topics]}
