"""Small lookups several handlers share."""

from __future__ import annotations

import uuid

from ..protocol import errors
from ..protocol.primitives import ZERO_UUID

# This broker is the only replica and the permanent leader of every partition.
LEADER_EPOCH = 0


def resolve_topic(node, version: int, name: str | None, topic_id: uuid.UUID | None, ids_since: int):
    """The topic a request names: by id from version `ids_since` on, else by name."""
    if version >= ids_since and topic_id is not None and topic_id != ZERO_UUID:
        topic = node.topics.by_id(topic_id)
        if topic is None:
            raise errors.UnknownTopicId(f"this broker has no topic with id {topic_id}")
        return topic
    return node.topics.require(name)


def error_fields(error: errors.KafkaError) -> dict:
    return {"error_code": error.code, "error_message": error.message}

