"""Damaged files on disk and damaged batches on the wire: the broker starts,
truncates or rebuilds, serves only what is valid, and never appends a corrupt
batch."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from broker.protocol import errors
from broker.protocol.records import parse_batch_header
from tests.helpers.record_batches import build_batch
from tests.support.broker import BrokerProcess
from tests.support.raw_client import RawClient

TOPIC = "fragile"
BATCHES = 40


def _produce_batches(client: RawClient, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        batch = build_batch([(b"key-%d" % i, b"value-%d" % i * 20, (), 1_700_000_000_000 + i * 1000)])
        reply = client.request("Produce", 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
            {"name": TOPIC, "partition_data": [{"index": 0, "records": batch}]}]})
        assert reply.responses[0].partition_responses[0].error_code == 0


def _fetch_values(client: RawClient, offset: int = 0) -> list[tuple[int, bytes]]:
    """(offset, first bytes of the batch) for every batch from `offset`, via Fetch."""
    out = []
    while True:
        reply = client.request("Fetch", 11, {"max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                                             "topics": [{"topic": TOPIC, "partitions": [
                                                 {"partition": 0, "fetch_offset": offset,
                                                  "partition_max_bytes": 1 << 20}]}]})
        part = reply.responses[0].partitions[0]
        assert part.error_code == 0
        records = bytes(part.records or b"")
        if not records:
            return out
        pos = 0
        while pos < len(records):
            header = parse_batch_header(records, pos)
            out.append((header.base_offset, records[pos:pos + header.size]))
            offset = header.next_offset
            pos += header.size


def _high_watermark(client: RawClient) -> int:
    reply = client.request("ListOffsets", 5, {"replica_id": -1, "topics": [
        {"name": TOPIC, "partitions": [{"partition_index": 0, "timestamp": -1}]}]})
    return reply.topics[0].partitions[0].offset


def _stopped_broker(tmp_path, clean: bool, segment_bytes: int) -> BrokerProcess:
    broker = BrokerProcess(tmp_path).start()
    with RawClient(broker.bootstrap) as client:
        client.request("CreateTopics", 5, {"topics": [
            {"name": TOPIC, "num_partitions": 1, "replication_factor": 1,
             "configs": [{"name": "index.interval.bytes", "value": "100"},
                         {"name": "segment.bytes", "value": str(segment_bytes)}]}], "timeout_ms": 5000})
        _produce_batches(client, BATCHES)
    if clean:
        assert broker.stop() == 0
    else:
        broker.kill()
    return broker


@pytest.fixture
def crashed_broker(tmp_path):
    """A broker holding BATCHES one-record batches in one segment, then SIGKILLed."""
    broker = _stopped_broker(tmp_path, clean=False, segment_bytes=1 << 20)
    yield broker
    broker.kill()


def _segments(broker: BrokerProcess) -> list[Path]:
    return sorted((broker.data_dir / "logs" / f"{TOPIC}-0").glob("*.log"))


def _segment(broker: BrokerProcess) -> Path:
    (path,) = _segments(broker)
    return path


def _batch_positions(segment: Path) -> list[int]:
    data = segment.read_bytes()
    positions, pos = [], 0
    while pos < len(data):
        positions.append(pos)
        pos += parse_batch_header(data, pos).size
    return positions


def test_corrupt_byte_in_the_middle_truncates_there(crashed_broker):
    segment = _segment(crashed_broker)
    positions = _batch_positions(segment)
    victim = 17
    with open(segment, "r+b") as f:
        f.seek(positions[victim] + 70)  # inside the record, covered by the CRC
        byte = f.read(1)
        f.seek(positions[victim] + 70)
        f.write(bytes([byte[0] ^ 0xFF]))
    crashed_broker.start()
    assert "truncat" in crashed_broker.log_since_start().lower()
    with RawClient(crashed_broker.bootstrap) as client:
        served = _fetch_values(client)
        assert [o for o, _ in served] == list(range(victim))
        assert _high_watermark(client) == victim
        # The log carries on from the last valid batch.
        _produce_batches(client, 3, start=100)
        assert [o for o, _ in _fetch_values(client)] == list(range(victim + 3))


def test_torn_tail_is_truncated_to_the_last_valid_batch(crashed_broker):
    segment = _segment(crashed_broker)
    positions = _batch_positions(segment)
    size = segment.stat().st_size
    with open(segment, "r+b") as f:
        f.truncate(positions[-1] + (size - positions[-1]) // 2)  # half of the last batch
    with open(segment, "ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07garbage")  # and some garbage
    crashed_broker.start()
    with RawClient(crashed_broker.bootstrap) as client:
        assert [o for o, _ in _fetch_values(client)] == list(range(BATCHES - 1))
        assert _high_watermark(client) == BATCHES - 1


@pytest.mark.parametrize("clean", [True, False], ids=["after-clean-stop", "after-crash"])
def test_damaged_and_missing_indexes_are_rebuilt(tmp_path, clean):
    broker = _stopped_broker(tmp_path, clean=clean, segment_bytes=3000)
    try:
        segments = _segments(broker)
        assert len(segments) >= 3, "the test needs closed segments"
        closed = segments[1]
        index, time_index = closed.with_suffix(".index"), closed.with_suffix(".timeindex")
        assert index.stat().st_size >= 8 * 2, "the test needs a populated sparse index"
        with open(index, "r+b") as f:
            f.seek(8)
            f.write(struct.pack(">ii", 9999, 1 << 30))  # an entry pointing past the end
        time_index.unlink()
        segments[0].with_suffix(".index").write_bytes(b"\x01\x02\x03")  # not a whole entry
        broker.start()
        assert "rebuil" in broker.log_since_start().lower()
        with RawClient(broker.bootstrap) as client:
            for offset in range(BATCHES):
                first_offset, _ = _fetch_values(client, offset)[0]
                assert first_offset == offset
            # Time lookups use the rebuilt time indexes: batch i has timestamp base + i s.
            for target, expected in ((1_700_000_000_000 + 21_500, 22), (1_700_000_000_000, 0),
                                     (1_700_000_000_000 + 3_000, 3)):
                reply = client.request("ListOffsets", 5, {"replica_id": -1, "topics": [
                    {"name": TOPIC, "partitions": [{"partition_index": 0, "timestamp": target}]}]})
                assert reply.topics[0].partitions[0].offset == expected
    finally:
        broker.kill()


def test_corrupt_produced_batch_gets_corrupt_message_and_is_not_appended(broker):
    with RawClient(broker.bootstrap) as client:
        client.request("Metadata", 9, {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": True})
        _produce_batches(client, 2)
        batch = bytearray(build_batch([(b"k", b"payload that will not survive")]))
        batch[-3] ^= 0x5A
        reply = client.request("Produce", 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
            {"name": TOPIC, "partition_data": [{"index": 0, "records": bytes(batch)}]}]})
        result = reply.responses[0].partition_responses[0]
        assert result.error_code == errors.CorruptMessage.code
        assert "CRC" in result.error_message
        assert _high_watermark(client) == 2
        # A request mixing a good and a bad batch appends neither.
        mixed = build_batch([(b"k", b"good")]) + bytes(batch)
        reply = client.request("Produce", 9, {"acks": 1, "timeout_ms": 5000, "topic_data": [
            {"name": TOPIC, "partition_data": [{"index": 0, "records": mixed}]}]})
        assert reply.responses[0].partition_responses[0].error_code == errors.CorruptMessage.code
        assert _high_watermark(client) == 2


def test_oversized_batch_gets_message_too_large(tmp_path):
    with BrokerProcess(tmp_path, {"message.max.bytes": "2000"}) as broker, RawClient(broker.bootstrap) as client:
        client.request("Metadata", 9, {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": True})
        big = build_batch([(b"k", b"x" * 5000)])
        reply = client.request("Produce", 9, {"acks": 1, "timeout_ms": 5000, "topic_data": [
            {"name": TOPIC, "partition_data": [{"index": 0, "records": big}]}]})
        result = reply.responses[0].partition_responses[0]
        assert result.error_code == errors.MessageTooLarge.code
        assert "max.message.bytes" in result.error_message
        assert _high_watermark(client) == 0


def test_produce_to_unknown_topic_or_partition(broker):
    with RawClient(broker.bootstrap) as client:
        reply = client.request("Produce", 9, {"acks": 1, "timeout_ms": 5000, "topic_data": [
            {"name": "no-such-topic", "partition_data": [{"index": 0, "records": build_batch([(b"k", b"v")])}]}]})
        assert reply.responses[0].partition_responses[0].error_code == errors.UnknownTopicOrPartition.code
        client.request("Metadata", 9, {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": True})
        reply = client.request("Produce", 9, {"acks": 1, "timeout_ms": 5000, "topic_data": [
            {"name": TOPIC, "partition_data": [{"index": 7, "records": build_batch([(b"k", b"v")])}]}]})
        assert reply.responses[0].partition_responses[0].error_code == errors.UnknownTopicOrPartition.code
