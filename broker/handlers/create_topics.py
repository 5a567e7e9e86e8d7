"""CreateTopics (key 19): create topics with a partition count and config overrides.

Replication factor must be -1 or 1 (one broker); manual replica assignments may
only name this broker. v5+ answers with the topic's effective configs.
"""

from __future__ import annotations

from ..protocol import errors
from .common import error_fields
from .describe_configs import config_entries


async def handle(ctx, req):
    node = ctx.node
    results = []
    seen = set()
    for t in req.topics:
        out = {"name": t.name, "error_code": 0, "num_partitions": -1, "replication_factor": -1, "configs": None}
        try:
            if t.name in seen:
                raise errors.InvalidRequest(f"topic {t.name!r} appears twice in one request")
            seen.add(t.name)
            num_partitions = _partition_count(node, t)
            configs = {c.name: c.value for c in t.configs}
            if any(v is None for v in configs.values()):
                raise errors.InvalidConfig("a config value in CreateTopics cannot be null")
            topic = await node.topics.create(t.name, num_partitions, configs, req.validate_only)
        except errors.KafkaError as exc:
            out.update(error_fields(exc))
        else:
            out.update(topic_id=topic.topic_id, num_partitions=num_partitions, replication_factor=1,
                       configs=[{"name": e.name, "value": e.value, "read_only": e.read_only,
                                 "config_source": e.source, "is_sensitive": e.is_sensitive}
                                for e in config_entries(topic.config)])
        results.append(out)
    return {"topics": results}


def _partition_count(node, t) -> int:
    if t.replication_factor not in (-1, 1):
        raise errors.InvalidReplicationFactor(
            f"replication factor {t.replication_factor} is larger than the 1 available broker")
    if t.assignments:
        if t.num_partitions != -1:
            raise errors.InvalidRequest("give either num_partitions or replica assignments, not both")
        indexes = sorted(a.partition_index for a in t.assignments)
        if indexes != list(range(len(indexes))):
            raise errors.InvalidReplicaAssignment("assigned partitions must be numbered 0..n-1")
        for a in t.assignments:
            if list(a.broker_ids) != [node.node_id]:
                raise errors.InvalidReplicaAssignment(
                    f"partition {a.partition_index} may only be assigned to broker {node.node_id}")
        return len(indexes)
    return t.num_partitions


def error_response(req, version, error):
    return {"topics": [{"name": t.name, **error_fields(error)} for t in req.topics]}
