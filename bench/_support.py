"""Shared pieces of the benchmarks: a broker process, a raw TCP baseline, a table."""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.broker import BrokerProcess  # noqa: E402

CHUNK = 1 << 20


def start_broker(overrides: dict[str, str] | None = None, data_dir: Path | None = None) -> BrokerProcess:
    data = Path(tempfile.mkdtemp(prefix="tierbroker-bench-", dir=data_dir))
    return BrokerProcess(data, overrides).start()


def warm_memory(directory: Path, nbytes: int) -> None:
    """Write and delete `nbytes` of file data in `directory`.

    On virtual machines the first touch of guest memory is slow (here ~250 MB/s,
    against ~3.5 GB/s once touched): a broker that has run for a while writes
    into recycled page-cache pages, so the benchmark warms up the same way
    before measuring anything, baseline included.
    """
    path = directory / "warm-up.tmp"
    chunk = b"w" * CHUNK
    with open(path, "wb", buffering=0) as f:
        for _ in range(nbytes // CHUNK):
            f.write(chunk)
    path.unlink()


def raw_tcp_mb_per_s(total_bytes: int) -> float:
    """Bulk transfer over loopback between two plain blocking sockets (1 MiB writes,
    recv_into a reused 1 MiB buffer): the ceiling any broker on this host works under."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received = [0]

    def receive() -> None:
        conn, _ = listener.accept()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        with conn:
            while True:
                n = conn.recv_into(view)
                if not n:
                    return
                received[0] += n

    thread = threading.Thread(target=receive)
    thread.start()
    payload = b"x" * CHUNK
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        sent = 0
        while sent < total_bytes:
            s.sendall(payload)
            sent += CHUNK
    thread.join()
    elapsed = time.perf_counter() - started
    listener.close()
    return received[0] / elapsed / 1e6


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))
