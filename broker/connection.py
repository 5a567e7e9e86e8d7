"""One client connection: read frames, handle them concurrently, answer in order.

Kafka clients pipeline requests and expect responses in request order on each
connection. Each frame starts its own handling task as soon as it is read (so a
long-polling Fetch does not hold up the handling of the Produce behind it), and a
single sender writes the results strictly in arrival order. When
`MAX_IN_FLIGHT` requests wait for their turn, the connection stops reading,
which back-pressures a fast producer.

Frames are received with `BufferedProtocol`: the kernel copies a large request
straight into the bytearray that becomes the frame, so a produced record set is
never copied between the socket and the log (its memoryview is writable, and
the log assigns offsets in place). Large frames come from the server's
`FramePool` and go back to it once their request is done.

Responses do not go through the transport: a `SocketWriter` writes them to the
socket itself (file regions by sendfile, on any event loop), and the sender
waits for each to be written whole, which back-pressures a slow reader.

A frame whose size is negative, tiny or beyond `socket.request.max.bytes`, or
whose header cannot be read, closes the connection (as Kafka does); everything
else gets a Kafka error response and the connection stays up.

Not thread-safe: everything runs on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os

from .dispatch import Dispatcher, UnreadableRequest
from .frame_pool import FramePool
from .protocol.primitives import FileRegion
from .socket_writer import SocketWriter

log = logging.getLogger("broker.connection")

MAX_IN_FLIGHT = 64
# Smallest frame with a request header: api_key, api_version, correlation_id, client_id length.
MIN_FRAME = 10
SCRATCH_BYTES = 64 * 1024


class Connection(asyncio.BufferedProtocol):
    """The protocol object asyncio drives for one client socket."""

    def __init__(self, dispatcher: Dispatcher, max_request_bytes: int, frame_pool: FramePool, on_closed=None):
        self.dispatcher = dispatcher
        self.max_request_bytes = max_request_bytes
        self.frame_pool = frame_pool
        self.on_closed = on_closed
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._scratch = bytearray(SCRATCH_BYTES)
        self._scratch_view = memoryview(self._scratch)
        self._scratch_len = 0
        self._frame: bytearray | None = None  # a large frame being filled in place
        self._frame_have = 0
        self._pending: collections.deque = collections.deque()
        self._pending_changed = asyncio.Event()
        self._reading = True
        self._read_paused = False
        self._writer: SocketWriter | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._sender: asyncio.Task | None = None

    # -- asyncio protocol callbacks -------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._writer = SocketWriter(transport.get_extra_info("socket").fileno())
        self._sender = asyncio.ensure_future(self._send_responses())

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._frame is not None:
            return memoryview(self._frame)[self._frame_have:]
        return self._scratch_view[self._scratch_len:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._frame is not None:
            self._frame_have += nbytes
            if self._frame_have == len(self._frame):
                frame, self._frame = self._frame, None
                self._deliver(frame, pooled=True)
            return
        self._scratch_len += nbytes
        self._split_scratch()

    def eof_received(self) -> bool:
        self.stop_reading()
        return True  # keep the transport open until the responses are written

    def connection_lost(self, exc) -> None:
        self._reading = False
        self._pending_changed.set()
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
        if self._writer is not None:
            self._writer.close()
        self._cancel_pending()
        if not self.closed.done():
            self.closed.set_result(None)
        if self.on_closed is not None:
            self.on_closed(self)

    # -- reading -------------------------------------------------------------------

    def _split_scratch(self) -> None:
        """Cut whole frames out of the scratch buffer; start filling a large one in place.

        Bytes move through views of the scratch: each is copied once, into its frame."""
        view, start, end = self._scratch_view, 0, self._scratch_len
        while self._reading and end - start >= 4:
            size = int.from_bytes(view[start:start + 4], "big", signed=True)
            if size < MIN_FRAME or size > self.max_request_bytes:
                log.warning("closing connection from %s: frame size %d is outside [%d, %d] "
                            "(socket.request.max.bytes)", self.peer, size, MIN_FRAME, self.max_request_bytes)
                self._hang_up()
                return
            available = end - start - 4
            if available >= size:
                self._deliver(bytearray(view[start + 4:start + 4 + size]))
                start += 4 + size
                continue
            if size > SCRATCH_BYTES - 4:
                self._frame = self.frame_pool.take(size)
                self._frame[:available] = view[start + 4:end]
                self._frame_have = available
                start = end
            break
        if start:
            remaining = end - start
            view[:remaining] = view[start:end]  # memoryview copies overlapping ranges safely
            self._scratch_len = remaining

    def _deliver(self, frame: bytearray, pooled: bool = False) -> None:
        if not self._reading:
            return
        try:
            work = self.dispatcher.begin(frame, self)
        except UnreadableRequest as exc:
            log.warning("closing connection from %s: %s", self.peer, exc)
            self._hang_up()
            return
        task = asyncio.ensure_future(work)
        if pooled:
            task.add_done_callback(lambda _: self.frame_pool.give(frame))
        self._pending.append(task)
        self._pending_changed.set()
        if len(self._pending) >= MAX_IN_FLIGHT and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()

    def stop_reading(self) -> None:
        """Read no further requests; those already read are still answered, then close."""
        if self._reading:
            self._reading = False
            self._pending_changed.set()
            if self.transport is not None and not self.transport.is_closing():
                with contextlib.suppress(RuntimeError, AttributeError):
                    self.transport.pause_reading()

    def _hang_up(self) -> None:
        self._reading = False
        self._pending_changed.set()
        self.transport.abort()

    # -- writing -------------------------------------------------------------------

    async def _send_responses(self) -> None:
        """Write responses in request order; close once reading stopped and all are sent."""
        while True:
            while not self._pending:
                if not self._reading:
                    self.transport.close()
                    return
                self._pending_changed.clear()
                await self._pending_changed.wait()
            task = self._pending[0]
            try:
                answer = await task
            except UnreadableRequest as exc:
                log.warning("closing connection from %s: %s", self.peer, exc)
                self._hang_up()
                return
            finally:
                if self._pending and self._pending[0] is task:  # a lost connection already emptied it
                    self._pending.popleft()
                if self._read_paused and len(self._pending) < MAX_IN_FLIGHT // 2 and self._reading:
                    self._read_paused = False
                    self.transport.resume_reading()
            try:
                if answer.parts is not None:
                    await self._writer.write(answer.parts)
            except OSError as exc:
                log.info("connection to %s lost while answering: %s", self.peer, exc)
                self.transport.abort()
                return
            finally:
                if answer.parts:
                    close_regions(answer.parts)
                answer.run_after_response()

    def _cancel_pending(self) -> None:
        while self._pending:
            task = self._pending.popleft()
            if task.done() and not task.cancelled() and task.exception() is None:
                answer = task.result()
                if answer.parts:
                    close_regions(answer.parts)
                answer.run_after_response()
            task.cancel()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def close_regions(parts: list) -> None:
    for part in parts:
        if isinstance(part, FileRegion):
            with contextlib.suppress(OSError):
                os.close(part.fd)
