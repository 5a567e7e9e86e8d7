"""Every key's validator refuses a bad value, and the error names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import BROKER_KEYS, TOPIC_KEYS, BrokerConfig, InvalidConfigError, validate_topic_overrides
from broker.config.listeners import advertised_listener_list, listener_list, parse_listener
from broker.config.storage_url import LocalStorageUrl, S3StorageUrl, parse_storage_url, storage_url
from broker.config.validators import AtLeast, Between, ListOf, OneOf


def bad_values(key) -> list[str]:
    """Values of the right type that `key`'s validator must refuse."""
    v = key.validator
    if isinstance(v, AtLeast):
        return [str(v.minimum - 1)]
    if isinstance(v, Between):
        return [str(v.low - 1), str(v.high + 1)]
    if isinstance(v, OneOf):
        return ["bogus", *v.unsupported]
    if isinstance(v, ListOf):
        good = key.format(key.default) or "x"
        bad = [f"{good},{good}"]
        if not v.allow_empty:
            bad.append("")
        if isinstance(v.item, OneOf):
            bad += ["bogus", *v.item.unsupported]
        return bad
    if v is storage_url:
        return ["http://bucket/x", "s3://", "ftp:///x", "file://host/x"]
    if v in (listener_list, advertised_listener_list):
        return ["PLAINTEXT://h:99999", "nonsense", "", "A://h:1,a://h:2"]
    raise AssertionError(f"no bad values known for the validator of {key.name}: {v!r}")


BROKER_CASES = [(k, bad) for k in BROKER_KEYS.values() if k.validator for bad in bad_values(k)]
TOPIC_CASES = [(k, bad) for k in TOPIC_KEYS.values() if k.validator for bad in bad_values(k)]


@pytest.mark.parametrize("key,bad", BROKER_CASES, ids=lambda x: getattr(x, "name", repr(x)))
def test_broker_key_rejects_bad_value(key, bad):
    with pytest.raises(InvalidConfigError) as info:
        BrokerConfig({key.name: bad})
    assert info.value.key == key.name
    assert str(info.value).startswith(f"{key.name}: ")
    assert info.value.reason


@pytest.mark.parametrize("key,bad", TOPIC_CASES, ids=lambda x: getattr(x, "name", repr(x)))
def test_topic_key_rejects_bad_value(key, bad):
    with pytest.raises(InvalidConfigError) as info:
        validate_topic_overrides({key.name: bad})
    assert info.value.key == key.name
    assert str(info.value).startswith(f"{key.name}: ")


def test_reasons_say_what_is_expected():
    cases = {
        "retention.ms": ("-5", "retention.ms: -5 is not valid: must be >= -1"),
        "segment.bytes": ("13", "segment.bytes: 13 is not valid: must be >= 14"),
        "message.timestamp.type": ("Now", "must be one of: CreateTime, LogAppendTime"),
        "compression.type": ("brotli", "must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"),
        "cleanup.policy": ("compact", "log compaction is not implemented"),
        "remote.storage.enable": ("yes", "expected true or false"),
        "max.message.bytes": ("2147483648", "out of range for int"),
    }
    for name, (bad, message) in cases.items():
        with pytest.raises(InvalidConfigError, match=message):
            validate_topic_overrides({name: bad})


def test_compact_is_refused_even_alongside_delete():
    with pytest.raises(InvalidConfigError, match="compact: log compaction is not implemented"):
        validate_topic_overrides({"cleanup.policy": "delete,compact"})


def test_metrics_port_range():
    assert BrokerConfig({"metrics.port": "-1"}).get("metrics.port") == -1
    assert BrokerConfig({"metrics.port": "0"}).get("metrics.port") == 0
    with pytest.raises(InvalidConfigError, match="metrics.port: -2 is not valid: must be between -1 and 65535"):
        BrokerConfig({"metrics.port": "-2"})


@pytest.mark.parametrize("text,listener", [
    ("PLAINTEXT://127.0.0.1:9092", ("PLAINTEXT", "127.0.0.1", 9092)),
    ("plaintext://:9092", ("PLAINTEXT", "", 9092)),
    ("INTERNAL://broker-1.example:19092", ("INTERNAL", "broker-1.example", 19092)),
    ("PLAINTEXT://[::1]:9092", ("PLAINTEXT", "::1", 9092)),
    ("localhost:0", ("PLAINTEXT", "localhost", 0)),
    (":9092", ("PLAINTEXT", "", 9092)),
])
def test_listener_forms(text, listener):
    assert parse_listener(text) == listener


@pytest.mark.parametrize("text", ["PLAINTEXT://host", "PLAINTEXT://host:port", "host", "a:b:1",
                                  "PLAINTEXT://host:65536", "PLAIN TEXT://h:1"])
def test_listener_rejects(text):
    with pytest.raises(ValueError):
        parse_listener(text)


def test_advertised_listener_cannot_be_a_wildcard():
    with pytest.raises(InvalidConfigError, match="advertised.listeners: .* wildcard address 0.0.0.0"):
        BrokerConfig({"advertised.listeners": "PLAINTEXT://0.0.0.0:9092"})


@pytest.mark.parametrize("text,parsed", [
    ("file://./data/remote", LocalStorageUrl(Path("data/remote"))),
    ("file:///var/lib/tier", LocalStorageUrl(Path("/var/lib/tier"))),
    ("s3://bucket", S3StorageUrl("bucket", "")),
    ("s3://bucket/a/b/", S3StorageUrl("bucket", "a/b")),
])
def test_storage_urls(text, parsed):
    assert parse_storage_url(text) == parsed
    assert BrokerConfig({"remote.storage.url": text}).remote_storage_url() == parsed
