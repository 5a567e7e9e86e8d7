"""acks=-1 is a promise: SIGKILL the broker in the middle of a stream of
acknowledged produces, restart it, and every acknowledged record is there
exactly once, at the offset it was acknowledged with."""

from __future__ import annotations

import random
import threading
import time

from broker.protocol import errors
from tests.helpers.record_batches import build_batch
from tests.support.broker import BrokerProcess
from tests.support.raw_client import RawClient

TOPIC = "durable"
PARTITIONS = 3
PRODUCERS = 6
RECORDS_PER_BATCH = 5


def _produce_until_killed(bootstrap: str, producer_id: str, partition: int, acked: list,
                          stop: threading.Event) -> None:
    """Send acks=-1 batches of uniquely valued records; remember each acknowledged one
    with the offset the broker gave it."""
    seq = 0
    try:
        with RawClient(bootstrap, timeout=10) as client:
            while not stop.is_set():
                values = [f"p{producer_id}-{seq + i}".encode() for i in range(RECORDS_PER_BATCH)]
                batch = build_batch([(b"k", v) for v in values])
                reply = client.request("Produce", 9, {"acks": -1, "timeout_ms": 10_000, "topic_data": [
                    {"name": TOPIC, "partition_data": [{"index": partition, "records": batch}]}]})
                result = reply.responses[0].partition_responses[0]
                assert result.error_code == 0, errors.from_code(result.error_code, result.error_message)
                for i, value in enumerate(values):
                    acked.append((partition, result.base_offset + i, value))
                seq += RECORDS_PER_BATCH
    except (ConnectionError, OSError):
        return  # the broker died under us: whatever was not acknowledged is not promised


def _read_partition(bootstrap: str, partition: int) -> list[tuple[int, bytes]]:
    """Every (offset, value) in a partition, through a real client."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=3000, auto_offset_reset="earliest")
    tp = TopicPartition(TOPIC, partition)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    records = []
    deadline = time.monotonic() + 60
    while consumer.position(tp) < end and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend((r.offset, r.value) for r in batch)
    consumer.close()
    return records


def test_acknowledged_records_survive_sigkill(tmp_path):
    rng = random.Random(7)
    broker = BrokerProcess(tmp_path, {"num.partitions": str(PARTITIONS)}).start()
    try:
        with RawClient(broker.bootstrap) as admin:
            created = admin.request("CreateTopics", 5, {"topics": [
                {"name": TOPIC, "num_partitions": PARTITIONS, "replication_factor": 1,
                 "configs": [{"name": "segment.bytes", "value": "65536"}]}], "timeout_ms": 5000})
            assert created.topics[0].error_code == 0
        acked: list = []
        for round_ in range(3):
            stop = threading.Event()
            threads = [threading.Thread(target=_produce_until_killed,
                                        args=(broker.bootstrap, f"r{round_}p{p}", p % PARTITIONS, acked, stop))
                       for p in range(PRODUCERS)]
            for t in threads:
                t.start()
            target = rng.randint(200, 800)
            deadline = time.monotonic() + 60
            while len(acked) < target and time.monotonic() < deadline:
                time.sleep(0.005)
            broker.kill()
            stop.set()
            for t in threads:
                t.join()
            assert len(acked) >= target, "producers did not get going"
            broker.start()
            for partition in range(PARTITIONS):
                stored = _read_partition(broker.bootstrap, partition)
                offsets = [o for o, _ in stored]
                assert offsets == list(range(len(stored))), "offsets must be contiguous from 0"
                values = [v for _, v in stored]
                assert len(values) == len(set(values)), "a record is stored twice"
                by_offset = dict(stored)
                for p, offset, value in acked:
                    if p == partition:
                        assert by_offset.get(offset) == value, f"acknowledged {value!r} at {offset} is gone"
            assert "unclean shutdown" in broker.log_since_start()
    finally:
        broker.kill()
