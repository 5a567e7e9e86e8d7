"""The broker serves the same on each event loop it runs on: its default (uvloop,
installed with it) and `--event-loop asyncio`.

On each: records round-trip through a real client in Fetch responses of many
MiB, far more than a socket holds at once, so the connection's writer waits for
room on the socket again and again within one response; and a client that
asks for such a response and then does not read it holds up nobody else, and
still gets its response whole once it reads.
"""

from __future__ import annotations

import random

import pytest

from broker.event_loop import ASYNCIO, default_choice
from broker.protocol.framing import decode_response, encode_request
from broker.protocol.messages import BY_NAME
from broker.protocol.records import validate_batches
from tests.e2e.test_clients import (
    BASE_TS,
    Record,
    assert_round_trip,
    consume,
    create_topic,
    end_offsets,
    produce,
)
from tests.support.broker import BrokerProcess
from tests.support.raw_client import RawClient

RECORD_BYTES = 256 * 1024
RECORDS = 48  # 12 MiB over two partitions
FETCH_BYTES = 16 << 20


@pytest.fixture(params=[None, ASYNCIO], ids=["default", ASYNCIO])
def broker(request, tmp_path):
    proc = BrokerProcess(tmp_path, event_loop=request.param).start()
    yield proc
    proc.kill()


def _fill_topic(bootstrap: str, topic: str):
    create_topic(bootstrap, topic, 2)
    rng = random.Random(5)
    records = [Record(b"k%03d" % i, rng.randbytes(RECORD_BYTES), (("i", str(i).encode()),), BASE_TS + i, i % 2)
               for i in range(RECORDS)]
    deliveries = produce("confluent", bootstrap, topic, records, acks=1)
    return records, deliveries


def _fetch_request(topic: str, partition: int) -> dict:
    return {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": FETCH_BYTES, "isolation_level": 0,
            "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [], "rack_id": "",
            "topics": [{"topic": topic, "partitions": [{
                "partition": partition, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
                "log_start_offset": -1, "partition_max_bytes": FETCH_BYTES}]}]}


def test_records_round_trip_through_large_fetch_responses(broker):
    assert f"event loop: {broker.event_loop or default_choice()}" in broker.log_since_start()
    records, deliveries = _fill_topic(broker.bootstrap, "big")
    ends = end_offsets(broker.bootstrap, "big", range(2))
    assert ends == {0: RECORDS // 2, 1: RECORDS // 2}
    consumed = consume("confluent", broker.bootstrap, "big", ends,
                       max_partition_fetch_bytes=FETCH_BYTES, fetch_max_bytes=FETCH_BYTES)
    assert_round_trip(records, deliveries, consumed)


def test_a_client_not_reading_its_response_holds_up_nobody(broker):
    records, deliveries = _fill_topic(broker.bootstrap, "stalled")
    with RawClient(broker.bootstrap) as stalled:
        stalled.correlation_id += 1
        fetch = BY_NAME["Fetch"]
        stalled.send_raw(encode_request(fetch, 12, stalled.correlation_id, "stalled", _fetch_request("stalled", 0)))
        # The 6 MiB answer fills the socket and waits; another client is served meanwhile.
        ends = end_offsets(broker.bootstrap, "stalled", range(2))
        consumed = consume("confluent", broker.bootstrap, "stalled", ends,
                           max_partition_fetch_bytes=FETCH_BYTES, fetch_max_bytes=FETCH_BYTES)
        assert_round_trip(records, deliveries, consumed)
        correlation_id, response = decode_response(fetch, 12, stalled.read_frame())
    assert correlation_id == stalled.correlation_id
    [partition] = response.responses[0].partitions
    assert partition.error_code == 0
    batches = validate_batches(partition.records)  # whole batches, every CRC intact
    assert batches[0].base_offset == 0
    assert batches[-1].base_offset + batches[-1].last_offset_delta == RECORDS // 2 - 1
