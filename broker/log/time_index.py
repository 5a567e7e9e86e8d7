"""Sparse time index of one segment: timestamp -> offset.

On disk (`<base_offset:020d>.timeindex`), Kafka's layout: 12-byte big-endian
entries `(timestamp int64, relative_offset int32)`. An entry `(T, o)` says: T is
the largest batch max-timestamp seen in the segment up to that point, and the
batch starting at offset `base + o` is the first one that carries it.

Invariant: timestamps and offsets strictly increase (an entry is added only when
the largest timestamp grows), so every batch before offset `base + o` has a
max-timestamp below T. A lookup for a target timestamp therefore starts at the
last entry with T < target and walks forward; missing entries only make the walk
longer. When a segment is sealed (rolled, or the log closed) a final entry with
the segment's largest timestamp is added, so the last entry of a sealed segment
is its max timestamp.

Memory first, file rewritten at seal/close, rebuilt by recovery after a crash,
exactly like the offset index. Not thread-safe: owned by the event-loop thread.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left

from .offset_index import IndexCorruptError

ENTRY_SIZE = 12
_ENTRY = struct.Struct(">qi")


class TimeIndex:
    __slots__ = ("base_offset", "max_entries", "timestamps", "relative_offsets", "dirty")

    def __init__(self, base_offset: int, max_entries: int):
        self.base_offset = base_offset
        self.max_entries = max_entries
        self.timestamps = array("q")
        self.relative_offsets = array("i")
        self.dirty = False

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def is_full(self) -> bool:
        return len(self.timestamps) >= self.max_entries

    def maybe_append(self, timestamp: int, offset: int, *, force: bool = False) -> bool:
        """Add (timestamp, offset) if it raises the largest timestamp (and, unless forced, fits)."""
        if self.timestamps and timestamp <= self.timestamps[-1]:
            return False
        if timestamp < 0:
            return False  # batches without timestamps (-1) are never indexed
        if not force and len(self.timestamps) >= self.max_entries:
            return False
        self.timestamps.append(timestamp)
        self.relative_offsets.append(offset - self.base_offset)
        self.dirty = True
        return True

    def lookup_before(self, timestamp: int) -> int | None:
        """Offset of the last entry whose timestamp is < `timestamp`, else None."""
        i = bisect_left(self.timestamps, timestamp) - 1
        if i < 0:
            return None
        return self.base_offset + self.relative_offsets[i]

    def last(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the last entry."""
        if not self.timestamps:
            return None
        return self.timestamps[-1], self.base_offset + self.relative_offsets[-1]

    def clear(self) -> None:
        self.timestamps = array("q")
        self.relative_offsets = array("i")
        self.dirty = True

    def to_bytes(self) -> bytes:
        n = len(self.timestamps)
        if not n:
            return b""
        interleaved = [0] * (2 * n)
        interleaved[0::2] = self.timestamps
        interleaved[1::2] = self.relative_offsets
        return struct.pack(">" + "qi" * n, *interleaved)

    @classmethod
    def from_bytes(cls, data: bytes, base_offset: int, max_entries: int) -> "TimeIndex":
        if len(data) % ENTRY_SIZE:
            raise IndexCorruptError(f"size {len(data)} is not a multiple of {ENTRY_SIZE}")
        index = cls(base_offset, max(max_entries, len(data) // ENTRY_SIZE))
        previous_ts = previous_offset = -1
        for i, (timestamp, relative) in enumerate(_ENTRY.iter_unpack(data)):
            if timestamp <= previous_ts or relative <= previous_offset:
                raise IndexCorruptError(
                    f"entry {i} ({timestamp}, {relative}) does not follow ({previous_ts}, {previous_offset})"
                )
            previous_ts, previous_offset = timestamp, relative
        n = len(data) // ENTRY_SIZE
        if n:
            index.timestamps = array("q", (t for t, _ in _ENTRY.iter_unpack(data)))
            index.relative_offsets = array("i", (o for _, o in _ENTRY.iter_unpack(data)))
        return index
