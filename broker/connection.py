"""One client connection: read frames, handle them concurrently, answer in order.

Kafka clients pipeline requests and expect responses in request order on each
connection. The reader starts a task per request as soon as its frame is read
(so a long-polling Fetch does not stall the Produce behind it from being
*handled*), and a single sender writes the results strictly in arrival order.
At most `MAX_IN_FLIGHT` requests are outstanding per connection; the reader
stops reading when that many wait, which back-pressures a fast producer.

A frame whose size is negative, tiny or beyond `socket.request.max.bytes`, or
whose header cannot be read, closes the connection (as Kafka does); everything
else gets a Kafka error response and the connection stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from .dispatch import Dispatcher, UnreadableRequest
from .protocol.primitives import FileRegion

log = logging.getLogger("broker.connection")

MAX_IN_FLIGHT = 64
# Smallest frame with a request header: api_key, api_version, correlation_id, client_id length.
MIN_FRAME = 10


class Connection:
    """Owned by the server's connection task; not shared between tasks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 dispatcher: Dispatcher, max_request_bytes: int):
        self.reader = reader
        self.writer = writer
        self.dispatcher = dispatcher
        self.max_request_bytes = max_request_bytes
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._pending: asyncio.Queue = asyncio.Queue(MAX_IN_FLIGHT)
        self._reading: asyncio.Task | None = None

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_responses(), name=f"send-{self.peer}")
        self._reading = asyncio.create_task(self._read_requests(), name=f"read-{self.peer}")
        try:
            try:
                await self._reading
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise  # forced: the server is cutting this connection
            await self._pending.put(None)
            await sender
        finally:
            if not sender.done():
                sender.cancel()
                self._abort()
                self._cancel_pending()
            await self._close()

    def _cancel_pending(self) -> None:
        while not self._pending.empty():
            task = self._pending.get_nowait()
            if task is None:
                continue
            if task.done() and not task.cancelled() and task.exception() is None and task.result():
                _close_regions(task.result())
            task.cancel()

    def stop_reading(self) -> None:
        """Read no further requests; those already read are still answered."""
        if self._reading is not None:
            self._reading.cancel()

    async def _read_requests(self) -> None:
        while True:
            try:
                prefix = await self.reader.readexactly(4)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            size = int.from_bytes(prefix, "big", signed=True)
            if size < MIN_FRAME or size > self.max_request_bytes:
                log.warning("closing connection from %s: frame size %d is outside [%d, %d] "
                            "(socket.request.max.bytes)", self.peer, size, MIN_FRAME,
                            self.max_request_bytes)
                return
            try:
                frame = await self.reader.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            try:
                work = self.dispatcher.begin(frame, self)
            except UnreadableRequest as exc:
                log.warning("closing connection from %s: %s", self.peer, exc)
                return
            await self._pending.put(asyncio.ensure_future(work))

    async def _send_responses(self) -> None:
        """Write responses in request order; after a write error, keep draining tasks."""
        broken = False
        while True:
            task = await self._pending.get()
            if task is None:
                return
            try:
                parts = await task
            except UnreadableRequest as exc:
                log.warning("closing connection from %s: %s", self.peer, exc)
                parts, broken = None, True
                self._abort()
            except Exception:  # the dispatcher already turned handler errors into responses
                log.exception("unexpected failure answering %s", self.peer)
                parts, broken = None, True
                self._abort()
            if parts is None:
                continue
            if broken:
                _close_regions(parts)
                continue
            try:
                await self._write(parts)
            except (ConnectionError, OSError, RuntimeError):
                broken = True
                self._abort()

    async def _write(self, parts: list) -> None:
        loop = asyncio.get_running_loop()
        try:
            for index, part in enumerate(parts):
                if isinstance(part, FileRegion):
                    await self.writer.drain()
                    with open(part.fd, "rb", buffering=0, closefd=True) as file:
                        parts[index] = None  # ownership moved to `file`
                        await loop.sendfile(self.writer.transport, file, part.offset, part.size)
                else:
                    self.writer.write(part)
            await self.writer.drain()
        finally:
            _close_regions(parts)

    def _abort(self) -> None:
        self.writer.transport.abort()
        self.reader.feed_eof()

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await self.writer.wait_closed()


def _close_regions(parts: list) -> None:
    for part in parts:
        if isinstance(part, FileRegion):
            with contextlib.suppress(OSError):
                os.close(part.fd)
