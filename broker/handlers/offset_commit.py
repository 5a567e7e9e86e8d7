"""OffsetCommit (key 8): store a group's committed offsets, durably.

The answer is sent only once the offsets are fsync'd (see
`broker.groups.offset_store`). v0 has no generation or member id: it is a
"simple" commit (generation -1), allowed only while the group has no members.
v1 may set each partition's commit timestamp; v2-4 may set a retention time,
which then fixes the offsets' expiry. Unknown topics or partitions answer
UNKNOWN_TOPIC_OR_PARTITION per partition; the rest are committed.
"""

from __future__ import annotations

from ..groups import CommittedOffset
from ..groups.offsets import MAX_METADATA_BYTES, OffsetMetadataTooLarge
from ..protocol import errors


async def handle(ctx, req):
    version = ctx.version
    groups = ctx.node.groups
    now = groups.scheduler.wall_ms()
    retention = req.retention_time_ms if 2 <= version <= 4 else -1
    codes: dict[tuple[str, int], int] = {}
    offsets: dict[tuple[str, int], CommittedOffset] = {}
    for t in req.topics:
        topic = ctx.node.topics.get(t.name)
        for p in t.partitions:
            tp = (t.name, p.partition_index)
            metadata = p.committed_metadata or ""
            if topic is None or not 0 <= p.partition_index < len(topic.partitions):
                codes[tp] = errors.UnknownTopicOrPartition.code
            elif len(metadata.encode("utf-8")) > MAX_METADATA_BYTES:
                codes[tp] = OffsetMetadataTooLarge.code
            else:
                committed_at = p.commit_timestamp if version == 1 and p.commit_timestamp != -1 else now
                offsets[tp] = CommittedOffset(
                    offset=p.committed_offset, leader_epoch=p.committed_leader_epoch, metadata=metadata,
                    commit_timestamp_ms=committed_at,
                    expire_timestamp_ms=now + retention if retention >= 0 else None)
    try:
        await groups.offsets.commit(
            req.group_id, req.generation_id_or_member_epoch if version >= 1 else -1,
            req.member_id if version >= 1 else "", req.group_instance_id, offsets)
        code = 0
    except errors.KafkaError as exc:
        code = exc.code
    for tp in offsets:
        codes[tp] = code
    return {"topics": [
        {"name": t.name, "partitions": [
            {"partition_index": p.partition_index, "error_code": codes[(t.name, p.partition_index)]}
            for p in t.partitions]}
        for t in req.topics]}


def error_response(req, version, error):
    return {"topics": [
        {"name": t.name, "partitions": [
            {"partition_index": p.partition_index, "error_code": error.code} for p in t.partitions]}
        for t in req.topics]}
