"""BufferPool: the hard byte cap of cold reads.

The cap is checked two ways: the slabs the pool has leased (its own
accounting), and the bytes of every buffer it holds or has handed out (the
memory it is really responsible for: live leases plus its idle buffers). Waiters
are served in arrival order; a reservation that cannot be met by its deadline
raises PoolExhausted and leaves no trace in the queue.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remote_index.buffer_pool import BufferPool, Lease, PoolExhausted

SLAB = 4096


def run(coro):
    return asyncio.run(coro)


class Ledger:
    """Every lease handed out and not yet released, to measure what the pool holds."""

    def __init__(self, pool: BufferPool):
        self.pool = pool
        self.live: set[Lease] = set()
        self.peak_slabs = 0
        self.peak_bytes = 0

    def took(self, lease: Lease) -> None:
        self.took_all((lease,))

    def took_all(self, leases) -> None:
        """Leases granted together (checked once all are recorded)."""
        self.live.update(leases)
        self.check()

    def left_idle(self, nbytes: int):
        """Lease `nbytes` and give the lease back: returns the buffer now idle in the pool."""
        lease = self.pool.try_reserve(nbytes)
        self.took(lease)
        buffer = lease.buffer
        self.gave_back(lease)
        return buffer

    def gave_back(self, lease: Lease) -> None:
        self.live.discard(lease)
        lease.release()
        self.check()

    def held_bytes(self) -> int:
        """Bytes of buffers the pool is answerable for: live leases and idle buffers.
        Distinct buffers only (a released slab must not be counted twice)."""
        buffers = {id(b): len(b) for b in self.pool.idle_buffers()}
        buffers.update({id(lease.buffer): len(lease.buffer) for lease in self.live})
        return sum(buffers.values())

    def check(self) -> None:
        pool = self.pool
        assert 0 <= pool.used_slabs <= pool.capacity_slabs
        assert pool.used_slabs == sum(lease.slabs for lease in self.live)
        held = self.held_bytes()
        assert held <= pool.cap_bytes, f"pool holds {held} bytes, more than its cap {pool.cap_bytes}"
        self.peak_slabs = max(self.peak_slabs, pool.used_slabs)
        self.peak_bytes = max(self.peak_bytes, held)


# -- the cap ----------------------------------------------------------------------


def test_a_lease_is_whole_slabs_and_its_buffer_is_big_enough():
    async def body():
        pool = BufferPool(8 * SLAB, SLAB)
        loop = asyncio.get_running_loop()
        for nbytes, slabs in ((1, 1), (SLAB, 1), (SLAB + 1, 2), (3 * SLAB, 3), (8 * SLAB, 8)):
            lease = await pool.reserve(nbytes, loop.time() + 1)
            assert (lease.slabs, lease.nbytes, len(lease.view)) == (slabs, nbytes, nbytes)
            assert len(lease.buffer) >= nbytes
            assert pool.bytes_in_use == slabs * SLAB
            lease.release()
            lease.release()  # releasing twice is harmless
            assert lease.released and pool.used_slabs == 0
    run(body())


def test_a_released_slab_is_reused():
    async def body():
        pool = BufferPool(2 * SLAB, SLAB)
        first = pool.try_reserve(100)
        buffer = first.buffer
        first.release()
        assert pool.try_reserve(SLAB).buffer is buffer
    run(body())


def test_a_released_chunk_sized_buffer_is_reused_by_the_next_lease_of_its_size():
    """A steady cold reader leases the same multi-slab size again and again: it gets
    the buffer back rather than a fresh allocation; a lease that needs its room
    drops it (idle + leases <= cap throughout)."""

    async def body():
        pool = BufferPool(8 * SLAB, SLAB)
        ledger = Ledger(pool)
        buffer = ledger.left_idle(3 * SLAB - 5)
        assert pool.idle_slabs == 3
        again = pool.try_reserve(2 * SLAB + 1)  # three slabs again
        ledger.took(again)
        assert again.buffer is buffer and len(again.view) == 2 * SLAB + 1
        ledger.gave_back(again)
        whole = pool.try_reserve(8 * SLAB)  # needs every slab: the idle buffers go
        ledger.took(whole)
        assert pool.idle_slabs == 0 and whole.buffer is not buffer
    run(body())


def test_a_smaller_lease_borrows_an_idle_buffer_up_to_twice_its_size_and_holds_it_whole():
    """A segment's last chunk is smaller than the others: it borrows a chunk-sized
    idle buffer (and is counted for all of it) instead of displacing it for a
    fresh allocation. A buffer more than twice the size is not borrowed."""

    async def body():
        pool = BufferPool(8 * SLAB, SLAB)
        ledger = Ledger(pool)
        buffer = ledger.left_idle(4 * SLAB)
        tail = pool.try_reserve(2 * SLAB)
        ledger.took(tail)
        assert tail.buffer is buffer and tail.slabs == 4 and pool.used_slabs == 4
        assert len(tail.view) == 2 * SLAB
        ledger.gave_back(tail)
        tiny = pool.try_reserve(SLAB)  # a quarter of the idle buffer: not borrowed
        ledger.took(tiny)
        assert tiny.buffer is not buffer and tiny.slabs == 1 and pool.idle_slabs == 4
        ledger.gave_back(tiny)
    run(body())


def test_borrowing_leaves_room_for_the_rest_of_the_reservation():
    """A chunk's stored and decoded buffers are reserved together: the larger need
    takes the idle buffer of its size, and a borrow never takes room the other needs."""

    async def body():
        pool = BufferPool(4 * SLAB, SLAB)
        ledger = Ledger(pool)
        buffer = ledger.left_idle(2 * SLAB)
        stored, decoded = pool.try_reserve_all((SLAB, 2 * SLAB))
        ledger.took_all((stored, decoded))
        assert decoded.buffer is buffer and (stored.slabs, decoded.slabs) == (1, 2)
        ledger.gave_back(stored)
        ledger.gave_back(decoded)
        # Idle: one 2-slab and one 1-slab buffer. Four 1-slab leases fill the pool: no
        # room is spare, so none may borrow the 2-slab buffer (it is dropped instead).
        parts = pool.try_reserve_all((SLAB, SLAB, SLAB, SLAB))
        assert parts is not None and [p.slabs for p in parts] == [1, 1, 1, 1]
        ledger.took_all(parts)
        assert pool.used_slabs == 4
    run(body())


def test_a_reservation_larger_than_the_pool_fails_at_once():
    async def body():
        pool = BufferPool(4 * SLAB, SLAB)
        loop = asyncio.get_running_loop()
        with pytest.raises(PoolExhausted):
            await pool.reserve(4 * SLAB + 1, loop.time() + 60)  # would never fit: no waiting
        assert pool.used_slabs == 0
    run(body())


def test_the_cap_must_hold_one_slab():
    with pytest.raises(ValueError):
        BufferPool(SLAB - 1, SLAB)


def test_free_slabs_kept_for_reuse_count_against_the_cap():
    """Released slabs wait idle for reuse; a multi-slab lease allocated while they
    sit there must not take the pool past its cap (idle + leases <= cap)."""

    async def body():
        pool = BufferPool(4 * SLAB, SLAB)
        ledger = Ledger(pool)
        singles = []
        for _ in range(4):
            singles.append(pool.try_reserve(SLAB))
            ledger.took(singles[-1])
        for lease in singles:
            ledger.gave_back(lease)
        big = pool.try_reserve(4 * SLAB)
        ledger.took(big)  # checks idle + leases <= cap
        ledger.gave_back(big)
        # And single slabs still work afterwards.
        for _ in range(4):
            ledger.took(pool.try_reserve(1))
        assert pool.try_reserve(1) is None
    run(body())


async def _random_schedule(seed: int, capacity: int, requests: list[tuple[int, int]]) -> Ledger:
    """Tasks reserve (waiting as long as needed), hold for some loop turns, release;
    the pool is checked after every step of every task, and those that had to wait
    are served in the order they started waiting."""
    pool = BufferPool(capacity * SLAB, SLAB)
    ledger = Ledger(pool)
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    queued: list[int] = []
    served: list[int] = []

    async def client(number: int, nbytes: int, hold: int) -> None:
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)
        lease = pool.try_reserve(nbytes)
        if lease is None:
            # reserve() queues synchronously (nothing runs in between), and a grant
            # returns without yielding: these lists see the pool's real order.
            queued.append(number)
            lease = await pool.reserve(nbytes, loop.time() + 60)
            served.append(number)
        ledger.took(lease)
        for _ in range(hold):
            await asyncio.sleep(0)
            ledger.check()
        ledger.gave_back(lease)

    await asyncio.wait_for(asyncio.gather(*(client(i, n, h) for i, (n, h) in enumerate(requests))), 30)
    assert pool.used_slabs == 0 and not pool._queue
    assert served == queued, "waiters were not served in arrival order"
    return ledger


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    capacity=st.integers(1, 8),
    data=st.data(),
)
def test_concurrent_reservations_never_exceed_the_cap(seed, capacity, data):
    requests = data.draw(st.lists(
        st.tuples(st.integers(1, capacity * SLAB), st.integers(0, 5)), min_size=1, max_size=25))
    ledger = run(_random_schedule(seed, capacity, requests))
    assert ledger.peak_slabs <= capacity


def test_many_random_schedules_under_contention():
    """Heavier than the hypothesis examples: dozens of clients on a small pool."""
    rng = random.Random(7)
    for seed in range(20):
        capacity = rng.randint(2, 6)
        requests = [(rng.randint(1, capacity * SLAB), rng.randint(0, 4)) for _ in range(40)]
        ledger = run(_random_schedule(seed, capacity, requests))
        assert ledger.peak_slabs <= capacity


# -- fairness -----------------------------------------------------------------------


def test_waiters_are_served_in_arrival_order():
    """A small request behind a large one waits its turn even when it would fit."""

    async def body():
        pool = BufferPool(4 * SLAB, SLAB)
        loop = asyncio.get_running_loop()
        held = [pool.try_reserve(SLAB) for _ in range(4)]
        order: list[str] = []
        leases: dict[str, Lease] = {}

        async def waiter(name: str, nbytes: int) -> None:
            leases[name] = await pool.reserve(nbytes, loop.time() + 60)
            order.append(name)

        tasks = []
        for name, nbytes in (("big", 3 * SLAB), ("small-1", 1), ("small-2", 1)):
            tasks.append(asyncio.create_task(waiter(name, nbytes)))
            await asyncio.sleep(0)  # arrive in this order
        assert pool.waits == 3

        held.pop().release()  # one slab free: small-1 would fit, but big is first
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == []
        assert pool.try_reserve(1) is None  # no queue-jumping for callers that do not wait

        held.pop().release()
        held.pop().release()  # three free: big goes, then nobody fits
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == ["big"]

        held.pop().release()  # the last slab: small-1 first
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == ["big", "small-1"]

        leases["big"].release()
        await asyncio.gather(*tasks)
        assert order == ["big", "small-1", "small-2"]
    run(body())


def test_several_buffers_are_granted_together_or_not_at_all():
    async def body():
        pool = BufferPool(4 * SLAB, SLAB)
        loop = asyncio.get_running_loop()
        held = pool.try_reserve(2 * SLAB)
        assert pool.try_reserve_all((SLAB, 2 * SLAB)) is None  # 3 slabs wanted, 2 free
        assert pool.used_slabs == 2  # nothing taken for the part that would have fitted
        both = asyncio.create_task(pool.reserve_all((SLAB, 2 * SLAB), loop.time() + 60))
        await asyncio.sleep(0)
        assert pool.used_slabs == 2
        held.release()
        stored, decoded = await both
        assert (stored.slabs, decoded.slabs, pool.used_slabs) == (1, 2, 3)
        with pytest.raises(PoolExhausted):  # more than the whole pool: never waits
            await pool.reserve_all((3 * SLAB, 2 * SLAB), loop.time() + 60)
    run(body())


# -- deadlines ------------------------------------------------------------------------


def test_a_reservation_past_its_deadline_raises_pool_exhausted():
    async def body():
        pool = BufferPool(2 * SLAB, SLAB)
        loop = asyncio.get_running_loop()
        held = [pool.try_reserve(SLAB), pool.try_reserve(SLAB)]
        with pytest.raises(PoolExhausted):
            await pool.reserve(1, loop.time() + 0.02)
        with pytest.raises(PoolExhausted):
            await pool.reserve(1, loop.time() - 1)  # already past: no waiting at all
        assert pool.exhausted == 2
        assert not pool._queue  # the failed waiters left the queue
        # The one who gave up does not block the next in line.
        later = asyncio.create_task(pool.reserve(SLAB, loop.time() + 60))
        await asyncio.sleep(0)
        held[0].release()
        lease = await later
        assert lease.slabs == 1
    run(body())


def test_a_waiter_that_gives_up_lets_the_one_behind_it_through():
    async def body():
        pool = BufferPool(2 * SLAB, SLAB)
        loop = asyncio.get_running_loop()
        held = [pool.try_reserve(SLAB), pool.try_reserve(SLAB)]
        impatient = asyncio.create_task(pool.reserve(2 * SLAB, loop.time() + 0.02))
        await asyncio.sleep(0)
        patient = asyncio.create_task(pool.reserve(1, loop.time() + 60))
        await asyncio.sleep(0)
        held[0].release()  # one free: patient fits, but impatient is ahead
        with pytest.raises(PoolExhausted):
            await impatient
        lease = await patient  # served as soon as the head of the queue left
        assert lease.slabs == 1
    run(body())


def test_a_cancelled_waiter_leaves_the_queue():
    async def body():
        pool = BufferPool(SLAB, SLAB)
        loop = asyncio.get_running_loop()
        held = pool.try_reserve(SLAB)
        waiter = asyncio.create_task(pool.reserve(1, loop.time() + 60))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not pool._queue
        held.release()
        assert pool.try_reserve(1) is not None
    run(body())


# -- reclaim ----------------------------------------------------------------------------


def test_a_full_pool_asks_reclaim_before_waiting():
    """The reclaim callback (the chunk cache's eviction) runs when a reservation does
    not fit; what it frees is used at once, without waiting."""

    async def body():
        pool = BufferPool(3 * SLAB, SLAB)
        loop = asyncio.get_running_loop()
        cached = [pool.try_reserve(SLAB) for _ in range(3)]  # "cached chunks"
        asked: list[int] = []

        def reclaim(wanted: int) -> int:
            asked.append(wanted)
            freed = 0
            while cached and freed < wanted:
                cached.pop(0).release()
                freed += 1
            return freed

        pool.reclaim = reclaim
        lease = await pool.reserve(2 * SLAB, loop.time() + 60)
        assert asked == [2] and lease.slabs == 2 and len(cached) == 1
        assert pool.waits == 0
        # Reclaim cannot free enough (one cached slab left, two wanted): wait, give up.
        with pytest.raises(PoolExhausted):
            await pool.reserve(2 * SLAB, loop.time() + 0.02)
    run(body())
