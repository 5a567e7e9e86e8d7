"""A group consumer in its own process, for the end-to-end tests.

    python -m tests.groups.consumer_script LIBRARY BOOTSTRAP TOPIC GROUP SESSION_MS [KEY=VALUE ...]

LIBRARY is kafka-python, aiokafka or confluent. It consumes from the earliest
offset, commits synchronously after every poll that returned records, and only
then prints one JSON line `{"values": [...]}` with the values it consumed: so
everything printed is committed, and a record whose commit failed (the
partition moved in a rebalance) is never printed (its new owner prints it).
Runs until killed. KEY=VALUE pairs are extra confluent-kafka settings (e.g.
partition.assignment.strategy=cooperative-sticky, group.instance.id=...).
"""

from __future__ import annotations

import asyncio
import json
import sys


def report(values: list[bytes]) -> None:
    print(json.dumps({"values": [v.decode() for v in values]}), flush=True)


def run_kafka_python(bootstrap: str, topic: str, group: str, session_ms: int) -> None:
    from kafka.errors import CommitFailedError, KafkaError

    from tests.groups.kafka_python_member import kafka_python_member

    consumer = kafka_python_member(
        bootstrap, topic, group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=False, session_timeout_ms=session_ms, heartbeat_interval_ms=session_ms // 6,
        max_poll_interval_ms=30_000, client_id="e2e-kafka-python")
    while True:
        batches = consumer.poll(timeout_ms=200)
        values = [r.value for records in batches.values() for r in records]
        if not values:
            continue
        try:
            consumer.commit()
        except (CommitFailedError, KafkaError):
            continue
        report(values)


def run_aiokafka(bootstrap: str, topic: str, group: str, session_ms: int) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import CommitFailedError, KafkaError

    async def main() -> None:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
            enable_auto_commit=False, session_timeout_ms=session_ms,
            heartbeat_interval_ms=session_ms // 6, max_poll_interval_ms=30_000, client_id="e2e-aiokafka")
        await consumer.start()
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            values = [r.value for records in batches.values() for r in records]
            if not values:
                continue
            try:
                await consumer.commit()
            except (CommitFailedError, KafkaError):
                continue
            report(values)

    asyncio.run(main())


def run_confluent(bootstrap: str, topic: str, group: str, session_ms: int, **extra: str) -> None:
    from confluent_kafka import Consumer, KafkaException

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": session_ms // 6, "max.poll.interval.ms": 30_000,
        "client.id": "e2e-confluent", "topic.metadata.refresh.interval.ms": 1000, **extra,
    })
    consumer.subscribe([topic])
    while True:
        messages = consumer.consume(num_messages=500, timeout=0.2)
        values = [m.value() for m in messages if m.error() is None]
        if not values:
            continue
        try:
            consumer.commit(asynchronous=False)
        except KafkaException:
            continue
        report(values)


RUNNERS = {"kafka-python": run_kafka_python, "aiokafka": run_aiokafka, "confluent": run_confluent}

if __name__ == "__main__":
    library, bootstrap, topic, group, session_ms = sys.argv[1:6]
    extra = dict(arg.split("=", 1) for arg in sys.argv[6:])
    RUNNERS[library](bootstrap, topic, group, int(session_ms), **extra)
