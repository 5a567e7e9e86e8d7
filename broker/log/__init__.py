"""The local tier: a partition's log as a directory of segments with sparse indexes.

Imports only `broker.protocol`, the standard library and `crc32c`. See `log.py`
for the partition log's invariants and concurrency rule, `segment.py` and the
index modules for the on-disk formats, `recovery.py` for what happens after a
crash.
"""

from .config import LogConfig
from .errors import CorruptSegmentError, LogError, LogStorageError, OffsetOutOfRangeError
from .log import PartitionLog
from .results import AppendResult, ReadResult, SegmentInfo

__all__ = [
    "AppendResult",
    "CorruptSegmentError",
    "LogConfig",
    "LogError",
    "LogStorageError",
    "OffsetOutOfRangeError",
    "PartitionLog",
    "ReadResult",
    "SegmentInfo",
]
