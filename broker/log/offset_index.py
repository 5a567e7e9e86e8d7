"""Sparse offset index of one segment: offset -> byte position in the `.log` file.

On disk (`<base_offset:020d>.index`), Kafka's layout: a sequence of 8-byte
big-endian entries `(relative_offset int32, position int32)`, relative to the
segment's base offset. Each entry names a batch: the batch whose base offset is
`base_offset + relative_offset` starts at byte `position`.

Invariant: relative offsets and positions strictly increase, positions lie inside
the segment. Entries are added every `index.interval.bytes` of appended data (the
rule lives in `Segment.index_batch`), so the index is sparse: a lookup gives a
position at or before the wanted batch and the reader walks batch headers from
there. A missing entry only costs a longer walk; a wrong one would send the
reader into the middle of a batch, which is why the loader checks and the reader
verifies the header it lands on.

The index lives in memory (two arrays); the file is rewritten whole when the
segment is sealed (roll) or the log is closed. After a crash the file may be
stale or torn: recovery rebuilds it from the `.log` file.

Not thread-safe: owned by the partition's event-loop thread.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right

ENTRY_SIZE = 8
_SWAP = sys.byteorder == "little"


class IndexCorruptError(ValueError):
    """An index file that breaks its invariants; the caller rebuilds it."""


class OffsetIndex:
    __slots__ = ("base_offset", "max_entries", "relative_offsets", "positions", "dirty")

    def __init__(self, base_offset: int, max_entries: int):
        self.base_offset = base_offset
        self.max_entries = max_entries
        self.relative_offsets = array("i")
        self.positions = array("i")
        self.dirty = False  # memory differs from the file

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def is_full(self) -> bool:
        return len(self.positions) >= self.max_entries

    def append(self, offset: int, position: int) -> bool:
        """Add an entry for the batch at `position` starting at `offset`; False when full."""
        if len(self.positions) >= self.max_entries:
            return False
        self.relative_offsets.append(offset - self.base_offset)
        self.positions.append(position)
        self.dirty = True
        return True

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the last entry with offset <= `offset`, else (base, 0)."""
        i = bisect_right(self.relative_offsets, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self.relative_offsets[i], self.positions[i]

    def floor_position(self, position: int) -> tuple[int, int]:
        """(offset, position) of the last entry with position <= `position`, else (base, 0)."""
        i = bisect_right(self.positions, position) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self.relative_offsets[i], self.positions[i]

    def last(self) -> tuple[int, int] | None:
        if not self.positions:
            return None
        return self.base_offset + self.relative_offsets[-1], self.positions[-1]

    def clear(self) -> None:
        self.relative_offsets = array("i")
        self.positions = array("i")
        self.dirty = True

    def to_bytes(self) -> bytes:
        n = len(self.positions)
        interleaved = array("i", bytes(ENTRY_SIZE * n))
        interleaved[0::2] = self.relative_offsets
        interleaved[1::2] = self.positions
        if _SWAP:
            interleaved.byteswap()
        return interleaved.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, base_offset: int, log_size: int, max_entries: int) -> "OffsetIndex":
        """Load and check an index file's content against a `.log` of `log_size` bytes."""
        if len(data) % ENTRY_SIZE:
            raise IndexCorruptError(f"size {len(data)} is not a multiple of {ENTRY_SIZE}")
        interleaved = array("i")
        interleaved.frombytes(data)
        if _SWAP:
            interleaved.byteswap()
        index = cls(base_offset, max(max_entries, len(interleaved) // 2))
        index.relative_offsets = interleaved[0::2]
        index.positions = interleaved[1::2]
        previous_offset = previous_position = -1
        for i, (relative, position) in enumerate(zip(index.relative_offsets, index.positions)):
            if relative <= previous_offset or position <= previous_position:
                raise IndexCorruptError(
                    f"entry {i} ({relative}, {position}) does not follow ({previous_offset}, {previous_position})"
                )
            if position >= log_size:
                raise IndexCorruptError(f"entry {i} points at byte {position}, past the {log_size}-byte log")
            previous_offset, previous_position = relative, position
        if index.relative_offsets and index.relative_offsets[0] < 0:
            raise IndexCorruptError(f"negative relative offset {index.relative_offsets[0]}")
        return index
