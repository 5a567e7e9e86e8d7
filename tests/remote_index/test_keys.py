"""The object-key layout: exact strings, hashing, and the parsers GC and recovery use."""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remote_index.keys import (
    TOPICS_PREFIX,
    PartitionKeys,
    SegmentKey,
    parse_manifest_key,
    parse_segment_key,
    parse_topic_description_key,
    topic_description_key,
)

TOPIC_ID = uuid.UUID("0f5e9a52-3c1b-4a8e-9f7d-2b6c1d0e4a11")
SEGMENT_ID = "7d3b2c1a-0000-4000-8000-000000000001"


def test_layout_unhashed():
    keys = PartitionKeys("orders", TOPIC_ID, 3)
    root = f"orders-{TOPIC_ID}/3/"
    assert keys.partition_prefix == root
    assert keys.manifest_prefix == root + "manifest/"
    assert keys.manifest_key(7) == root + "manifest/00000000000000000007.json"
    assert keys.latest_key == root + "manifest/latest"
    assert keys.segments_prefix == root + "segments/"
    assert keys.segment_data_key(42, SEGMENT_ID) == f"{root}segments/00000000000000000042-{SEGMENT_ID}.log"
    assert keys.segment_meta_key(42, SEGMENT_ID) == f"{root}segments/00000000000000000042-{SEGMENT_ID}.meta"
    assert keys.topic_description_key == f"topics/orders-{TOPIC_ID}.json"
    assert topic_description_key("orders", str(TOPIC_ID)) == keys.topic_description_key
    assert TOPICS_PREFIX == "topics/"


def test_layout_hashed():
    keys = PartitionKeys("orders", TOPIC_ID, 3, hashed=True)
    expected_hash = hashlib.sha256(f"{TOPIC_ID}/3".encode()).hexdigest()[:4]
    assert keys.partition_prefix == f"{expected_hash}/orders-{TOPIC_ID}/3/"
    assert keys.manifest_key(1).startswith(f"{expected_hash}/orders-")
    # The topic description is never hashed: recovery lists topics/ to find it.
    assert keys.topic_description_key == f"topics/orders-{TOPIC_ID}.json"
    hashes = {PartitionKeys("orders", TOPIC_ID, p, hashed=True).partition_prefix[:4] for p in range(64)}
    assert len(hashes) > 50  # spread, not one hot prefix


def test_keys_compare_by_layout():
    assert PartitionKeys("t", TOPIC_ID, 0) == PartitionKeys("t", str(TOPIC_ID), 0)
    assert PartitionKeys("t", TOPIC_ID, 0) != PartitionKeys("t", TOPIC_ID, 0, hashed=True)


def test_partition_prefixes_do_not_nest():
    one, ten = PartitionKeys("t", TOPIC_ID, 1), PartitionKeys("t", TOPIC_ID, 10)
    assert not ten.partition_prefix.startswith(one.partition_prefix)


def test_listing_order_is_numeric_order():
    keys = PartitionKeys("t", TOPIC_ID, 0)
    versions = [1, 9, 10, 100, 2**40]
    assert sorted(keys.manifest_key(v) for v in versions) == [keys.manifest_key(v) for v in versions]
    offsets = [0, 9, 10, 12345678901]
    assert sorted(keys.segment_data_key(o, SEGMENT_ID) for o in offsets) == [
        keys.segment_data_key(o, SEGMENT_ID) for o in offsets
    ]


@pytest.mark.parametrize("bad", [
    lambda: PartitionKeys("t", "not-a-uuid", 0),
    lambda: PartitionKeys("a/b", TOPIC_ID, 0),
    lambda: PartitionKeys("", TOPIC_ID, 0),
    lambda: PartitionKeys("t", TOPIC_ID, -1),
    lambda: PartitionKeys("t", TOPIC_ID, 0).manifest_key(-1),
    lambda: PartitionKeys("t", TOPIC_ID, 0).segment_data_key(-1, SEGMENT_ID),
    lambda: PartitionKeys("t", TOPIC_ID, 0).segment_data_key(0, "has/slash"),
    lambda: PartitionKeys("t", TOPIC_ID, 0).segment_meta_key(0, ""),
])
def test_rejects_unkeyable_input(bad):
    with pytest.raises(ValueError):
        bad()


topic_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", min_size=1,
                      max_size=60)


@given(topic=topic_names, partition=st.integers(0, 10_000), base=st.integers(0, 2**63 - 1),
       segment_id=st.uuids().map(str), hashed=st.booleans())
def test_segment_keys_parse_back(topic, partition, base, segment_id, hashed):
    keys = PartitionKeys(topic, TOPIC_ID, partition, hashed)
    data, meta = keys.segment_data_key(base, segment_id), keys.segment_meta_key(base, segment_id)
    assert parse_segment_key(data) == SegmentKey(base, segment_id, "log")
    assert parse_segment_key(meta) == (base, segment_id, "meta")
    assert parse_segment_key(data.rsplit("/", 1)[1]) == (base, segment_id, "log")
    assert data.startswith(keys.segments_prefix)


@given(topic=topic_names, topic_id=st.uuids())
def test_topic_description_keys_parse_back(topic, topic_id):
    key = topic_description_key(topic, topic_id)
    assert parse_topic_description_key(key) == (topic, str(topic_id))


@given(version=st.integers(0, 10**19))
def test_manifest_keys_parse_back(version):
    keys = PartitionKeys("t-1", TOPIC_ID, 2)
    assert parse_manifest_key(keys.manifest_key(version)) == version


@pytest.mark.parametrize("key", [
    "t/0/segments/00000000000000000001-abc.tmp",
    "t/0/segments/1-abc.log",
    "t/0/segments/00000000000000000001.log",
    "t/0/manifest/latest",
    "",
])
def test_parsers_skip_strangers(key):
    assert parse_segment_key(key) is None
    assert parse_manifest_key(key) is None
    assert parse_topic_description_key(key) is None


def test_topic_description_parser_needs_a_uuid():
    assert parse_topic_description_key("topics/orders.json") is None
    assert parse_topic_description_key("topics/orders-" + "z" * 36 + ".json") is None
    assert re.fullmatch(r"topics/a-b-c-[0-9a-f-]{36}\.json", topic_description_key("a-b-c", TOPIC_ID))
