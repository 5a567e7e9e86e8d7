"""Topics and partitions: the registry, its durable store, and the partition view handlers use."""

from .partition import Partition
from .registry import TopicRegistry
from .topic import Topic, check_topic_name

__all__ = ["Partition", "Topic", "TopicRegistry", "check_topic_name"]
