"""DeleteRecords (key 21): advance partitions' log start offsets.

Offset -1 means "up to the high watermark". An offset beyond the high watermark
is OFFSET_OUT_OF_RANGE. For a tiered topic the remote tier's log start offset
moves too, and remote segments wholly below it are deleted (manifest first).
The answer's low watermark is the new log start offset across both tiers.
"""

from __future__ import annotations

from ..log import OffsetOutOfRangeError
from ..protocol import errors


async def handle(ctx, req):
    topics = []
    for t in req.topics:
        partitions = []
        for p in t.partitions:
            out = {"partition_index": p.partition_index, "low_watermark": -1, "error_code": 0}
            try:
                partition = ctx.node.topics.partition(t.name, p.partition_index)
                offset = partition.log.high_watermark if p.offset == -1 else p.offset
                if offset < 0:
                    raise errors.OffsetOutOfRange(f"offset {p.offset} is negative")
                partition.log.delete_records_before(offset)
                tier = ctx.node.tiering.tier_of(partition.tier_ref)
                if tier is not None:
                    await tier.delete_records_before(offset)
                out["low_watermark"] = partition.log.earliest_offset
                partition.wake_waiters()
            except OffsetOutOfRangeError:
                out["error_code"] = errors.OffsetOutOfRange.code
            except errors.KafkaError as exc:
                out["error_code"] = exc.code
            partitions.append(out)
        topics.append({"name": t.name, "partitions": partitions})
    return {"topics": topics}


def error_response(req, version, error):
    return {"topics": [
        {"name": t.name, "partitions": [
            {"partition_index": p.partition_index, "low_watermark": -1, "error_code": error.code}
            for p in t.partitions]}
        for t in req.topics]}
