"""The memory pool cold reads hydrate into: reusable fixed-size slabs under a hard byte cap.

Every byte a cold read holds (a chunk as downloaded, and its decompressed form)
is *reserved* from the pool before the GET starts (reserve before you download,
after Redpanda's cloud_storage). A reservation is a `Lease` of whole slabs,
backed by one contiguous anonymous mapping of whole slabs. Released buffers are kept
idle, by size, and handed to the next lease that fits in one: the same size if
there is one, else the smallest one up to twice the size, which the lease then
holds (and is counted for) whole, as long as that leaves room for the rest of
its reservation. Only a lease that finds no such buffer allocates, first
dropping as many idle slabs as its new buffer displaces. So the bytes held by
leases plus the idle buffers kept for reuse never exceed `cap_bytes`, whatever
the load, and a steady reader allocates nothing: a segment's chunks are one size
except its last, smaller one, which borrows a chunk-sized buffer instead of
displacing one. (Fresh memory is the expensive kind: the kernel zeroes every
page on first touch, and a VM whose freed pages go back to the host pays for
each again.) The factor of two bounds what borrowing wastes: a topic with much
smaller chunks than the one read before displaces the big idle buffers rather
than tie up the pool with them.

When the pool is full, `reserve` first asks the `reclaim` callback (the chunk
cache evicting least-recently-used, unpinned chunks) and then waits, at most
until its deadline, for a release; a reservation that cannot be met in time
raises `PoolExhausted` and the fetch answers with what it has.

Waiters are served in arrival order. Not thread-safe: event loop only.
"""

from __future__ import annotations

import asyncio
import collections
import mmap
from typing import Callable, Sequence

DEFAULT_SLAB_BYTES = 1 << 20


def _fresh_buffer(nbytes: int) -> mmap.mmap:
    """Zeroed memory, faulted in page by page as it is first written (by the GET
    that fills it) rather than all at once: a `bytearray` of a chunk's size is
    zeroed on creation, and on a VM that hands freed pages back to its host that
    stalls the event loop for ~15 ms per 4 MiB."""
    return mmap.mmap(-1, nbytes)


class PoolExhausted(Exception):
    """No room in the pool before the caller's deadline."""


class LargerThanPool(PoolExhausted):
    """The reservation could never fit, whatever is released: a configuration problem."""


class Lease:
    """Slabs reserved from the pool; `buffer` is at least `nbytes` long (None once
    released: it is the pool's again). Release once."""

    __slots__ = ("pool", "slabs", "nbytes", "buffer", "_released")

    def __init__(self, pool: "BufferPool", slabs: int, nbytes: int, buffer: mmap.mmap):
        self.pool = pool
        self.slabs = slabs
        self.nbytes = nbytes
        self.buffer: mmap.mmap | None = buffer
        self._released = False

    @property
    def view(self) -> memoryview:
        return memoryview(self.buffer)[: self.nbytes]

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.pool._give_back(self)

    @property
    def released(self) -> bool:
        return self._released


