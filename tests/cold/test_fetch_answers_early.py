"""A Fetch of several cold partitions is answered once min_bytes are in: one
partition's slow GET (its response held by the fault proxy in front of moto)
does not hold up the data another partition already has in memory. The slow
partition answers empty and without error, and once its GET is through a later
Fetch serves it, exact.
"""

from __future__ import annotations

import time

import pytest

from tests.support.fault_proxy import FaultProxy

PARTITIONS = 2
STALL_S = 6.0


@pytest.fixture
def proxy(moto_server):
    with FaultProxy(moto_server.host, moto_server.port) as proxy:
        yield proxy


def test_a_slow_get_of_one_partition_does_not_hold_up_another(moto_server, proxy, start_cold_broker, cold):
    broker = start_cold_broker(moto=moto_server, overrides={
        "remote.storage.s3.endpoint.url": proxy.url,
        "remote.log.reader.prefetch.enable": "false",
        "remote.fetch.max.wait.ms": "500",
    })
    topic = "slow-get"
    topic_id = broker.create_topic(topic, cold.topic_configs("none"), PARTITIONS)
    produced = {p: broker.produce(topic, p, 48 * 1024) for p in range(PARTITIONS)}
    broker.wait_until_remote_only(topic, PARTITIONS, share=0.3)

    # Partition 0's first chunk into memory. Partition 1's segment meta too (a read
    # of its second chunk), then the GET of its first chunk is held.
    error, records = broker.fetch(topic, 0, 0, max_bytes=1024)
    assert error == 0 and records
    slow_segment, slow_meta = broker.remote_segments(topic, topic_id, 1)[0]
    error, records = broker.fetch(topic, 1, slow_meta.chunks[1].first_offset, max_bytes=1024)
    assert error == 0 and records
    proxy.inject("stall", next=1, method="GET", path=slow_segment.data_key, seconds=STALL_S)

    # Partition 1 alone: its first chunk's GET goes out and is held; the Fetch answers
    # empty after remote.fetch.max.wait.ms, and the GET goes on. Wait until the proxy
    # holds it, so the Fetch below certainly runs while it is in flight.
    assert broker.fetch(topic, 1, 0, max_bytes=1024, max_wait_ms=0) == (0, b"")
    held_by = time.monotonic() + STALL_S / 2
    while proxy.injected["stall"] < 1:
        assert time.monotonic() < held_by, "partition 1's data GET never reached the proxy"
        time.sleep(0.01)

    # Both partitions in one Fetch that may wait far longer than the stall (min_bytes 1):
    # it is answered with partition 0's data, partition 1 (whose GET is held) empty
    # and without error.
    answers = broker.fetch_many(topic, {0: 0, 1: 0}, max_wait_ms=int(4 * STALL_S * 1000),
                                partition_max_bytes=16 * 1024)
    error, records = answers[0]
    served = cold.decode_records(records)
    assert error == 0 and served
    assert served == [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in produced[0][:len(served)]]
    assert answers[1] == (0, b"")
    assert proxy.injected["stall"] == 1, "one GET held, and no other"

    # Its GET goes on: a later Fetch serves partition 1 from offset 0, exact.
    deadline = time.monotonic() + 4 * STALL_S
    while True:
        assert time.monotonic() < deadline, "partition 1 was never served"
        error, records = broker.fetch(topic, 1, 0, max_bytes=1024)
        assert error == 0
        if records:
            break
    served = cold.decode_records(records)
    assert served == [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in produced[1][:len(served)]]


def test_a_fetch_served_from_memory_still_sets_the_other_partitions_gets_going(
        moto_server, start_cold_broker, cold):
    """Partition 0's chunk is in memory, partition 1 was never read: a Fetch of both is
    answered at once with partition 0's data (partition 1 empty), and partition 1's
    GETs are on their way all the same, so the client's next Fetch finds its chunk
    in memory."""
    broker = start_cold_broker(moto=moto_server, overrides={"remote.log.reader.prefetch.enable": "false"})
    topic = "served-from-memory"
    broker.create_topic(topic, cold.topic_configs("none"), PARTITIONS)
    produced = {p: broker.produce(topic, p, 48 * 1024) for p in range(PARTITIONS)}
    broker.wait_until_remote_only(topic, PARTITIONS, share=0.3)

    def gets() -> float:
        return broker.metrics().total("tierbroker_remote_get_requests_total")

    error, records = broker.fetch(topic, 0, 0, max_bytes=1024)
    assert error == 0 and records
    before = gets()
    answers = broker.fetch_many(topic, {0: 0, 1: 0}, max_wait_ms=30_000, partition_max_bytes=1024)
    assert answers[0] == (0, records)
    assert answers[1] == (0, b"")
    deadline = time.monotonic() + 30
    while gets() < before + 1:  # partition 1's first chunk (the count leaves out segment metas)
        assert time.monotonic() < deadline, "partition 1's GETs never went out"
        time.sleep(0.05)
    error, records = broker.fetch(topic, 1, 0, max_bytes=1024, max_wait_ms=0)
    served = cold.decode_records(records)
    assert error == 0 and served
    assert served == [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in produced[1][:len(served)]]
    assert gets() == before + 1  # served from what those GETs brought in
