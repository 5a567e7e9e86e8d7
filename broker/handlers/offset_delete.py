"""OffsetDelete (key 47): delete some of a group's committed offsets.

Allowed for an Empty group; for a consumer group with members, only for topics
none of them subscribes to (GROUP_SUBSCRIBED_TO_TOPIC otherwise, read from the
members' subscriptions); NON_EMPTY_GROUP for a non-consumer group with members.
"""

from __future__ import annotations

from ..protocol import errors


async def handle(ctx, req):
    codes: dict[tuple[str, int], int] = {}
    wanted: list[tuple[str, int]] = []
    for t in req.topics:
        topic = ctx.node.topics.get(t.name)
        for p in t.partitions:
            tp = (t.name, p.partition_index)
            if topic is None or not 0 <= p.partition_index < len(topic.partitions):
                codes[tp] = errors.UnknownTopicOrPartition.code
            else:
                wanted.append(tp)
    results = await ctx.node.groups.offsets.delete(req.group_id, wanted)
    for tp, error in results.items():
        codes[tp] = error.code if error else 0
    return {"error_code": 0, "topics": [
        {"name": t.name, "partitions": [
            {"partition_index": p.partition_index, "error_code": codes[(t.name, p.partition_index)]}
            for p in t.partitions]}
        for t in req.topics]}


def error_response(req, version, error):
    return {"error_code": error.code, "topics": []}
