"""Produce and consume throughput with confluent-kafka (librdkafka) against a
tierbroker process, beside a raw loopback TCP baseline measured in the same run.

    python3 bench/produce_consume.py [--mib 512] [--trials 3] [--event-loop uvloop|asyncio]

Targets (issue 2): with 100 KiB records, produce >= 50% and consume >= 50% of
the raw baseline.

Beside them, the producer's own ceiling: the same producer into a sink process
that reads and acknowledges Produce requests and does nothing else with them
(see `_produce_sink.py`), measured after each 100 KiB acks=1 trial. On a 2-core
machine the client and the broker share the CPUs, so the client's own cost
bounds what any broker can reach here.

The broker runs on its default event loop (uvloop where installed);
`--event-loop asyncio` measures it on the standard loop (see `broker.event_loop`).

Each case runs `--trials` times on a fresh topic and reports the median, with
the broker process's CPU time per MB moved ("CPU ms/MB"): on a noisy host it is
a steadier measure of the broker's own cost than its throughput. The
baseline is the median of raw runs interleaved with the trials (one before each
trial and one at the end): on a shared 2-core VM single runs vary by 2x, and the
raw rate drifts within minutes (seen here: 1.5 to 2.9 GB/s), so a baseline
measured only up front can belong to a different machine than the trials.

Each produce phase starts right after a page-cache warm-up (see `warm_memory`),
so the broker writes into recycled pages as a broker that has been running
does. The clients are configured as long-running ones are: the producer's queue
is bounded (`produce_bytes`), and a consumer's Fetch responses stay below
glibc's 32 MiB mmap ceiling, so librdkafka receives most of them into reused
heap memory (measured: 25-80 thousand page faults per 512 MiB consumed, all in
librdkafka's receive, where fresh pages for every response would be 131
thousand). With such large responses librdkafka's 64 MiB prefetch queue fills
whenever the application falls two responses behind, and librdkafka then
postpones that partition's next Fetch by `fetch.queue.backoff.ms` (1 s by
default; its documentation says to lower it for this). Seen here: two consumes
of three at 340 MB/s instead of 840, and 40-350 MB/s against 800-1000 with the
queue at 32 MiB. So the consumer waits 10 ms instead.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

from _produce_sink import SinkProcess
from _support import (
    print_table,
    process_cpu_seconds,
    produce_bytes,
    raw_tcp_mb_per_s,
    start_broker,
    warm_memory,
)
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from broker.event_loop import CHOICES, default_choice

PARTITIONS = 4
TARGET = 0.5


def consume(bootstrap: str, topic: str, record_size: int, count: int) -> float:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-{time.time_ns()}",
        "enable.auto.commit": False, "fetch.max.bytes": 32 << 20,
        "max.partition.fetch.bytes": 8 << 20, "fetch.wait.max.ms": 100, "fetch.queue.backoff.ms": 10,
    })
    consumer.list_topics(topic, timeout=30)  # connected before the clock starts, as the producer is
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen = 0
    started = time.perf_counter()
    while seen < count:
        for msg in consumer.consume(min(500, count - seen), timeout=5):
            if msg.error():
                raise RuntimeError(msg.error())
            seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return record_size * seen / elapsed / 1e6


@dataclass(frozen=True)
class Phase:
    mb_per_s: float
    broker_cpu_ms_per_mb: float


def measured(broker, nbytes: int, run) -> Phase:
    """Run one phase (`run` returns MB/s) and charge the broker's CPU time to its bytes."""
    cpu_before = process_cpu_seconds(broker.proc.pid)
    rate = run()
    cpu = process_cpu_seconds(broker.proc.pid) - cpu_before
    return Phase(rate, 1000 * cpu / (nbytes / 1e6))


def trial(broker, admin, topic: str, record_size: int, acks: str, total: int) -> tuple[Phase, Phase]:
    """Produce `total` bytes to a new topic, then consume them from the start."""
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result()
    count = total // record_size
    nbytes = record_size * count
    try:
        warm_memory(broker.data_dir, 2 * total)
        produced = measured(broker, nbytes, lambda: produce_bytes(
            broker.bootstrap, topic, PARTITIONS, nbytes, record_size, acks=acks))
        consumed = measured(broker, nbytes, lambda: consume(broker.bootstrap, topic, record_size, count))
    finally:
        # Deleting the topic frees its page cache for the next trial to reuse.
        admin.delete_topics([topic])[topic].result()
    return produced, consumed


