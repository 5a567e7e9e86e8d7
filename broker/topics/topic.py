"""A topic: its id, its partitions and its config overrides."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from ..config import TopicConfig
from ..log import LogConfig
from ..protocol import errors
from .partition import Partition

MAX_TOPIC_NAME = 249
_LEGAL_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")


def check_topic_name(name: str | None) -> str:
    """Kafka's rules for topic names; raises INVALID_TOPIC_EXCEPTION saying which one failed."""
    if not name:
        raise errors.InvalidTopicException("topic name is empty")
    if name in (".", ".."):
        raise errors.InvalidTopicException(f"topic name cannot be {name!r}")
    if len(name) > MAX_TOPIC_NAME:
        raise errors.InvalidTopicException(
            f"topic name is {len(name)} characters long; the limit is {MAX_TOPIC_NAME}")
    if not _LEGAL_NAME.match(name):
        raise errors.InvalidTopicException(
            f"topic name {name!r} may contain only ASCII letters, digits, '.', '_' and '-'")
    return name


def log_config_for(config: TopicConfig) -> LogConfig:
    """The local log's settings from a topic's effective config."""
    return LogConfig(**config.log_config_values())


@dataclass
class Topic:
    """Invariant: `partitions[i].index == i`; partitions are only ever added."""

    name: str
    topic_id: uuid.UUID
    config: TopicConfig
    partitions: list[Partition] = field(default_factory=list)

    @property
    def overrides(self) -> dict[str, str]:
        return self.config.overrides

    @property
    def tiered(self) -> bool:
        """Whether the remote tier governs this topic's retention (remote.storage.enable)."""
        return self.config.get("remote.storage.enable")

    def partition(self, index: int) -> Partition:
        if 0 <= index < len(self.partitions):
            return self.partitions[index]
        raise errors.UnknownTopicOrPartition(
            f"topic {self.name!r} has no partition {index} (it has {len(self.partitions)})")
