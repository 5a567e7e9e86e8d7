"""Recycle the buffers that large request frames are received into.

A connection reads a frame bigger than its scratch buffer (a Produce request,
typically about a megabyte) straight into a bytearray of the frame's size.
A fresh bytearray costs a zero-fill of every byte (about 90 us of the roughly
1 ms of CPU a 920 KB Produce request cost the broker, measured), and page faults
when the allocator has handed the memory back to the kernel. The pool hands out
buffers whose request is done instead.

Invariants:
- A buffer is taken back only when nothing can still see its bytes: the
  dispatcher reads a frame through memoryviews only, and a bytearray with a
  live view refuses to be resized, which `give` tests for. One that refuses is
  dropped, never reused.
- The spares' allocations total at most `max_bytes`; `take` never returns a
  buffer another caller holds.

Not thread-safe: connections use it from the event loop.
"""

from __future__ import annotations

# A fresh buffer is allocated this much bigger than asked, so that the next,
# slightly bigger frame (sizes vary with keys and batch counts) still fits.
HEADROOM_DIVISOR = 8


class FramePool:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._spares: list[bytearray] = []
        self._spare_bytes = 0

    def take(self, size: int) -> bytearray:
        """A bytearray of exactly `size` bytes, of unspecified content."""
        best, best_capacity = None, None
        for index, spare in enumerate(self._spares):
            capacity = spare.__alloc__()
            # Resizing within the allocation, and not below half of it, only
            # moves the end (CPython's bytearray), so it neither copies nor frees.
            if size < capacity <= 2 * size and (best is None or capacity < best_capacity):
                best, best_capacity = index, capacity
        if best is None:
            frame = bytearray(size + size // HEADROOM_DIVISOR)
            del frame[size:]
            return frame
        frame = self._spares.pop(best)
        self._spare_bytes -= frame.__alloc__()
        have = len(frame)
        if size < have:
            del frame[size:]
        elif size > have:
            frame += bytes(size - have)
        return frame

    def give(self, frame: bytearray) -> None:
        """Offer back a frame whose request is done; kept only if no view of it
        is alive and the pool has room."""
        try:
            del frame[len(frame) - 1:]  # raises BufferError while a view exists
        except BufferError:
            return
        capacity = frame.__alloc__()
        if self._spare_bytes + capacity > self.max_bytes:
            return
        self._spares.append(frame)
        self._spare_bytes += capacity

    @property
    def spare_bytes(self) -> int:
        return self._spare_bytes
