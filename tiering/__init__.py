"""The write side of the remote tier: which segments to upload and when, the
rate-limited parallel uploader, retention across the tiers, garbage collection.

Depends on `remote_index` (what is in the bucket) and `broker.log` (the local
tier); never serves client reads.
"""

from .manager import TieringManager
from .metrics import TieringMetrics
from .partition_tier import PartitionTier, TopicPartitionRef
from .policy import TieringSettings, TierPolicy

__all__ = ["PartitionTier", "TierPolicy", "TieringManager", "TieringMetrics", "TieringSettings",
           "TopicPartitionRef"]
