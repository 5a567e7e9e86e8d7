"""Large request frames are received into recycled buffers, and a buffer is only
ever recycled once nothing can see its bytes: a view held past the request keeps
its frame out of the pool, so its bytes are never overwritten by a later frame.

The pool on its own, then a real Connection on one end of a socket pair reading
frames bigger than its scratch buffer.
"""

from __future__ import annotations

import asyncio
import socket

from broker.connection import SCRATCH_BYTES, Connection
from broker.dispatch import Answer
from broker.frame_pool import FramePool

BIG = 4 * SCRATCH_BYTES


def test_a_given_back_frame_is_taken_again_at_any_size_it_can_hold_in_place():
    pool = FramePool(16 << 20)
    first = pool.take(BIG)
    assert len(first) == BIG
    pool.give(first)
    assert pool.spare_bytes == first.__alloc__()
    for size in (BIG, BIG - 1000, BIG + 100):  # shrink and grow within the allocation
        again = pool.take(size)
        assert again is first and len(again) == size
        pool.give(again)


def test_a_frame_far_smaller_or_bigger_than_a_spare_gets_a_fresh_buffer():
    pool = FramePool(16 << 20)
    spare = pool.take(BIG)
    pool.give(spare)
    small = pool.take(BIG // 4)  # reusing would reallocate the spare down
    big = pool.take(4 * BIG)  # does not fit
    assert small is not spare and big is not spare
    assert (len(small), len(big)) == (BIG // 4, 4 * BIG)
    assert pool.take(BIG) is spare


def test_a_frame_with_a_live_view_is_not_kept():
    pool = FramePool(16 << 20)
    frame = pool.take(BIG)
    frame[:5] = b"hello"
    view = memoryview(frame)[:5]
    pool.give(frame)
    assert pool.spare_bytes == 0
    assert pool.take(BIG) is not frame
    assert bytes(view) == b"hello"


def test_spares_are_bounded_by_bytes():
    pool = FramePool(3 * BIG)
    frames = [pool.take(BIG) for _ in range(5)]
    for frame in frames:
        pool.give(frame)
    kept = pool.spare_bytes
    assert 0 < kept <= 3 * BIG
    assert kept // frames[0].__alloc__() == 2  # two fit, a third would pass the bound


def frame_bytes(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


class RecordingDispatcher:
    """Answers every request with a one-byte response; keeps a view of the frames
    whose index is in `hold` (as a handler that kept a record set would)."""

    def __init__(self, hold=()):
        self.frames: list[bytearray] = []
        self.held: dict[int, memoryview] = {}
        self.hold = set(hold)

    def begin(self, frame, connection):
        index = len(self.frames)
        self.frames.append(frame)
        if index in self.hold:
            self.held[index] = memoryview(frame)

        async def answer():
            return Answer([frame_bytes(bytes([index]))])

        return answer()


async def exchange(dispatcher, payloads: list[bytes], pool: FramePool) -> None:
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(lambda: Connection(dispatcher, 1 << 20, pool), sock=ours)
    theirs.setblocking(False)
    for index, payload in enumerate(payloads):
        await loop.sock_sendall(theirs, frame_bytes(payload))
        answer = await loop.sock_recv(theirs, 5)
        assert answer == frame_bytes(bytes([index]))
        await asyncio.sleep(0)  # the task's done callback gives the frame back
    theirs.close()
    await asyncio.wait_for(connection.closed, 5)


def test_connection_reads_each_large_frame_into_the_last_ones_buffer():
    payloads = [bytes([n]) * (BIG + n) for n in range(4)]
    dispatcher = RecordingDispatcher()
    seen = []
    original_begin = dispatcher.begin

    def begin(frame, connection):
        seen.append(bytes(frame))  # what the dispatcher was given, before reuse
        return original_begin(frame, connection)

    dispatcher.begin = begin
    asyncio.run(exchange(dispatcher, payloads, FramePool(16 << 20)))
    assert seen == payloads
    assert len({id(f) for f in dispatcher.frames}) == 1


def test_connection_never_reuses_a_frame_a_view_still_reads():
    payloads = [bytes([n]) * BIG for n in range(3)]
    dispatcher = RecordingDispatcher(hold={0})
    asyncio.run(exchange(dispatcher, payloads, FramePool(16 << 20)))
    first, second, third = dispatcher.frames
    assert second is not first and third is second
    assert bytes(dispatcher.held[0]) == payloads[0]
