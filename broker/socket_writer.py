"""Write a connection's responses straight to its socket: bytes with `writev`,
file regions with `sendfile`.

The transport only reads; every response byte leaves through this writer, in
the order `write` is called, so nothing buffered in the transport can be
overtaken by a file region. That is what lets a file region go out by
`sendfile` on any event loop: uvloop has no `loop.sendfile`, and the standard
loop's pauses reading and waits for the transport to flush first.

The writer owns a duplicate of the socket's descriptor. It writes only on that
duplicate, so it never touches a descriptor number the event loop has closed
(and may have handed to another file). When the socket is full it waits for
the duplicate to become writable; `close` stops the watch and closes the
duplicate, after which the socket is gone once the transport closes too.

Not thread-safe: one writer per connection, used from the event loop by one
coroutine at a time.
"""

from __future__ import annotations

import asyncio
import os

from .protocol.primitives import FileRegion

# Buffers per writev call; Linux's IOV_MAX is 1024.
MAX_BUFFERS = 1024


class SocketWriter:
    def __init__(self, sock_fd: int):
        self._fd = os.dup(sock_fd)  # shares the socket's O_NONBLOCK with the transport
        self._room: asyncio.Future | None = None  # set while waiting for room on the socket
        self._loop = asyncio.get_running_loop()

    async def write(self, parts: list) -> None:
        """Send `parts` (bytes-like objects and `FileRegion`s) in order, whole.

        Raises OSError when the peer is gone or a file region ends early, and
        ConnectionResetError once the writer is closed."""
        buffers: list = []
        for part in parts:
            if isinstance(part, FileRegion):
                await self._send_buffers(buffers)
                buffers = []
                await self._send_file(part)
            elif len(part):
                buffers.append(part)
        await self._send_buffers(buffers)

    def close(self) -> None:
        """Close the duplicate; a `write` waiting for room fails at once with
        ConnectionResetError, as does any later one."""
        if self._fd < 0:
            return
        room = self._room
        self._stop_watching()
        os.close(self._fd)
        self._fd = -1
        if room is not None and not room.done():
            room.set_exception(ConnectionResetError("the connection's writer is closed"))

    async def _send_buffers(self, buffers: list) -> None:
        views = [memoryview(b).cast("B") for b in buffers]
        while views:
            try:
                sent = os.writev(self._checked_fd(), views[:MAX_BUFFERS])
            except BlockingIOError:
                await self._writable()
                continue
            while views and sent >= len(views[0]):
                sent -= len(views.pop(0))
            if sent:
                views[0] = views[0][sent:]

    async def _send_file(self, region: FileRegion) -> None:
        offset, remaining = region.offset, region.size
        while remaining:
            try:
                sent = os.sendfile(self._checked_fd(), region.fd, offset, remaining)
            except BlockingIOError:
                await self._writable()
                continue
            if sent == 0:
                # The response's size is already on the wire: a short region cannot be answered.
                raise OSError(f"file region ended {remaining} bytes early")
            offset += sent
            remaining -= sent

    def _checked_fd(self) -> int:
        if self._fd < 0:
            raise ConnectionResetError("the connection's writer is closed")
        return self._fd

    async def _writable(self) -> None:
        room = self._room = self._loop.create_future()
        self._loop.add_writer(self._checked_fd(), _set_once, room)
        try:
            await room
        finally:
            self._stop_watching()

    def _stop_watching(self) -> None:
        if self._room is not None:
            self._room = None
            self._loop.remove_writer(self._fd)


def _set_once(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
