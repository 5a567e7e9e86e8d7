"""A connection cuts the byte stream into exactly the frames sent, whatever the
reads look like: many small frames in one read, a frame split over reads at any
byte (its size prefix included), and frames bigger than the scratch buffer,
which are filled in place."""

from __future__ import annotations

import asyncio
import random
import socket

from broker.connection import SCRATCH_BYTES, Connection
from broker.dispatch import Answer
from broker.frame_pool import FramePool


class CopyingDispatcher:
    def __init__(self):
        self.frames: list[bytes] = []

    def begin(self, frame, connection):
        self.frames.append(bytes(frame))

        async def answer():
            return Answer(None)

        return answer()


def test_frames_survive_any_split_of_the_stream():
    rng = random.Random(7)
    sizes = [10, 11, 200, SCRATCH_BYTES - 4, SCRATCH_BYTES - 3, SCRATCH_BYTES, 3 * SCRATCH_BYTES + 5]
    payloads = [rng.randbytes(rng.choice(sizes)) for _ in range(60)]
    stream = b"".join(len(p).to_bytes(4, "big") + p for p in payloads)

    async def body():
        dispatcher = CopyingDispatcher()
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            lambda: Connection(dispatcher, 1 << 20, FramePool(1 << 20)), sock=ours)
        theirs.setblocking(False)
        position = 0
        while position < len(stream):
            step = rng.choice([1, 3, 4, 5, 17, 4096, SCRATCH_BYTES + 1, 200_000])
            await loop.sock_sendall(theirs, stream[position:position + step])
            position += step
            if rng.random() < 0.5:
                await asyncio.sleep(0.001)  # let the connection read what is there
        while len(dispatcher.frames) < len(payloads):
            await asyncio.sleep(0.01)
        theirs.close()
        await asyncio.wait_for(connection.closed, 5)
        return dispatcher.frames

    frames = asyncio.run(asyncio.wait_for(body(), 60))
    assert frames == payloads


def test_a_connection_cut_with_a_request_pending_stops_its_sender_cleanly():
    """As a forced shutdown cuts connections: the sender is cancelled, and does
    not fail on the requests the cut already dropped."""
    async def body():
        never = asyncio.get_running_loop().create_future()

        class Waiting:
            def begin(self, frame, connection):
                async def answer():
                    await never
                return answer()

        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            lambda: Connection(Waiting(), 1 << 20, FramePool(1 << 20)), sock=ours)
        await loop.sock_sendall(theirs, (12).to_bytes(4, "big") + bytes(12))
        await asyncio.sleep(0.05)
        connection.abort()
        await asyncio.wait_for(connection.closed, 5)
        sender = connection._sender
        await asyncio.wait([sender], timeout=5)
        theirs.close()
        return sender

    sender = asyncio.run(body())
    assert sender.cancelled(), f"the sender ended with {sender.exception()!r}"
