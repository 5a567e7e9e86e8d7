"""Metadata (key 3): this broker, and the topics asked for (or all of them).

This broker leads every partition and is the only replica. Unknown topics are
created when the request allows it (v4+, and before v4 always) and the broker's
`auto.create.topics.enable` is on; otherwise they get UNKNOWN_TOPIC_OR_PARTITION.
"""

from __future__ import annotations

from ..protocol import errors
from ..protocol.primitives import ZERO_UUID
from .common import LEADER_EPOCH


async def handle(ctx, req):
    node = ctx.node
    registry = node.topics
    if req.topics is None or (ctx.version == 0 and not req.topics):
        wanted = sorted(registry.topics)
        auto_create = False
    else:
        wanted = []
        for t in req.topics:
            if t.name is None and t.topic_id not in (None, ZERO_UUID):
                topic = registry.by_id(t.topic_id)
                wanted.append(topic.name if topic else t.topic_id)
            else:
                wanted.append(t.name)
        auto_create = req.allow_auto_topic_creation and node.config.get("auto.create.topics.enable")
    topics = []
    for name in wanted:
        topics.append(await _describe_topic(node, name, auto_create))
    ep = node.endpoint
    return {
        "brokers": [{"node_id": node.node_id, "host": ep.host, "port": ep.port, "rack": node.rack}],
        "cluster_id": node.cluster_id,
        "controller_id": node.node_id,
        "topics": topics,
    }


async def _describe_topic(node, name, auto_create: bool) -> dict:
    if not isinstance(name, str):  # an unknown topic id
        return {"error_code": errors.UnknownTopicId.code, "name": None, "topic_id": name, "partitions": []}
    topic = node.topics.get(name)
    if topic is None:
        try:
            if not auto_create:
                raise errors.UnknownTopicOrPartition()
            topic = await node.topics.ensure(name)
        except errors.KafkaError as exc:
            return {"error_code": exc.code, "name": name, "partitions": []}
    return {
        "error_code": 0,
        "name": topic.name,
        "topic_id": topic.topic_id,
        "is_internal": False,
        "partitions": [
            {"error_code": 0, "partition_index": p.index, "leader_id": node.node_id,
             "leader_epoch": LEADER_EPOCH, "replica_nodes": [node.node_id], "isr_nodes": [node.node_id],
             "offline_replicas": []}
            for p in topic.partitions],
    }


def error_response(req, version, error):
    topics = req.topics or []
    return {"topics": [{"error_code": error.code, "name": t.name, "partitions": []} for t in topics]}
