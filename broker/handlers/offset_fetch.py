"""OffsetFetch (key 9): a group's committed offsets.

v0-7 ask about one group, v8+ about several. Null topics (v2+) mean every
offset the group has committed. A partition without a committed offset
answers offset -1 and no error, as Kafka does. `require_stable` (v7+) asks to
wait for pending transactional commits; this broker has none, so every
committed offset is stable.
"""

from __future__ import annotations


def _topics(groups, group_id: str, requested) -> list[dict]:
    if requested is None:
        found = groups.offsets.fetch(group_id, None)
        names: dict[str, list[int]] = {}
        for topic, partition in sorted(found):
            names.setdefault(topic, []).append(partition)
        requested_pairs = [(name, indexes) for name, indexes in names.items()]
    else:
        requested_pairs = [(t.name, t.partition_indexes) for t in requested]
        found = groups.offsets.fetch(group_id, [(name, p) for name, indexes in requested_pairs for p in indexes])
    out = []
    for name, indexes in requested_pairs:
        partitions = []
        for index in indexes:
            value = found.get((name, index))
            partitions.append({
                "partition_index": index,
                "committed_offset": value.offset if value else -1,
                "committed_leader_epoch": value.leader_epoch if value else -1,
                "metadata": value.metadata if value else "",
                "error_code": 0,
            })
        out.append({"name": name, "partitions": partitions})
    return out


async def handle(ctx, req):
    groups = ctx.node.groups
    if ctx.version >= 8:
        return {"groups": [
            {"group_id": g.group_id, "topics": _topics(groups, g.group_id, g.topics), "error_code": 0}
            for g in req.groups]}
    return {"topics": _topics(groups, req.group_id, req.topics), "error_code": 0}


def error_response(req, version, error):
    if version >= 8:
        return {"groups": [{"group_id": g.group_id, "topics": [], "error_code": error.code}
                           for g in req.groups]}
    topics = [{"name": t.name, "partitions": [
        {"partition_index": p, "committed_offset": -1, "metadata": "", "error_code": error.code}
        for p in t.partition_indexes]} for t in (req.topics or [])]
    return {"topics": topics, "error_code": error.code}
