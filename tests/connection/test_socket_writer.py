"""`SocketWriter` on a real socket pair, on each event loop the broker runs on.

Bytes and file regions arrive whole and in order however slowly the peer reads
(the socket's buffer is kept small, so the writer waits for room many times); a
write needing more buffers than one writev takes still arrives whole; a file
region shorter than announced fails instead of sending a short frame; closing
the writer while it waits for room ends the write at once and leaves no
descriptor of its own behind.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket

import pytest

from broker.event_loop import CHOICES, UVLOOP, loop_factory
from broker.protocol.primitives import FileRegion
from broker.socket_writer import MAX_BUFFERS, SocketWriter

SEND_BUFFER = 16 * 1024


@pytest.fixture(params=CHOICES)
def run(request):
    """Run a coroutine function on a fresh loop of the parametrized kind."""
    if request.param == UVLOOP:
        pytest.importorskip("uvloop")

    def runner(coroutine_function):
        with asyncio.Runner(loop_factory=loop_factory(request.param)) as r:
            return r.run(coroutine_function())
    return runner


def socket_pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    for s in (ours, theirs):
        s.setblocking(False)
    return ours, theirs


async def read_slowly(sock: socket.socket, nbytes: int) -> bytes:
    """Read `nbytes` in small pieces with pauses, so the writer keeps finding the socket full."""
    loop = asyncio.get_running_loop()
    got = bytearray()
    while len(got) < nbytes:
        chunk = await loop.sock_recv(sock, min(8192, nbytes - len(got)))
        assert chunk, "the writer's end closed early"
        got += chunk
        await asyncio.sleep(0.0005)
    return bytes(got)


async def write_while_reading(writer: SocketWriter, parts: list, sock: socket.socket, nbytes: int) -> bytes:
    """What the peer reads while `parts` are written; a failed or endless write fails the test."""
    _, received = await asyncio.wait_for(asyncio.gather(writer.write(parts), read_slowly(sock, nbytes)), 30)
    return received


def own_descriptors() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def test_bytes_and_file_regions_arrive_whole_and_in_order(run, tmp_path):
    rng = random.Random(1)
    content = rng.randbytes(3 << 20)
    path = tmp_path / "segment"
    path.write_bytes(content)
    big = rng.randbytes(1 << 20)

    async def main():
        ours, theirs = socket_pair()
        fds = [os.open(path, os.O_RDONLY) for _ in range(2)]
        try:
            parts = [b"head", FileRegion(fds[0], 100, 2 << 20), bytearray(b"mid"), b"",
                     memoryview(big)[10:], FileRegion(fds[1], 7, 5000), b"tail"]
            expected = (b"head" + content[100:100 + (2 << 20)] + b"mid" + big[10:] + content[7:5007] + b"tail")
            writer = SocketWriter(ours.fileno())
            received = await write_while_reading(writer, parts, theirs, len(expected))
            writer.close()
            return received, expected
        finally:
            for fd in fds:
                os.close(fd)
            ours.close()
            theirs.close()

    received, expected = run(main)
    assert received == expected


def test_more_buffers_than_one_writev_takes(run):
    parts = [b"%06d;" % i for i in range(3 * MAX_BUFFERS + 5)]

    async def main():
        ours, theirs = socket_pair()
        with ours, theirs:
            writer = SocketWriter(ours.fileno())
            received = await write_while_reading(writer, parts, theirs, sum(map(len, parts)))
            writer.close()
            return received

    assert run(main) == b"".join(parts)


def test_a_short_file_region_fails_rather_than_send_a_short_response(run, tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"x" * 1000)

    async def main():
        ours, theirs = socket_pair()
        fd = os.open(path, os.O_RDONLY)
        try:
            writer = SocketWriter(ours.fileno())
            with pytest.raises(OSError, match="4000 bytes early"):
                await writer.write([FileRegion(fd, 0, 5000)])
            writer.close()
            return await asyncio.get_running_loop().sock_recv(theirs, 10000)
        finally:
            os.close(fd)
            ours.close()
            theirs.close()

    assert run(main) == b"x" * 1000


def test_closing_while_waiting_for_room_ends_the_write_and_the_socket(run):
    async def main():
        before = own_descriptors()
        ours, theirs = socket_pair()
        writer = SocketWriter(ours.fileno())
        sending = asyncio.ensure_future(writer.write([b"z" * (4 << 20)]))  # the peer reads none of it
        await asyncio.sleep(0.05)
        assert not sending.done(), "the write should be waiting for room"
        writer.close()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(sending, 5)
        ours.close()
        # Both descriptors of our end are gone, so the peer sees the end of the stream.
        drained = 0
        while chunk := await asyncio.get_running_loop().sock_recv(theirs, 1 << 20):
            drained += len(chunk)
        theirs.close()
        with pytest.raises(ConnectionResetError):
            await writer.write([b"after"])
        return drained, before, own_descriptors()

    drained, before, after = run(main)
    assert 0 < drained < 4 << 20
    assert after == before
