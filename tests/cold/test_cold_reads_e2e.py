"""Real Kafka clients read partitions whose early segments exist only in the bucket
(moto's S3 server), from the beginning, across the tier boundary into the local
log: every record exact (offset, key, value, header, timestamp) and in order,
with chunk compression zstd, lz4 and none. ListOffsets by timestamp finds a
record that exists only in the bucket.

One broker serves the module; each (client, codec) pair has its own topic, so
every consumer starts cold (nothing of its topic hydrated yet). Consumption is
by manual assignment from the earliest offset, no group.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

CLIENTS = ("kafka-python", "aiokafka", "confluent")
CODECS = ("zstd", "lz4", "none")
PARTITIONS = 2
BYTES_PER_PARTITION = 100 * 1024  # 2 closed segments of 40 KiB (~20 chunks of 4 KiB) + the active one
SEGMENT_BYTES = 40 * 1024
CONSUME_DEADLINE_S = 60


def topic_name(client: str, codec: str) -> str:
    return f"cold-{codec}-{client}"


@pytest.fixture(scope="module")
def tiered(moto_server, start_module_cold_broker, cold):
    """The broker and, per topic and partition, what was produced and where the tiers meet."""
    broker = start_module_cold_broker(moto=moto_server)
    produced = {}
    for codec in CODECS:
        for client in CLIENTS:
            topic = topic_name(client, codec)
            broker.create_topic(topic, cold.topic_configs(codec, segment_bytes=SEGMENT_BYTES), PARTITIONS)
            for p in range(PARTITIONS):
                produced[(topic, p)] = broker.produce(topic, p, BYTES_PER_PARTITION, big_every=9)
    offsets = {}
    for codec in CODECS:
        for client in CLIENTS:
            topic = topic_name(client, codec)
            for p, o in broker.wait_until_remote_only(topic, PARTITIONS, share=0.4).items():
                offsets[(topic, p)] = o
    return broker, produced, offsets


# -- client adapters: consume everything in `wanted` ({partition: end offset}) -----------


def consume(client: str, bootstrap: str, topic: str, wanted: dict[int, int]) -> list[tuple]:
    fn = {"kafka-python": _consume_kafka_python, "aiokafka": _consume_aiokafka,
          "confluent": _consume_confluent}[client]
    return fn(bootstrap, topic, dict(wanted))


def _headers(raw) -> tuple:
    return tuple((k, v) for k, v in (raw or ()))


def _note(out: list, remaining: dict, partition: int, offset: int, key, value, headers, timestamp) -> None:
    out.append((partition, offset, key, value, _headers(headers), timestamp))
    if partition in remaining and offset + 1 >= remaining[partition]:
        del remaining[partition]


def _consume_kafka_python(bootstrap, topic, remaining):
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=30_000,
                             max_partition_fetch_bytes=64 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(remaining)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[tuple] = []
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        while remaining and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=500).items():
                for m in messages:
                    _note(out, remaining, tp.partition, m.offset, m.key, m.value, m.headers, m.timestamp)
        return out
    finally:
        consumer.close(autocommit=False)


def _consume_aiokafka(bootstrap, topic, remaining):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", request_timeout_ms=30_000,
                                    max_partition_fetch_bytes=64 * 1024)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in sorted(remaining)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            out: list[tuple] = []
            deadline = time.monotonic() + CONSUME_DEADLINE_S
            while remaining and time.monotonic() < deadline:
                for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                    for m in messages:
                        _note(out, remaining, tp.partition, m.offset, m.key, m.value, m.headers, m.timestamp)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def _consume_confluent(bootstrap, topic, remaining):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer({
        # Mandatory for a librdkafka consumer; with assign() and no commits it joins no group.
        "group.id": f"unused-{uuid.uuid4().hex[:8]}", "bootstrap.servers": bootstrap,
        "enable.auto.commit": False, "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest", "max.partition.fetch.bytes": 64 * 1024,
    })
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(remaining)])
        out: list[tuple] = []
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        while remaining and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"confluent consumer error: {m.error()}")
                _note(out, remaining, m.partition(), m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1])
        return out
    finally:
        consumer.close()


# -- client adapters: ListOffsets by timestamp ------------------------------------------------


def offset_for_time(client: str, bootstrap: str, topic: str, partition: int, timestamp: int) -> int:
    """The offset the client's offsets_for_times answers (-1 for none)."""
    if client == "kafka-python":
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        try:
            tp = TopicPartition(topic, partition)
            found = consumer.offsets_for_times({tp: timestamp})[tp]
            return -1 if found is None else found.offset
        finally:
            consumer.close(autocommit=False)
    if client == "aiokafka":
        from aiokafka import AIOKafkaConsumer, TopicPartition

        async def run():
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
            await consumer.start()
            try:
                tp = TopicPartition(topic, partition)
                found = (await consumer.offsets_for_times({tp: timestamp}))[tp]
                return -1 if found is None else found.offset
            finally:
                await consumer.stop()

        return asyncio.run(run())
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"group.id": f"unused-{uuid.uuid4().hex[:8]}", "bootstrap.servers": bootstrap,
                         "enable.auto.commit": False})
    try:
        [found] = consumer.offsets_for_times([TopicPartition(topic, partition, timestamp)], timeout=30)
        assert found.error is None, found.error
        return found.offset
    finally:
        consumer.close()


# -- tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", CLIENTS)
def test_consume_from_the_bucket_across_the_tier_boundary(tiered, client, codec):
    broker, produced, offsets = tiered
    topic = topic_name(client, codec)
    for p in range(PARTITIONS):
        o = offsets[(topic, p)]
        # The premise: a remote-only prefix and a local tail, both non-empty.
        assert 0 == o[-2] < o[-4] < o[-1] == len(produced[(topic, p)]), o

    consumed = consume(client, broker.bootstrap, topic, {p: offsets[(topic, p)][-1] for p in range(PARTITIONS)})

    for p in range(PARTITIONS):
        got = [c[1:] for c in consumed if c[0] == p]
        want = [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in produced[(topic, p)]]
        assert [g[0] for g in got] == [w[0] for w in want], f"partition {p}: offsets differ"
        for g, w in zip(got, want):
            assert g == w, f"partition {p} offset {w[0]}: consumed {g[:2]}... differs from produced"

    metrics = broker.metrics()
    assert metrics.get("tierbroker_remote_fetch_requests_total", topic=topic) > 0
    assert metrics.get("tierbroker_remote_fetch_bytes_total", topic=topic) > 0
    assert metrics.get("tierbroker_remote_corrupt_chunks_total", topic=topic) == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_list_offsets_by_timestamp_finds_a_remote_only_record(tiered, client):
    broker, produced, offsets = tiered
    topic = topic_name(client, "zstd")
    partition = 1
    local_start = offsets[(topic, partition)][-4]
    records = produced[(topic, partition)]
    for record in (records[1], records[local_start // 2], records[local_start - 1]):
        assert record.offset < local_start  # only in the bucket
        # Exactly its timestamp, and one ms after the record before it (t0 + 2*offset).
        assert offset_for_time(client, broker.bootstrap, topic, partition, record.timestamp) == record.offset
        assert offset_for_time(client, broker.bootstrap, topic, partition, record.timestamp - 1) == record.offset
    # The first local record, and a time past every record.
    first_local = records[local_start]
    assert offset_for_time(client, broker.bootstrap, topic, partition, first_local.timestamp - 1) == local_start
    assert offset_for_time(client, broker.bootstrap, topic, partition, records[-1].timestamp + 1) == -1
