"""Helpers for the local-log tests: build real batches, append them, read them back."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))

from record_batches import batch_of_size, build_batch  # noqa: E402

from broker.log import PartitionLog  # noqa: E402
from broker.protocol.records import scan_batches, validate_batches  # noqa: E402

NOW = 1_700_000_000_000

__all__ = [
    "NOW",
    "append",
    "append_sized",
    "batch_of_size",
    "build_batch",
    "crash",
    "file_position",
    "read_all",
    "read_headers",
    "region_bytes",
]


def append(log: PartitionLog, raw: bytes, now_ms: int = NOW):
    buf = bytearray(raw)
    return log.append(buf, validate_batches(buf), now_ms)


def append_sized(log: PartitionLog, size: int, *, timestamp: int = NOW, count: int = 1, now_ms: int = NOW):
    return append(log, batch_of_size(size, timestamp=timestamp, count=count), now_ms)


def region_bytes(records) -> bytes:
    """The bytes a ReadResult's records stand for; closes the FileRegion's fd."""
    if records is None or isinstance(records, (bytes, bytearray)):
        return bytes(records or b"")
    try:
        return os.pread(records.fd, records.size, records.offset)
    finally:
        os.close(records.fd)


def read_headers(log: PartitionLog, offset: int, max_bytes: int = 1 << 30, **kwargs):
    data = region_bytes(log.read(offset, max_bytes, **kwargs).records)
    result = scan_batches(data)
    assert result.error is None, result.error
    return result.headers


def read_all(log: PartitionLog):
    """Every batch header from log start to log end, following segments."""
    headers = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        batch_headers = read_headers(log, offset)
        assert batch_headers, f"no data at offset {offset}"
        headers.extend(batch_headers)
        offset = batch_headers[-1].next_offset
    return headers


def crash(log: PartitionLog) -> None:
    """Abandon `log` as a SIGKILL would: no index write, no fsync, no checkpoint, no marker."""
    for segment in log._segments:
        segment.close()
    log._closed = True


def file_position(log: PartitionLog, offset: int) -> tuple[int, int]:
    """(byte position in its segment file, size) of the batch holding `offset`."""
    region = log.read(offset, 1).records
    os.close(region.fd)
    return region.offset, region.size
