"""A byte flipped in a remote chunk, in the bucket itself (moto's S3 API): the
partition answers an error, never the damaged data, the other partitions are
unaffected, tierbroker_remote_corrupt_chunks_total rises, and nothing bad is
cached (the error repeats while the object is damaged, and the data is served
again once the object is repaired).

Real clients see the error too: confluent-kafka reports it for the partition,
kafka-python raises it from poll(); both deliver exactly the records before
the damaged chunk and none from it.
"""

from __future__ import annotations

import time
import uuid

import pytest

CODECS = ("zstd", "none")
PARTITIONS = 2
DAMAGED = 0  # the partition whose chunk is damaged


@pytest.fixture(scope="module")
def damaged(moto_server, start_module_cold_broker, cold):
    """Topics with a remote-only prefix in both partitions; in partition 0, one byte
    flipped in the middle of the third chunk of the first remote segment. One topic per
    codec for the raw tests (which repair their topic at the end), one for the clients."""
    broker = start_module_cold_broker(moto=moto_server)
    topics = {}
    for topic, codec in [(f"damaged-{c}", c) for c in CODECS] + [("damaged-clients", "zstd")]:
        topic_id = broker.create_topic(topic, cold.topic_configs(codec, segment_bytes=32 * 1024), PARTITIONS)
        produced = {p: broker.produce(topic, p, 80 * 1024) for p in range(PARTITIONS)}
        topics[topic] = (topic_id, produced, codec)
    offsets = {topic: broker.wait_until_remote_only(topic, PARTITIONS, share=0.3) for topic in topics}

    damage = {}
    for topic, (topic_id, _, codec) in topics.items():
        segment, meta = broker.remote_segments(topic, topic_id, DAMAGED)[0]
        chunk = meta.chunks[2]
        if codec == "zstd":
            assert chunk.compressed, "expected a compressed chunk"
        original = broker.get_object(segment.data_key)
        flipped = bytearray(original)
        flipped[chunk.object_offset + chunk.object_length // 2] ^= 0x10
        broker.put_object(segment.data_key, bytes(flipped))
        damage[topic] = (segment.data_key, original, chunk)
    return broker, topics, offsets, damage


def corrupt_count(broker, topic: str) -> float:
    return broker.metrics().get("tierbroker_remote_corrupt_chunks_total", topic=topic)


@pytest.mark.parametrize("codec", CODECS)
def test_a_damaged_chunk_is_an_error_for_its_partition_only(damaged, cold, codec):
    broker, topics, offsets, damage = damaged
    topic = f"damaged-{codec}"
    produced = topics[topic][1]
    key, original, chunk = damage[topic]
    assert offsets[topic][DAMAGED][cold.EARLIEST_LOCAL] > chunk.last_offset  # remote-only

    # A Fetch of both partitions: the damaged one errs and carries no records; the
    # other one (same topic, same request) is served. If the other one's data came
    # first, the Fetch is answered without waiting for the damaged chunk (min_bytes
    # is in): the damaged partition is empty then, and its next read reports the error.
    before = corrupt_count(broker, topic)
    answers = broker.fetch_many(topic, {DAMAGED: chunk.first_offset, 1: 0}, partition_max_bytes=16 * 1024)
    error, records = answers[DAMAGED]
    if (error, records) == (0, b""):
        error, records = broker.fetch(topic, DAMAGED, chunk.first_offset)
    assert (error, records) == (cold.UNKNOWN_SERVER_ERROR, b"")
    error, records = answers[1]
    assert error == 0 and records
    served = cold.decode_records(records)
    assert [r[0] for r in served] == list(range(len(served)))
    assert served == [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in produced[1][:len(served)]]
    assert corrupt_count(broker, topic) > before

    # Not cached, not forgotten: the same answer again, from a fresh download.
    again = corrupt_count(broker, topic)
    assert broker.fetch(topic, DAMAGED, chunk.first_offset) == (cold.UNKNOWN_SERVER_ERROR, b"")
    assert corrupt_count(broker, topic) > again

    # A read that starts before the damaged chunk and would run into it never carries
    # its bytes: either the error, or only records from the chunks before it.
    error, records = broker.fetch(topic, DAMAGED, 0, max_bytes=1 << 20)
    if error:
        assert (error, records) == (cold.UNKNOWN_SERVER_ERROR, b"")
    else:
        served = cold.decode_records(records)
        assert served and max(r[0] for r in served) < chunk.first_offset
        assert served == [(r.offset, r.key, r.value, r.headers, r.timestamp)
                          for r in produced[DAMAGED][:len(served)]]

    # Repaired in the bucket: served again, exactly.
    broker.put_object(key, original)
    error, records = broker.fetch(topic, DAMAGED, chunk.first_offset)
    assert error == 0
    served = cold.decode_records(records)
    by_offset = {r.offset: r for r in produced[DAMAGED]}
    assert served and served[0][0] <= chunk.first_offset
    for offset, key_, value, headers, timestamp in served:
        r = by_offset[offset]
        assert (key_, value, headers, timestamp) == (r.key, r.value, r.headers, r.timestamp)


def test_real_clients_get_an_error_and_never_the_damaged_records(damaged, cold):
    broker, topics, _, damage = damaged
    topic = "damaged-clients"
    produced = topics[topic][1][DAMAGED]
    _, _, chunk = damage[topic]
    want = [(r.offset, r.key, r.value) for r in produced]

    got, error = _consume_confluent(broker.bootstrap, topic)
    assert error is not None, "confluent-kafka saw no error for the damaged partition"
    assert got == want[:len(got)] and len(got) <= chunk.first_offset

    got, error = _consume_kafka_python(broker.bootstrap, topic)
    assert error is not None, "kafka-python saw no error for the damaged partition"
    assert got == want[:len(got)] and len(got) <= chunk.first_offset


def _consume_confluent(bootstrap: str, topic: str, timeout: float = 30):
    """(records delivered, first error) from the beginning of the damaged partition."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer({"group.id": f"unused-{uuid.uuid4().hex[:8]}", "bootstrap.servers": bootstrap,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "max.partition.fetch.bytes": 16 * 1024})
    got, error = [], None
    try:
        consumer.assign([TopicPartition(topic, DAMAGED, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while error is None and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=500, timeout=0.5):
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        error = m.error()
                    continue
                got.append((m.offset(), m.key(), m.value()))
        return got, error
    finally:
        consumer.close()


def _consume_kafka_python(bootstrap: str, topic: str, timeout: float = 30):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=16 * 1024)
    got, error = [], None
    try:
        tp = TopicPartition(topic, DAMAGED)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout
        while error is None and time.monotonic() < deadline:
            try:
                for messages in consumer.poll(timeout_ms=500).values():
                    got += [(m.offset, m.key, m.value) for m in messages]
            except KafkaError as exc:
                error = exc
        return got, error
    finally:
        consumer.close(autocommit=False)
