"""Cold reads: a sequential consumer replaying a topic that only the bucket holds,
with prefetch on and off, beside raw ranged GETs of the same chunks from the same
moto server, measured in the same run.

    python bench/cold_read.py [--mib 512] [--segment-mib 16] [--chunk-mib 4] [--partitions 4]

Method. One broker and one moto S3 server (separate processes). A topic with
`local.retention.bytes=0` is produced and left until every closed segment is
uploaded and deleted locally; the data below each partition's local log start
(ListOffsets -4) is then remote-only. The consumer is confluent-kafka
(librdkafka) with its default fetch sizes, assigned to every partition from
offset 0; a partition is paused once it has read up to its local log start, and
the clock stops when all have. After the remote-only part each partition has a
local tail (copying switched off) larger than librdkafka's read-ahead, so no
Fetch of the run reaches the log end and long-polls. The broker is restarted between the two runs
(flipping `remote.log.reader.prefetch.enable`), so each starts with an empty
chunk cache.

Baseline: raw aiobotocore ranged GETs of exactly the chunk ranges the .meta
objects list, in offset order, one GET at a time per partition and all
partitions at once, each read into a reused buffer. It runs right before each
consumer run; the faster of the two is the baseline (the stricter comparison).

Latency is the broker's own: p50/p99 from the histogram deltas over each
consumer run, linearly interpolated inside the buckets (as Prometheus'
histogram_quantile does, so only as fine as the buckets):
`tierbroker_request_latency_seconds{api="Fetch"}` is the whole Fetch request as
the client sees it (a cold read that misses the request's max wait ends empty
and is still counted); `tierbroker_remote_fetch_latency_seconds` is each
partition's remote read alone (reads cut off at the max wait are not observed).

Targets: with prefetch, cold consume >= 70% of raw ranged-GET throughput; p99
Fetch latency with prefetch <= 1/3 of without.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _support import (
    MotoProcess,
    bucket_delta,
    create_topic,
    histogram_buckets,
    histogram_quantile,
    list_offsets,
    local_log_start_offsets,
    metric_sum,
    print_table,
    produce_bytes,
    scrape_metrics,
    set_topic_configs,
    start_broker,
    warm_memory,
)
from confluent_kafka import Consumer, TopicPartition

from remote_index.keys import parse_segment_key
from remote_index.segment_format import SegmentMeta
from tests.support.broker import free_port

FETCH_LATENCY = "tierbroker_request_latency_seconds"
REMOTE_LATENCY = "tierbroker_remote_fetch_latency_seconds"
THROUGHPUT_TARGET = 0.70
P99_TARGET = 1 / 3


class RemoteLayout:
    """The chunk ranges of every remote segment, per partition, in offset order."""

    def __init__(self, moto: MotoProcess, bucket: str, prefix: str, partitions: int):
        self.ranges: dict[int, list[tuple[str, int, int]]] = {}  # partition -> (key, start, end)
        self.segment_bytes = 0
        self.object_bytes = 0
        self.chunks = 0

        async def load() -> None:
            async with moto.raw_client() as client:
                keys = []
                async for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                    keys += [obj["Key"] for obj in page.get("Contents", ())]
                for key in sorted(keys):
                    parsed = parse_segment_key(key)
                    if parsed is None or parsed.kind != "meta":
                        continue
                    partition = int(key.split("/")[-3])
                    resp = await client.get_object(Bucket=bucket, Key=key)
                    async with resp["Body"] as body:
                        meta = SegmentMeta.from_bytes(await body.read(), key=key)
                    data_key = key.removesuffix(".meta") + ".log"
                    self.segment_bytes += meta.size_bytes
                    self.object_bytes += meta.object_bytes
                    for chunk in meta.chunks:
                        self.ranges.setdefault(partition, []).append(
                            (data_key, chunk.object_offset, chunk.object_end))
                        self.chunks += 1

        asyncio.run(load())
        if sorted(self.ranges) != list(range(partitions)):
            raise RuntimeError(f"remote segments found for partitions {sorted(self.ranges)} only")


def raw_get_mb_per_s(moto: MotoProcess, bucket: str, layout: RemoteLayout) -> float:
    """Every chunk range once: partitions in parallel, each one GET after another."""

    async def run() -> float:
        async with moto.raw_client() as client:
            largest = max(end - start for ranges in layout.ranges.values() for _, start, end in ranges)

            async def partition(ranges) -> None:
                buffer = memoryview(bytearray(largest))
                for key, start, end in ranges:
                    resp = await client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
                    n = 0
                    async with resp["Body"] as body:
                        while n < end - start:
                            got = await body.readinto(buffer[n:end - start])
                            if not got:
                                raise RuntimeError(f"short read of {key} [{start}, {end})")
                            n += got

            await client.head_bucket(Bucket=bucket)  # connect before the clock starts
            started = time.perf_counter()
            await asyncio.gather(*(partition(r) for r in layout.ranges.values()))
            return layout.object_bytes / (time.perf_counter() - started) / 1e6

    return asyncio.run(run())


def consume_cold(bootstrap: str, topic: str, ends: list[int], metrics_port: int) -> dict:
    """Read every partition from offset 0 up to `ends` (exclusive); MB/s is computed by
    the caller from the remote bytes. Returns timings and the latency histogram deltas."""
    before = scrape_metrics(metrics_port)
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-cold-{time.time_ns()}",
        "enable.auto.commit": False, "auto.offset.reset": "error",
    })
    partitions = [TopicPartition(topic, p, 0) for p in range(len(ends))]
    done = [end <= 0 for end in ends]
    records = 0
    started = time.perf_counter()
    consumer.assign(partitions)
    try:
        while not all(done):
            for msg in consumer.consume(500, timeout=5):
                if msg.error():
                    raise RuntimeError(f"consumer error: {msg.error()}")
                p = msg.partition()
                if done[p]:
                    continue
                records += 1
                if msg.offset() >= ends[p] - 1:
                    done[p] = True
                    consumer.pause([TopicPartition(topic, p)])
            if time.perf_counter() - started > 600:
                raise RuntimeError("cold consume did not finish in 600 s")
        elapsed = time.perf_counter() - started
    finally:
        consumer.close()
    after = scrape_metrics(metrics_port)

    def quantiles(name: str, **labels: str) -> tuple[float, float, float]:
        delta = bucket_delta(histogram_buckets(after, name, **labels), histogram_buckets(before, name, **labels))
        return histogram_quantile(delta, 0.5), histogram_quantile(delta, 0.99), delta[-1][1] if delta else 0

    def counter(name: str) -> float:
        return metric_sum(after, name) - metric_sum(before, name)

    return {
        "seconds": elapsed, "records": records,
        "fetch": quantiles(FETCH_LATENCY, api="Fetch"),
        "remote": quantiles(REMOTE_LATENCY),
        "gets": counter("tierbroker_remote_get_requests_total"),
        "prefetch_hits": counter("tierbroker_remote_prefetch_hits_total"),
        "prefetch_wasted": counter("tierbroker_remote_prefetch_wasted_total"),
        "pool_exhausted": counter("tierbroker_remote_pool_exhausted_total"),
    }


def wait_remote_only(broker, topic: str, metrics_port: int, timeout: float = 300) -> None:
    """Until every closed segment is uploaded and deleted locally (counters stable)."""
    deadline = time.monotonic() + timeout
    stable, last = 0, None
    while time.monotonic() < deadline:
        samples = scrape_metrics(metrics_port)
        state = (metric_sum(samples, "tierbroker_remote_upload_segments_total", topic=topic),
                 metric_sum(samples, "tierbroker_remote_local_deleted_segments_total", topic=topic),
                 metric_sum(samples, "tierbroker_remote_copy_lag_bytes", topic=topic))
        uploaded, deleted, lag = state
        stable = stable + 1 if state == last and uploaded > 0 and uploaded == deleted and lag == 0 else 0
        last = state
        if stable >= 3:
            return
        time.sleep(0.3)
    raise RuntimeError(f"{topic} never became remote-only (uploaded, locally deleted, lag) = {last}")


def wait_servable(bootstrap: str, topic: str, partitions: int, timeout: float = 60) -> None:
    """After a restart: until the manifests are loaded and the earliest offset is 0 again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list_offsets(bootstrap, topic, partitions, -2) == [0] * partitions:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{topic}: remote data not servable {timeout:.0f} s after the restart")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="data produced, MiB")
    parser.add_argument("--segment-mib", type=int, default=16, help="segment.bytes, MiB")
    parser.add_argument("--chunk-mib", type=int, default=4, help="remote.storage.chunk.bytes, MiB")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--tail-mib", type=int, default=256, help="local data after the remote-only part, "
                        "MiB: more than librdkafka's 64 MiB run-ahead per partition")
    args = parser.parse_args()
    topic = "cold"
    prefix = f"bench-cold-{time.time_ns()}"

    moto = MotoProcess().start()
    broker = None
    runs = {}
    try:
        bucket = moto.create_bucket("bench-cold")
        with tempfile.TemporaryDirectory(prefix="tierbroker-warm-") as warm_dir:
            warm_memory(Path(warm_dir), 2 * (args.mib << 20))
        metrics_port = free_port()
        broker = start_broker({
            **moto.broker_overrides(bucket, prefix),
            "metrics.port": str(metrics_port),
            "remote.log.manager.task.interval.ms": "200",
            "remote.log.reader.prefetch.enable": "true",
        })
        create_topic(broker.bootstrap, topic, args.partitions, {
            "remote.storage.enable": "true", "segment.bytes": str(args.segment_mib << 20),
            "local.retention.bytes": "0", "file.delete.delay.ms": "0",
            "remote.storage.chunk.bytes": str(args.chunk_mib << 20),
        })
        produce_bytes(broker.bootstrap, topic, args.partitions, args.mib << 20)
        wait_remote_only(broker, topic, metrics_port)
        ends = local_log_start_offsets(broker.bootstrap, topic, args.partitions)
        # A local tail the consumer never reaches: at the log end its Fetches would
        # long-poll for max.wait.ms, and those waits are not cold-read latency.
        set_topic_configs(broker.bootstrap, topic, {"remote.log.copy.disable": "true"})
        produce_bytes(broker.bootstrap, topic, args.partitions, args.tail_mib << 20)
        if local_log_start_offsets(broker.bootstrap, topic, args.partitions) != ends:
            raise RuntimeError("the local log start moved while the local tail was produced")
        layout = RemoteLayout(moto, bucket, prefix, args.partitions)
        for prefetch in (True, False):
            if not prefetch:
                broker.stop()
                broker.overrides["remote.log.reader.prefetch.enable"] = "false"
                broker.start()
                wait_servable(broker.bootstrap, topic, args.partitions)
            raw = raw_get_mb_per_s(moto, bucket, layout)
            run = consume_cold(broker.bootstrap, topic, ends, metrics_port)
            runs[prefetch] = {**run, "raw": raw, "mb_per_s": layout.segment_bytes / run["seconds"] / 1e6}
    finally:
        if broker is not None:
            broker.stop()
            shutil.rmtree(broker.data_dir, ignore_errors=True)
        moto.stop()

    raw = max(run["raw"] for run in runs.values())
    on, off = runs[True], runs[False]
    ratio = on["mb_per_s"] / raw
    p99_ratio = on["fetch"][1] / off["fetch"][1]

    def ms(seconds: float) -> str:
        return f"{1000 * seconds:.0f}"

    rows = [["raw ranged GET", f"{layout.chunks} chunks, 1 GET at a time per partition; runs "
             + "/".join(f"{run['raw']:.0f}" for run in runs.values()), f"{raw:.1f}", "", "", "", "", ""]]
    for prefetch, run in ((True, on), (False, off)):
        rows.append([f"cold consume, prefetch {'on' if prefetch else 'off'}",
                     (f"{run['records']} records in {run['seconds']:.2f} s; {run['gets']:.0f} GETs, "
                      f"{run['prefetch_hits']:.0f} prefetch hits, {run['prefetch_wasted']:.0f} wasted"),
                     f"{run['mb_per_s']:.1f}", f"{100 * run['mb_per_s'] / raw:.0f}%",
                     ms(run["fetch"][0]), ms(run["fetch"][1]), ms(run["remote"][0]), ms(run["remote"][1])])
    print_table(f"tierbroker cold reads from moto S3 (separate process): {layout.segment_bytes / 2**20:.0f} MiB "
                f"remote-only over {args.partitions} partitions, {args.segment_mib} MiB segments, "
                f"{args.chunk_mib} MiB chunks; MB = 10^6 bytes",
                ["case", "detail", "MB/s", "of raw", "Fetch p50 ms", "Fetch p99 ms",
                 "remote read p50 ms", "remote read p99 ms"], rows)
    results = [
        ["throughput, prefetch on", f"{100 * ratio:.0f}% of raw GET", f">= {100 * THROUGHPUT_TARGET:.0f}%",
         "PASS" if ratio >= THROUGHPUT_TARGET else "FAIL"],
        ["p99 Fetch latency, on / off", f"{ms(on['fetch'][1])} / {ms(off['fetch'][1])} ms = {p99_ratio:.2f}",
         "<= 0.33", "PASS" if p99_ratio <= P99_TARGET else "FAIL"],
    ]
    print_table("targets", ["check", "measured", "target", "result"], results)
    print("Latencies: the broker's histograms (Fetch = tierbroker_request_latency_seconds{api=\"Fetch\"}, "
          "remote read = tierbroker_remote_fetch_latency_seconds), interpolated within buckets.")
    return 0 if ratio >= THROUGHPUT_TARGET and p99_ratio <= P99_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
