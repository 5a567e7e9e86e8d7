"""DeleteTopics (key 20): delete topics by name (v0-5) or by name or id (v6+)."""

from __future__ import annotations

from ..protocol import errors
from .common import error_fields, resolve_topic


def _requested(req, version):
    if version >= 6:
        return [(t.name, t.topic_id) for t in req.topics]
    return [(name, None) for name in req.topic_names]


async def handle(ctx, req):
    node = ctx.node
    results = []
    for name, topic_id in _requested(req, ctx.version):
        out = {"name": name, "topic_id": topic_id, "error_code": 0}
        try:
            if not node.config.get("delete.topic.enable"):
                raise errors.TopicDeletionDisabled("delete.topic.enable is false on this broker")
            topic = resolve_topic(node, ctx.version, name, topic_id, 6)
            out.update(name=topic.name, topic_id=topic.topic_id)
            await node.topics.delete(topic.name)
        except errors.KafkaError as exc:
            out.update(error_fields(exc))
        results.append(out)
    return {"responses": results}


def error_response(req, version, error):
    return {"responses": [{"name": name, "topic_id": topic_id, **error_fields(error)}
                          for name, topic_id in _requested(req, version)]}
