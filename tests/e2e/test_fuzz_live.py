"""Random and mutated frames thrown at a live broker over TCP: it stays up, keeps
serving a well-behaved connection opened before the storm, and answers well-formed
requests for unknown APIs or versions with errors instead of hanging up."""

from __future__ import annotations

import random
import socket
import struct

from broker.protocol import errors
from broker.protocol.framing import encode_request
from broker.protocol.messages import SCHEMAS
from tests.helpers.record_batches import build_batch
from tests.support.raw_client import RawClient

SEED_FRAMES = [
    (18, 3, {"client_software_name": "fuzz", "client_software_version": "0"}),
    (3, 9, {"topics": [{"name": "fuzzed"}], "allow_auto_topic_creation": True}),
    (0, 9, {"acks": 1, "timeout_ms": 1000, "topic_data": [
        {"name": "fuzzed", "partition_data": [{"index": 0, "records": build_batch([(b"k", b"v")])}]}]}),
    (1, 11, {"max_wait_ms": 10, "min_bytes": 1, "max_bytes": 1 << 20, "topics": [
        {"topic": "fuzzed", "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]}),
    (19, 5, {"topics": [{"name": "fuzz-created", "num_partitions": 2, "replication_factor": 1}]}),
    (32, 4, {"resources": [{"resource_type": 2, "resource_name": "fuzzed", "configuration_keys": None}]}),
]


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randint(1, 5)):
        pos = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.5:
            data[pos] ^= rng.randint(1, 255)
        elif choice < 0.7:
            data[pos:pos + 4] = rng.choice([b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"])
        elif choice < 0.85:
            data[pos:pos] = rng.randbytes(rng.randint(1, 16))
        else:
            del data[pos:pos + rng.randint(1, 16)]
    body = bytes(data[4:])
    # Usually keep the size prefix honest so the broker has to parse the damage.
    if rng.random() < 0.8:
        return struct.pack(">i", len(body)) + body
    return bytes(data)


def _throw(bootstrap: str, payload: bytes) -> None:
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.settimeout(0.3)
        try:
            s.sendall(payload)
            s.recv(65536)
        except (socket.timeout, ConnectionError):
            pass


def test_broker_survives_random_and_mutated_frames(broker):
    rng = random.Random(20261122)
    seeds = [encode_request(SCHEMAS[k], v, 1, "fuzz", body) for k, v, body in SEED_FRAMES]
    with RawClient(broker.bootstrap) as steady:
        for round_ in range(12):
            for _ in range(25):
                if rng.random() < 0.3:
                    payload = rng.randbytes(rng.randint(1, 200))
                else:
                    payload = _mutate(rng, rng.choice(seeds))
                _throw(broker.bootstrap, payload)
            assert broker.alive(), broker.log_since_start()
            versions = steady.request("ApiVersions", 3, {"client_software_name": "steady",
                                                         "client_software_version": "1"})
            assert versions.error_code == 0
            assert {k.api_key for k in versions.api_keys} >= {0, 1, 3, 18}
    with RawClient(broker.bootstrap) as fresh:
        meta = fresh.request("Metadata", 9, {"topics": [{"name": "after-storm"}],
                                             "allow_auto_topic_creation": True})
        assert meta.topics[0].error_code == 0
        produced = fresh.request("Produce", 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
            {"name": "after-storm", "partition_data": [{"index": 0, "records": build_batch([(b"k", b"v")])}]}]})
        assert produced.responses[0].partition_responses[0].error_code == 0


def test_unknown_api_key_gets_an_error_not_a_hang_up(broker):
    with RawClient(broker.bootstrap) as client:
        # API key 9999 does not exist: header v1 with correlation id 42.
        frame = struct.pack(">hhih", 9999, 0, 42, -1)
        client.send_raw(struct.pack(">i", len(frame)) + frame)
        correlation_id, code = struct.unpack(">ih", client.read_frame())
        assert (correlation_id, code) == (42, errors.UnsupportedVersion.code)
        # The connection is still usable.
        assert client.request("ApiVersions", 0, {}).error_code == 0


def test_api_versions_from_the_future_gets_our_ranges(broker):
    with RawClient(broker.bootstrap) as client:
        frame = struct.pack(">hhih", 18, 99, 5, -1)
        client.send_raw(struct.pack(">i", len(frame)) + frame)
        reply = client.read_frame()
        correlation_id, error_code, count = struct.unpack_from(">ihi", reply)
        assert (correlation_id, error_code) == (5, errors.UnsupportedVersion.code)
        ranges = {struct.unpack_from(">h", reply, 10 + 6 * i)[0] for i in range(count)}
        assert {0, 1, 2, 3, 18} <= ranges


def test_old_produce_version_is_refused_with_unsupported_version(broker):
    with RawClient(broker.bootstrap) as client:
        reply = client.request("Produce", 2, {"acks": 1, "timeout_ms": 1000, "topic_data": [
            {"name": "legacy", "partition_data": [{"index": 0, "records": build_batch([(b"k", b"v")])}]}]})
        assert reply.responses[0].partition_responses[0].error_code == errors.UnsupportedVersion.code


def test_oversized_frame_closes_only_that_connection(tmp_path):
    from tests.support.broker import BrokerProcess

    with BrokerProcess(tmp_path, {"socket.request.max.bytes": "4096"}) as small:
        with RawClient(small.bootstrap) as client:
            client.send_raw(struct.pack(">i", 1 << 20) + b"\x00" * 64)
            try:
                client.read_frame()
            except ConnectionError:
                pass
            else:
                raise AssertionError("an oversized frame was answered")
        assert "socket.request.max.bytes" in small.log_since_start()
        with RawClient(small.bootstrap) as other:
            assert other.request("ApiVersions", 3, {}).error_code == 0
