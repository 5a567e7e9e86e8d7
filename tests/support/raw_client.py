"""A blocking Kafka protocol client built on the project's own codec.

For tests that need exact control of what goes on the wire (bad frames,
corrupt batches, specific API versions) — the real client libraries are used
for everything else.
"""

from __future__ import annotations

import socket
import struct

from broker.protocol.framing import decode_response, encode_request
from broker.protocol.messages import BY_NAME


class RawClient:
    """One connection. With `reuse_buffer`, every response is read into one buffer
    kept for the connection's life (as librdkafka reads), and what `request` and
    `read_frame` return refers into it: valid until the next response is read.
    Without, each response is fresh bytes."""

    def __init__(self, bootstrap: str, timeout: float = 10.0, *, reuse_buffer: bool = False):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation_id = 0
        self._buffer = bytearray() if reuse_buffer else None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes | memoryview:
        size = struct.unpack(">i", self._read_exactly(4))[0]
        if self._buffer is None:
            return self._read_exactly(size)
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        view = memoryview(self._buffer)[:size]
        got = 0
        while got < size:
            n = self.sock.recv_into(view[got:])
            if not n:
                raise ConnectionError("broker closed the connection")
            got += n
        return view

    def _read_exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("broker closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def request(self, api: str, version: int, body: dict):
        schema = BY_NAME[api]
        self.correlation_id += 1
        self.send_raw(encode_request(schema, version, self.correlation_id, "raw-test", body))
        correlation_id, response = decode_response(schema, version, self.read_frame())
        assert correlation_id == self.correlation_id
        return response