def spread(values) -> str:
    values = list(values)
    return f"{min(values):.0f}-{max(values):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="data per case, MiB")
    parser.add_argument("--trials", type=int, default=3, help="runs per case; the median is reported")
    parser.add_argument("--event-loop", choices=CHOICES, default=default_choice(), help="the broker's event loop")
    args = parser.parse_args()
    total = args.mib << 20
    broker = start_broker(event_loop=args.event_loop)
    sink = SinkProcess()
    sink_broker = start_broker({"advertised.listeners": sink.listener})
    raw_runs = []
    ceiling_runs = []

    def ceiling_run(n: int) -> None:
        sink.start(sink_broker.port)
        try:
            topic = f"ceiling-{n}"
            # The sink broker's metadata points at the sink, so an admin client outliving
            # the sink would keep reconnecting to its closed port (and logging each time).
            sink_admin = AdminClient({"bootstrap.servers": sink_broker.bootstrap})
            sink_admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result()
            del sink_admin
            ceiling_runs.append(produce_bytes(sink.bootstrap, topic, PARTITIONS, total, 100 * 1024, acks="1"))
        finally:
            sink.stop()

    def raw_run() -> None:
        warm_memory(broker.data_dir, total)
        raw_runs.append(raw_tcp_mb_per_s(total))

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    cases: dict[tuple[int, str], list[tuple[Phase, Phase]]] = {}
    try:
        for record_size in (1024, 100 * 1024):
            for acks in ("1", "all"):
                runs = cases[(record_size, acks)] = []
                for n in range(args.trials):
                    raw_run()
                    runs.append(trial(broker, admin, f"bench-{record_size}-{acks}-{n}", record_size, acks, total))
                    if (record_size, acks) == (100 * 1024, "1"):
                        ceiling_run(n)
        raw_run()
    finally:
        del admin  # before its broker goes, or it logs the lost connection
        broker.stop()
        sink_broker.stop()
        sink.stop()
    raw = statistics.median(raw_runs)
    rows = []
    ratios: dict[tuple[int, str], tuple[float, float]] = {}
    for (record_size, acks), runs in cases.items():
        row = [f"{record_size // 1024} KiB", acks]
        medians = []
        for phase in (0, 1):  # produce, consume
            rates = [r[phase].mb_per_s for r in runs]
            rate = statistics.median(rates)
            cpu = statistics.median(r[phase].broker_cpu_ms_per_mb for r in runs)
            row += [f"{rate:.0f}", spread(rates), f"{100 * rate / raw:.0f}%", f"{cpu:.2f}"]
            medians.append(rate)
        rows.append(row)
        ratios[(record_size, acks)] = (medians[0] / raw, medians[1] / raw)
    print_table(f"tierbroker ({args.event_loop} event loop) produce/consume, {args.mib} MiB per run, "
                f"median of {args.trials} runs; "
                f"raw loopback TCP = {raw:.0f} MB/s (runs {spread(raw_runs)})",
                ["record", "acks", "produce MB/s", "range", "of raw", "CPU ms/MB",
                 "consume MB/s", "range", "of raw", "CPU ms/MB"], rows)
    ceiling = statistics.median(ceiling_runs)
    print(f"producer ceiling, 100 KiB records, acks=1 (into a sink that reads and acknowledges, nothing "
          f"more): {ceiling:.0f} MB/s ({spread(ceiling_runs)}) = {100 * ceiling / raw:.0f}% of raw")
    produce_ratio, consume_ratio = ratios[(100 * 1024, "1")]
    for what, ratio in (("produce", produce_ratio), ("consume", consume_ratio)):
        verdict = "PASS" if ratio >= TARGET else "FAIL"
        print(f"target: {what} with 100 KiB records (acks=1) >= {TARGET:.0%} of raw: {ratio:.0%} {verdict}")


if __name__ == "__main__":
    main()
