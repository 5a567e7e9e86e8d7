"""A request's `after_response` work runs once its response is handed to the
socket, never before: work an answer sets off (a cold Fetch's read-ahead GETs)
must not delay that answer. It also runs for a request with no response, and a
failing piece of it neither loses the rest nor the connection.

A real Connection on one end of a socket pair, with a dispatcher whose answers
are given by the test.
"""

from __future__ import annotations

import asyncio
import socket

from broker.connection import Connection
from broker.dispatch import Answer
from broker.frame_pool import FramePool

RESPONSE_BYTES = 4 << 20  # more than the socket takes at once: the write drains
# The most a sent response can still have in flight (the socket buffer, doubled by
# the kernel), with room to spare.
IN_FLIGHT_BOUND = 512 * 1024


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


class ScriptedDispatcher:
    """Answers the n-th request with `answers[n]()` (a coroutine function)."""

    def __init__(self, answers):
        self.answers = list(answers)

    def begin(self, frame_bytes, connection):
        return self.answers.pop(0)()


async def serve(dispatcher) -> tuple[Connection, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)  # bounds what is in flight
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(lambda: Connection(dispatcher, 1 << 20, FramePool(1 << 20)), sock=ours)
    theirs.setblocking(False)
    return connection, theirs


async def receive(sock: socket.socket, nbytes: int) -> bytes:
    loop = asyncio.get_running_loop()
    got = bytearray()
    while len(got) < nbytes:
        chunk = await loop.sock_recv(sock, nbytes - len(got))
        assert chunk, "connection closed early"
        got += chunk
    return bytes(got)


def test_after_response_work_runs_once_the_response_is_sent():
    big = frame(b"r" * (RESPONSE_BYTES - 4))
    seen = []  # (event, bytes the client had received by then)

    async def body():
        received = bytearray()

        async def first():
            await asyncio.sleep(0)
            return Answer([big[:100], memoryview(big)[100:]], [lambda: seen.append(("first", len(received)))])

        async def no_response():
            return Answer(None, [lambda: seen.append(("no response", len(received)))])

        async def failing():
            def boom():
                raise RuntimeError("after-response work failed")
            return Answer([frame(b"ok")], [boom, lambda: seen.append(("after the failure", len(received)))])

        connection, client = await serve(ScriptedDispatcher([first, no_response, failing]))
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(client, frame(b"\x00" * 12) * 3)
        while len(received) < len(big):
            received += await receive(client, min(65536, len(big) - len(received)))
            # Until the whole response was handed to the socket, the work has not run.
            if len(received) < len(big) - IN_FLIGHT_BOUND:
                assert not seen, "after-response work ran before the response was sent"
        assert bytes(received) == big
        assert await receive(client, len(frame(b"ok"))) == frame(b"ok")
        await asyncio.sleep(0.01)
        assert [event for event, _ in seen] == ["first", "no response", "after the failure"]
        assert seen[0][1] > len(big) // 2  # most of the response was out when it ran
        client.close()
        await asyncio.wait_for(connection.closed, 5)

    asyncio.run(body())
