"""Property tests: the consumer protocol layouts and the offsets file framing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.groups.consumer_protocol import (
    Assignment,
    Subscription,
    encode_assignment,
    encode_subscription,
    parse_assignment,
    parse_subscription,
    subscribed_topics,
)
from broker.groups.offset_log import (
    CommitRecord,
    CommittedOffset,
    DeleteGroupRecord,
    DeleteOffsetRecord,
    GroupRecord,
    decode_payload,
    frame,
    scan,
)
from broker.protocol.primitives import DecodeError

names = st.text(min_size=0, max_size=20)
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
topic_partitions = st.dictionaries(names, st.lists(int32, max_size=5), max_size=4)


@st.composite
def subscriptions(draw):
    version = draw(st.integers(0, 3))
    return Subscription(
        version, draw(st.lists(names, max_size=5)), draw(st.none() | st.binary(max_size=20)),
        draw(topic_partitions) if version >= 1 else {},
        draw(int32) if version >= 2 else -1,
        draw(st.none() | names) if version >= 3 else None)


@given(subscriptions())
def test_subscription_round_trip(sub):
    assert parse_subscription(encode_subscription(sub)) == sub


@given(st.integers(0, 3), topic_partitions, st.none() | st.binary(max_size=20))
def test_assignment_round_trip(version, partitions, user_data):
    assignment = Assignment(version, partitions, user_data)
    assert parse_assignment(encode_assignment(assignment)) == assignment


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_garbage_metadata_never_raises_anything_but_decode_error(data):
    # Member metadata is whatever a client sent; the coordinator parses it in
    # timer callbacks, where any other exception would wedge a rebalance.
    try:
        parse_subscription(data)
    except DecodeError:
        pass
    try:
        parse_assignment(data)
    except DecodeError:
        pass
    assert subscribed_topics(data) is None or isinstance(subscribed_topics(data), set)


records = st.one_of(
    st.builds(CommitRecord, names, names, int32, st.builds(
        CommittedOffset, int64, int32, names, int64, st.none() | st.integers(0, 2**63 - 1))),
    st.builds(DeleteOffsetRecord, names, names, int32),
    st.builds(DeleteGroupRecord, names),
    st.builds(GroupRecord, names, st.none() | names, int32, int64),
)


@given(st.lists(records, max_size=8))
def test_offset_log_round_trip(items):
    data = b"".join(frame(r) for r in items)
    payloads, valid = scan(data)
    assert valid == len(data)
    assert [decode_payload(p) for p in payloads] == items


@given(st.lists(records, min_size=1, max_size=6), st.data())
def test_a_torn_write_leaves_a_whole_prefix(items, data):
    frames = [frame(r) for r in items]
    whole = b"".join(frames)
    cut = data.draw(st.integers(0, len(whole) - 1))
    payloads, valid = scan(whole[:cut])
    decoded = [decode_payload(p) for p in payloads]
    assert decoded == items[:len(decoded)]
    assert valid == sum(len(f) for f in frames[:len(decoded)])
    assert len(decoded) < len(items)
