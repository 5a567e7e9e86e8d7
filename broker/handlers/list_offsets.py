"""ListOffsets (key 2): offsets by timestamp, plus the special timestamps.

-1 latest (the high watermark), -2 earliest (the log start offset across both
tiers), -3 the record with the largest timestamp (v7+), -4 earliest local (v8+:
the local log start offset), -5 latest tiered (v9+: the last offset whose upload
committed, -1 when none). Any other timestamp finds the first record whose
timestamp is >= it and answers that record's offset and timestamp, or -1 when
there is none.

The by-timestamp and max-timestamp lookups run on the event loop, because the
log is owned by the loop thread (broker/log/log.py). They stay cheap: one
batch per partition is decoded (two if the first straddles the log start
offset), only when it holds several records; keys and values are skipped, not
parsed, and decompression is capped (broker/protocol/record_decoding.py).
"""

from __future__ import annotations

import asyncio
import logging

from remote_index.remote_reader import RemoteReadError

from ..log import LogStorageError
from ..protocol import errors
from .common import LEADER_EPOCH

log = logging.getLogger("broker.handlers.list_offsets")

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5
REMOTE_LOOKUP_TIMEOUT_S = 30.0


async def handle(ctx, req):
    topics = []
    for t in req.topics:
        partitions = []
        for p in t.partitions:
            try:
                partition = ctx.node.topics.partition(t.name, p.partition_index)
                offset, timestamp = _lookup(partition.log, p.timestamp, ctx.version)
                if p.timestamp >= 0 or p.timestamp == MAX_TIMESTAMP:
                    offset, timestamp = await _remote_lookup(ctx.node, partition, p.timestamp, offset, timestamp)
            except RemoteReadError as exc:
                log.warning("ListOffsets %s-%d in the remote tier: %s", t.name, p.partition_index, exc)
                partitions.append({"partition_index": p.partition_index,
                                   "error_code": errors.KafkaStorageError.code})
                continue
            except errors.KafkaError as exc:
                partitions.append({"partition_index": p.partition_index, "error_code": exc.code})
                continue
            except LogStorageError as exc:  # offline log, or a batch on disk that does not decode
                log.warning("ListOffsets %s-%d: %s", t.name, p.partition_index, exc)
                partitions.append({"partition_index": p.partition_index,
                                   "error_code": errors.KafkaStorageError.code})
                continue
            out = {"partition_index": p.partition_index, "error_code": 0, "timestamp": timestamp,
                   "offset": offset, "leader_epoch": LEADER_EPOCH if offset >= 0 else -1}
            if ctx.version == 0:
                out["old_style_offsets"] = [offset] if offset >= 0 else []
            partitions.append(out)
        topics.append({"name": t.name, "partitions": partitions})
    return {"topics": topics}


async def _remote_lookup(node, partition, timestamp: int, local_offset: int,
                         local_timestamp: int) -> tuple[int, int]:
    """A timestamp lookup across the tiers: the remote tier answers when it holds an
    earlier match (or, for max-timestamp, a larger timestamp) than the local log."""
    plog = partition.log
    tier = node.tiering.tier_of(partition.tier_ref)
    manifest = tier.manifest if tier is not None else None
    remote_start = plog.remote_log_start_offset
    if manifest is None or remote_start is None or remote_start >= plog.log_start_offset:
        return local_offset, local_timestamp
    reader = node.remote_reader
    if timestamp == MAX_TIMESTAMP:
        remote_max = reader.max_timestamp(manifest)
        if remote_max <= local_timestamp:
            return local_offset, local_timestamp
        timestamp = remote_max
    deadline = asyncio.get_running_loop().time() + REMOTE_LOOKUP_TIMEOUT_S
    found = await reader.offset_for_timestamp(partition.topic.name, manifest, timestamp, deadline)
    if found is not None and found[0] < plog.log_start_offset:
        return found
    return local_offset, local_timestamp


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
