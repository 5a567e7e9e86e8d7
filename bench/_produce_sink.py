"""The producer's own ceiling: a stand-in broker that answers Produce requests
and does nothing else with them.

Each Produce request is read into one reused buffer, decoded, and acknowledged
(offset 0 for every partition): no CRC check, no write. Every other request
(ApiVersions, Metadata, ...) is passed to a real broker that advertises the
sink's address, so clients find their way back here. Producing through the sink
measures what the client library itself costs on this host, which no broker can
beat: on a 2-core machine the client and the broker share the CPUs.

The sink runs in its own process, as a broker does. In the benchmark's process
it would share a GIL with the producer's loop: measured side by side (eight
runs each, alternating), that sink's median was 1144 MB/s against 1343 MB/s
for one in its own process, which was faster in seven of the eight pairs.

    python3 bench/_produce_sink.py --port P --upstream U

One thread per connection, requests answered one at a time, in order. It prints
"ready" once it listens.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading

from _support import free_port  # first: it puts the repository on sys.path

from broker.protocol.framing import encode_response, parse_request
from broker.protocol.messages import SCHEMAS

PRODUCE = 0


class SinkProcess:
    """The sink in a child process, on a port fixed up front so that the upstream
    broker can advertise it before the sink starts."""

    def __init__(self) -> None:
        self.port = free_port()
        self._proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def listener(self) -> str:
        """The advertised.listeners value the upstream broker must use."""
        return f"PLAINTEXT://127.0.0.1:{self.port}"

    def start(self, upstream_port: int) -> None:
        command = [sys.executable, __file__, "--port", str(self.port), "--upstream", str(upstream_port)]
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        if self._proc.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError(f"produce sink on port {self.port} did not start")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc.stdout.close()
            self._proc = None


def serve(client: socket.socket, upstream_port: int) -> None:
    buffer = bytearray(1 << 20)
    with client, socket.create_connection(("127.0.0.1", upstream_port)) as upstream:
        try:
            while True:
                size = int.from_bytes(_read(client, bytearray(4)), "big")
                if size > len(buffer):
                    buffer = bytearray(size)
                frame = memoryview(buffer)[:size]
                _read(client, frame)
                request = parse_request(frame)
                if request.header.api_key == PRODUCE:
                    response = _acknowledge(request)
                else:
                    upstream.sendall(size.to_bytes(4, "big") + frame)
                    length = _read(upstream, bytearray(4))
                    response = [length, _read(upstream, bytearray(int.from_bytes(length, "big")))]
                if response:
                    client.sendall(b"".join(bytes(part) for part in response))
        except (EOFError, OSError):
            return


def _acknowledge(request) -> list | None:
    header = request.header
    body = SCHEMAS[PRODUCE].decode_request(request.body_reader, header.api_version)
    if body.acks == 0:
        return None
    answer = {"responses": [
        {"name": topic.name, "partition_responses": [
            {"index": p.index, "base_offset": 0, "log_append_time_ms": -1, "log_start_offset": 0}
            for p in topic.partition_data]}
        for topic in body.topic_data]}
    return encode_response(SCHEMAS[PRODUCE], header.api_version, header.correlation_id, answer)


def _read(sock: socket.socket, buffer) -> bytearray | memoryview:
    view = memoryview(buffer)
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if not n:
            raise EOFError
        got += n
    return buffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True, help="port of the broker that answers the rest")
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", args.port))
    print("ready", flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, args.upstream), daemon=True).start()


if __name__ == "__main__":
    main()
