"""CreatePartitions (key 37): grow topics to a new partition count."""

from __future__ import annotations

from ..protocol import errors
from .common import error_fields


async def handle(ctx, req):
    node = ctx.node
    results = []
    for t in req.topics:
        out = {"name": t.name, "error_code": 0, "error_message": None}
        try:
            if t.assignments is not None:
                for a in t.assignments:
                    if list(a.broker_ids) != [node.node_id]:
                        raise errors.InvalidReplicaAssignment(
                            f"new partitions may only be assigned to broker {node.node_id}")
            await node.topics.create_partitions(t.name, t.count, req.validate_only)
        except errors.KafkaError as exc:
            out.update(error_fields(exc))
        results.append(out)
    return {"results": results}


def error_response(req, version, error):
    return {"results": [{"name": t.name, **error_fields(error)} for t in req.topics]}
