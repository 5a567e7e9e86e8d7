"""`socket.send.buffer.bytes` / `socket.receive.buffer.bytes` reach accepted sockets."""

from __future__ import annotations

import asyncio
import socket

from broker.config import BrokerConfig
from broker.server import apply_socket_buffers


async def _accepted_buffer_sizes(send_bytes: int, receive_bytes: int) -> tuple[int, int, int, int]:
    """(sndbuf, rcvbuf) of a connection accepted by a server with the sizes applied,
    then of one accepted by a server left alone."""
    sizes = []
    for apply in (True, False):
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()

        async def on_client(reader, writer, accepted=accepted):
            sock = writer.get_extra_info("socket")
            accepted.set_result((sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                                 sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)))
            writer.close()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        if apply:
            apply_socket_buffers(server, send_bytes, receive_bytes)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        sizes.extend(await asyncio.wait_for(accepted, 10))
        writer.close()
        server.close()
        await server.wait_closed()
    return tuple(sizes)


def test_configured_sizes_are_set_on_accepted_connections():
    snd, rcv, default_snd, default_rcv = asyncio.run(_accepted_buffer_sizes(65536, 131072))
    # Linux doubles the requested size to leave room for its bookkeeping.
    assert (snd, rcv) == (2 * 65536, 2 * 131072)
    assert (snd, rcv) != (default_snd, default_rcv)


def test_minus_one_keeps_the_kernel_defaults():
    snd, rcv, default_snd, default_rcv = asyncio.run(_accepted_buffer_sizes(-1, -1))
    assert (snd, rcv) == (default_snd, default_rcv)


def test_default_is_auto_tuning():
    config = BrokerConfig({})
    assert config.get("socket.send.buffer.bytes") == -1
    assert config.get("socket.receive.buffer.bytes") == -1
