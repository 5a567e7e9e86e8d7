"""Produce and consume throughput with confluent-kafka (librdkafka) against a
tierbroker process, beside a raw loopback TCP baseline measured in the same run.

    python3 bench/produce_consume.py [--mib 512]

Targets (issue 2): with 100 KiB records, produce >= 50% and consume >= 50% of
the raw baseline.
"""

from __future__ import annotations

import argparse
import time

from _support import (
    print_table,
    produce_bytes,
    raw_tcp_mb_per_s,
    start_broker,
    warm_memory,
)
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 4
TARGET = 0.5


def consume(bootstrap: str, topic: str, record_size: int, count: int) -> float:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-{time.time_ns()}",
        "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760, "fetch.wait.max.ms": 100,
        "queued.max.messages.kbytes": 1_048_576,
    })
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="data per case, MiB")
    args = parser.parse_args()
    total = args.mib << 20
    broker = start_broker()
    warm_memory(broker.data_dir, 2 * total)
    raw = raw_tcp_mb_per_s(total)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    rows = []
    ratios: dict[tuple[int, str], tuple[float, float]] = {}
    try:
        for record_size in (1024, 100 * 1024):
            for acks in ("1", "all"):
                topic = f"bench-{record_size}-{acks}"
                admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result()
                count = total // record_size
                p = produce_bytes(broker.bootstrap, topic, PARTITIONS, record_size * count, record_size, acks=acks)
                c = consume(broker.bootstrap, topic, record_size, count)
                rows.append([f"{record_size // 1024} KiB", acks, f"{p:.0f}", f"{100 * p / raw:.0f}%",
                             f"{c:.0f}", f"{100 * c / raw:.0f}%"])
                ratios[(record_size, acks)] = (p / raw, c / raw)
                # Deleting the topic frees its page cache for the next case to reuse.
                admin.delete_topics([topic])[topic].result()
    finally:
        broker.stop()
    print_table(f"tierbroker produce/consume, {args.mib} MiB per case; raw loopback TCP = {raw:.0f} MB/s",
                ["record", "acks", "produce MB/s", "of raw", "consume MB/s", "of raw"], rows)
    produce_ratio, consume_ratio = ratios[(100 * 1024, "1")]
    for what, ratio in (("produce", produce_ratio), ("consume", consume_ratio)):
        verdict = "PASS" if ratio >= TARGET else "FAIL"
        print(f"target: {what} with 100 KiB records (acks=1) >= {TARGET:.0%} of raw: {ratio:.0%} {verdict}")


if __name__ == "__main__":
    main()
