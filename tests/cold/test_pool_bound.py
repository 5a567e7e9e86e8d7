"""The cold-read pool is a hard memory cap: four consumers replay four remote-only
topics at once through a broker whose pool is capped at 4 MiB; every record
arrives, and the broker process's peak memory grows by no more than the cap
plus a fixed margin, while it reads ~10x that much data from the bucket.

Memory is measured from outside, on the broker process: its resident set
(VmRSS) just before the cold reads is the baseline, the peak is VmHWM after
resetting it (writing 5 to /proc/<pid>/clear_refs) and, in case that reset is
not permitted, the highest VmRSS sampled every 10 ms while the consumers run.

The margin, and why it is fixed (independent of how much is read):
- responses in flight: each consumer has one Fetch outstanding, capped at
  FETCH_MAX_BYTES (256 KiB); the cold bytes are held about four times (the
  reader's bytearray, its bytes() copy, the encoded frame, the transport's
  write buffer if the client lags): 4 consumers x 4 x 256 KiB = 4 MiB;
- object-store I/O: at most remote.log.reader.threads (10) GETs and a few
  prefetches stream at once through aiohttp buffers of ~2 x 64 KiB: ~2 MiB;
- worker threads (asyncio's default executor, 6 on 2 cores) that verify and
  decompress chunks: their stacks, glibc per-thread arenas, zstd contexts:
  ~6 MiB;
- Python and glibc allocator slack (freed blocks kept in arenas, size-class
  fragmentation): ~4 MiB.
That sums to 16 MiB. A broker that cached what it read instead of capping it
would grow by about READ_BYTES (40 MiB, more than cap + margin).
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

MiB = 1 << 20
POOL_BYTES = 4 * MiB
SLAB_BYTES = 128 * 1024
CHUNK_BYTES = 128 * 1024  # decoded chunk = one slab; with its stored form, two
SEGMENT_BYTES = 2 * MiB
TOPICS = 4
BYTES_PER_TOPIC = 10 * MiB
READ_BYTES = TOPICS * BYTES_PER_TOPIC
FETCH_MAX_BYTES = 256 * 1024
MARGIN = 16 * MiB  # see the module docstring


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not permitted here."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = _status_kib(pid, "VmRSS")
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak_kib = max(self.peak_kib, _status_kib(self.pid, "VmRSS"))
            self.samples += 1
            self._halt.wait(0.01)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak_kib


def _consume(bootstrap: str, topic: str, end: int, out: dict, timeout: float = 120) -> None:
    """Every record of partition 0 from the beginning to `end`, by confluent-kafka with
    small fetches; stores (offsets in order?, digest list) or the exception in `out`."""
    import hashlib

    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    try:
        consumer = Consumer({
            "group.id": f"unused-{uuid.uuid4().hex[:8]}", "bootstrap.servers": bootstrap,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "fetch.max.bytes": FETCH_MAX_BYTES, "max.partition.fetch.bytes": FETCH_MAX_BYTES,
            "message.max.bytes": FETCH_MAX_BYTES,
            # Keep the client's own prefetch queue small too (not that it costs the broker).
            "queued.max.messages.kbytes": 1024,
        })
        got = []
        try:
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            deadline = time.monotonic() + timeout
            while (not got or got[-1][0] + 1 < end) and time.monotonic() < deadline:
                for m in consumer.consume(num_messages=1000, timeout=0.5):
                    if m.error() is not None:
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            raise AssertionError(f"{topic}: {m.error()}")
                        continue
                    got.append((m.offset(), m.key(), hashlib.sha1(m.value()).digest()))
        finally:
            consumer.close()
        out[topic] = got
    except BaseException as exc:  # reported by the test thread
        out[topic] = exc


@pytest.fixture
def capped_broker(moto_server, start_cold_broker, cold):
    broker = start_cold_broker(moto=moto_server, overrides={
        "remote.log.reader.buffer.pool.bytes": str(POOL_BYTES),
        "remote.log.reader.buffer.slab.bytes": str(SLAB_BYTES),
    })
    produced = {}
    for i in range(TOPICS):
        topic = f"capped-{i}"
        broker.create_topic(topic, cold.topic_configs("zstd", segment_bytes=SEGMENT_BYTES,
                                                      chunk_bytes=CHUNK_BYTES))
        produced[topic] = broker.produce(topic, 0, BYTES_PER_TOPIC, value_bytes=(2000, 9000),
                                         request_bytes=512 * 1024)
    offsets = {topic: broker.wait_until_remote_only(topic, share=0.7, timeout=120)[0] for topic in produced}
    return broker, produced, offsets


def test_concurrent_cold_consumers_stay_within_the_pool_cap(capped_broker, cold):
    broker, produced, offsets = capped_broker
    assert READ_BYTES >= 2 * (POOL_BYTES + MARGIN)  # an uncapped broker would fail the bound

    # Warm-up: one short cold read, so the first-use costs (code paths, worker threads,
    # decompressor contexts, the S3 client's read path) are in the baseline.
    first = produced["capped-0"]
    broker.replay("capped-0", 0, 0, 50)

    pid = broker.pid
    baseline_kib = _status_kib(pid, "VmRSS")
    hwm_reset = _reset_peak(pid)
    sampler = RssSampler(pid)
    sampler.start()
    results: dict = {}
    consumers = [threading.Thread(target=_consume, args=(broker.bootstrap, topic, offsets[topic][cold.LATEST],
                                                          results))
                 for topic in produced]
    for t in consumers:
        t.start()
    for t in consumers:
        t.join()
    sampled_peak_kib = sampler.stop()
    peak_kib = max(sampled_peak_kib, _status_kib(pid, "VmHWM") if hwm_reset else 0)

    for topic, records in produced.items():
        got = results[topic]
        if isinstance(got, BaseException):
            raise got
        want = [r.digest() for r in records]
        assert [g[0] for g in got] == list(range(len(want))), f"{topic}: offsets not exact"
        assert got == [(w[0], w[1], w[2]) for w in want], f"{topic}: records differ"
        assert offsets[topic][cold.EARLIEST_LOCAL] > 0.7 * len(records)

    growth = (peak_kib - baseline_kib) * 1024
    metrics = broker.metrics()
    remote_bytes = sum(metrics.get("tierbroker_remote_fetch_bytes_total", topic=t) for t in produced)
    assert remote_bytes >= 0.7 * READ_BYTES - len(first), remote_bytes  # the reads were cold
    assert metrics.get("tierbroker_remote_pool_bytes_in_use") <= POOL_BYTES
    assert growth <= POOL_BYTES + MARGIN, (
        f"broker RSS grew by {growth / MiB:.1f} MiB (baseline {baseline_kib / 1024:.1f} MiB, peak "
        f"{peak_kib / 1024:.1f} MiB, {sampler.samples} samples, VmHWM reset: {hwm_reset}) while reading "
        f"{remote_bytes / MiB:.1f} MiB cold: more than the {POOL_BYTES / MiB:.0f} MiB pool + "
        f"{MARGIN / MiB:.0f} MiB margin")
    print(f"\ncold replay of {remote_bytes / MiB:.1f} MiB by {TOPICS} consumers: broker RSS "
          f"{baseline_kib / 1024:.1f} -> peak {peak_kib / 1024:.1f} MiB (+{growth / MiB:.1f} MiB; "
          f"bound {(POOL_BYTES + MARGIN) / MiB:.0f} MiB); pool waits "
          f"{metrics.get('tierbroker_remote_pool_waits_total'):.0f}, exhausted "
          f"{metrics.get('tierbroker_remote_pool_exhausted_total'):.0f}, prefetch hits "
          f"{metrics.get('tierbroker_remote_prefetch_hits_total'):.0f}, wasted "
          f"{metrics.get('tierbroker_remote_prefetch_wasted_total'):.0f}, misses {metrics.get('tierbroker_remote_prefetch_misses_total'):.0f}, gets {metrics.total('tierbroker_remote_get_requests_total'):.0f}, reads {metrics.total('tierbroker_remote_fetch_requests_total'):.0f}")