class BufferPool:
    def __init__(self, cap_bytes: int, slab_bytes: int = DEFAULT_SLAB_BYTES):
        if cap_bytes < slab_bytes:
            raise ValueError(f"pool cap {cap_bytes} is smaller than one slab ({slab_bytes})")
        self.slab_bytes = slab_bytes
        self.capacity_slabs = cap_bytes // slab_bytes
        self.used_slabs = 0
        self.idle_slabs = 0
        self._idle: dict[int, list[mmap.mmap]] = {}  # slabs -> released buffers of that many slabs
        self._queue: collections.deque[object] = collections.deque()  # tickets of waiting reservations
        self._wakeups: list[asyncio.Future] = []  # one per waiter; resolved on any change
        self.reclaim: Callable[[int], int] | None = None  # slabs wanted -> slabs freed
        self.waits = 0
        self.exhausted = 0

    @property
    def cap_bytes(self) -> int:
        return self.capacity_slabs * self.slab_bytes

    @property
    def bytes_in_use(self) -> int:
        return self.used_slabs * self.slab_bytes

    def slabs_for(self, nbytes: int) -> int:
        return max(1, -(-nbytes // self.slab_bytes))

    def try_reserve(self, nbytes: int) -> Lease | None:
        """A lease now, evicting cached chunks if needed, or None (never waits)."""
        leases = self.try_reserve_all((nbytes,))
        return leases[0] if leases is not None else None

    def try_reserve_all(self, sizes: Sequence[int]) -> list[Lease] | None:
        """One lease per size, all now, or None (never waits)."""
        slabs = self._slabs_needed(sizes)
        if self._queue or not self._fits(slabs):
            return None
        return self._leases(sizes, slabs)

    async def reserve(self, nbytes: int, deadline: float) -> Lease:
        """A lease of `nbytes`, waiting until loop time `deadline` at most."""
        return (await self.reserve_all((nbytes,), deadline))[0]

    async def reserve_all(self, sizes: Sequence[int], deadline: float) -> list[Lease]:
        """One lease per size, granted together, waiting until loop time `deadline` at most.

        A caller that needs several buffers (a chunk as stored and decompressed)
        takes them in one reservation: holding one while queueing for the next
        could deadlock against a waiter ahead of it that needs the held slabs.
        """
        leases = self.try_reserve_all(sizes)
        if leases is not None:
            return leases
        slabs = self._slabs_needed(sizes)
        nbytes = sum(sizes)
        loop = asyncio.get_running_loop()
        ticket = object()
        self._queue.append(ticket)
        self.waits += 1
        try:
            while True:
                if self._queue[0] is ticket and self._fits(slabs):
                    return self._leases(sizes, slabs)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    self.exhausted += 1
                    raise PoolExhausted(f"no room for {nbytes} bytes in the {self.cap_bytes}-byte pool in time")
                # A future of its own per wait, not a shared Event that waiters clear:
                # one waiter's clear() could swallow the set() another was about to
                # see (on 3.11 wait_for runs Event.wait in a task that starts later).
                wakeup = loop.create_future()
                self._wakeups.append(wakeup)
                try:
                    await asyncio.wait((wakeup,), timeout=remaining)
                finally:
                    if not wakeup.done():
                        wakeup.cancel()
                        self._wakeups.remove(wakeup)
        finally:
            self._queue.remove(ticket)
            self._wake_all()  # the next in line re-checks

    def _slabs_needed(self, sizes: Sequence[int]) -> int:
        slabs = sum(self.slabs_for(n) for n in sizes)
        if slabs > self.capacity_slabs:
            raise LargerThanPool(f"a read of {sum(sizes)} bytes needs {slabs} slabs, more than the whole pool "
                                f"({self.cap_bytes} bytes)")
        return slabs

    def _fits(self, slabs: int) -> bool:
        free = self.capacity_slabs - self.used_slabs
        if free < slabs and self.reclaim is not None:
            free += self.reclaim(slabs - free)
        return self.capacity_slabs - self.used_slabs >= slabs

    def idle_buffers(self) -> list[mmap.mmap]:
        """The released buffers kept for reuse (memory the pool still holds)."""
        return [buffer for buffers in self._idle.values() for buffer in buffers]

    def _leases(self, sizes: Sequence[int], slabs_needed: int) -> list[Lease]:
        """One lease per size; the caller checked that `slabs_needed` slabs fit. A lease
        holding a larger idle buffer than it needs takes only room none of the others needs."""
        spare = self.capacity_slabs - self.used_slabs - slabs_needed
        leases: list[Lease | None] = [None] * len(sizes)
        # Largest first: an idle buffer goes to the lease of its own size before a
        # smaller one borrows it.
        for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
            slabs = self.slabs_for(sizes[i])
            leases[i] = self._lease(slabs, sizes[i], min(2 * slabs, slabs + spare))
            spare -= leases[i].slabs - slabs
        return leases

    def _lease(self, slabs: int, nbytes: int, max_slabs: int) -> Lease:
        buffer = self._take_idle(slabs, max_slabs)
        if buffer is None:
            # Idle buffers are memory too: drop those the new buffer displaces, so
            # leased + idle never exceeds the cap.
            self._drop_idle(self.used_slabs + slabs + self.idle_slabs - self.capacity_slabs)
            buffer = _fresh_buffer(slabs * self.slab_bytes)
        slabs = len(buffer) // self.slab_bytes
        self.used_slabs += slabs
        return Lease(self, slabs, nbytes, buffer)

    def _take_idle(self, slabs: int, max_slabs: int) -> mmap.mmap | None:
        """The smallest idle buffer of `slabs` to `max_slabs` slabs, out of the idle set."""
        size = min((size for size in self._idle if slabs <= size <= max_slabs), default=None)
        if size is None:
            return None
        buffers = self._idle[size]
        buffer = buffers.pop()
        if not buffers:
            del self._idle[size]
        self.idle_slabs -= size
        return buffer

    def _drop_idle(self, slabs: int) -> None:
        """Let go of idle buffers holding at least `slabs` slabs (none when <= 0)."""
        for size in list(self._idle):
            buffers = self._idle[size]
            while buffers and slabs > 0:
                buffers.pop()
                self.idle_slabs -= size
                slabs -= size
            if not buffers:
                del self._idle[size]
            if slabs <= 0:
                return

    def _give_back(self, lease: Lease) -> None:
        self.used_slabs -= lease.slabs
        self.idle_slabs += lease.slabs
        self._idle.setdefault(lease.slabs, []).append(lease.buffer)
        lease.buffer = None
        self._wake_all()

    def wake_waiters(self) -> None:
        """Something became reclaimable (a chunk was unpinned): waiting reservations re-check."""
        if self._queue:
            self._wake_all()

    def _wake_all(self) -> None:
        wakeups, self._wakeups = self._wakeups, []
        for wakeup in wakeups:
            if not wakeup.done():
                wakeup.set_result(None)
