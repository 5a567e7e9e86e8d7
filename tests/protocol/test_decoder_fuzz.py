"""Random and mutated frames against the request decoder: it may reject a frame,
but only with DecodeError, and never reads or allocates past the frame."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from broker.protocol.framing import encode_request, parse_request
from broker.protocol.messages import SCHEMAS
from broker.protocol.primitives import DecodeError

SAMPLE_REQUESTS = [
    (3, 12, {"topics": [{"name": "orders"}], "allow_auto_topic_creation": True}),
    (3, 1, {"topics": [{"name": "orders"}, {"name": "payments"}]}),
    (18, 3, {"client_software_name": "fuzz", "client_software_version": "1"}),
    (0, 9, {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 0, "records": b"\x00" * 80}]}]}),
    (1, 12, {"max_wait_ms": 100, "min_bytes": 1, "topics": [
        {"topic": "orders", "partitions": [{"partition": 0, "fetch_offset": 5, "partition_max_bytes": 1024}]}]}),
    (19, 5, {"topics": [{"name": "t", "num_partitions": 3, "replication_factor": 1,
                         "configs": [{"name": "retention.ms", "value": "1000"}]}]}),
]


def _decode_whole(frame: bytes) -> None:
    parsed = parse_request(frame)
    schema = parsed.schema
    if schema is None or parsed.body_reader is None or parsed.header.api_version not in schema.valid:
        return
    schema.decode_request(parsed.body_reader, parsed.header.api_version)


def _must_only_reject_cleanly(frame: bytes) -> None:
    try:
        _decode_whole(frame)
    except DecodeError:
        pass


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(min_size=0, max_size=256))
def test_random_bytes_only_raise_decode_error(frame):
    _must_only_reject_cleanly(frame)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SAMPLE_REQUESTS), st.data())
def test_mutated_requests_only_raise_decode_error(sample, data):
    key, version, body = sample
    frame = bytearray(encode_request(SCHEMAS[key], version, 7, "fuzz", body)[4:])
    for _ in range(data.draw(st.integers(1, 6))):
        action = data.draw(st.sampled_from(["flip", "truncate", "insert", "big-length"]))
        if not frame:
            break
        pos = data.draw(st.integers(0, len(frame) - 1))
        if action == "flip":
            frame[pos] ^= data.draw(st.integers(1, 255))
        elif action == "truncate":
            del frame[pos:]
        elif action == "insert":
            frame[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            frame[pos:pos + 4] = b"\x7f\xff\xff\xf0"
    _must_only_reject_cleanly(bytes(frame))


def test_huge_array_length_is_rejected_without_allocating():
    # Metadata v1: topics array claiming 2^31-1 entries in a 20-byte frame.
    frame = bytes.fromhex("0003 0001 00000001 0000") + b"\x7f\xff\xff\xff"
    try:
        _decode_whole(frame)
    except DecodeError as exc:
        assert "exceeds" in str(exc)
    else:
        raise AssertionError("a lying array length was accepted")


def test_valid_samples_decode():
    for key, version, body in SAMPLE_REQUESTS:
        frame = encode_request(SCHEMAS[key], version, 7, "fuzz", body)[4:]
        parsed = parse_request(frame)
        decoded = SCHEMAS[key].decode_request(parsed.body_reader, version)
        assert parsed.header.correlation_id == 7
        assert parsed.header.client_id == "fuzz"
        for name, value in body.items():
            if isinstance(value, list):
                assert len(decoded[name]) == len(value)
            else:
                assert decoded[name] == value
