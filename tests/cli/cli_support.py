"""Helpers for the CLI's end-to-end tests: run `python -m broker.cli`, produce, consume."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.support.broker import REPO
from tests.support.polling import wait_for

WAIT_S = 90.0


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "broker.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, check=False)


def cli_json(*args: str):
    result = cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_until(predicate, what: str, timeout: float = WAIT_S, interval: float = 0.2):
    """Poll until `predicate()` is truthy and return its value; the timeout only bounds a hang."""
    return wait_for(predicate, timeout, what, interval)


def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int = 1) -> None:
    """Values go round-robin over the partitions, in order, in small batches (so that
    small segments roll often)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=512)
    try:
        for i, value in enumerate(values):
            producer.send(topic, value=value, partition=i % partitions)
        producer.flush(60)
    finally:
        producer.close()


def consume_all(bootstrap: str, topic: str, partition: int, count: int) -> list[tuple[int, bytes]]:
    """(offset, value) of the first `count` records of a partition, from its earliest offset."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    tp = TopicPartition(topic, partition)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + WAIT_S
        while len(out) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.offset, r.value) for r in records)
        return out[:count]
    finally:
        consumer.close()
