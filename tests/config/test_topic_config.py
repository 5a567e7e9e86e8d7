"""TopicConfig: broker values + topic overrides, validation, DescribeConfigs."""

from __future__ import annotations

import pytest

from broker.config import BrokerConfig, ConfigSource, ConfigType, InvalidConfigError, TopicConfig, validate_topic_overrides

HOUR = 3_600_000
STATIC, DEFAULT, TOPIC = (ConfigSource.STATIC_BROKER_CONFIG, ConfigSource.DEFAULT_CONFIG,
                          ConfigSource.DYNAMIC_TOPIC_CONFIG)


def synonyms(entry):
    return [(s.name, s.value, s.source) for s in entry.synonyms]


def test_override_beats_broker_synonym_beats_default():
    broker = BrokerConfig({"log.retention.hours": "24", "log.segment.bytes": "5000"})
    topic = TopicConfig(broker, {"segment.bytes": "6000"})
    assert topic.get("segment.bytes") == 6000
    assert topic.get("retention.ms") == 24 * HOUR
    assert topic.get("max.message.bytes") == 1048588
    assert topic.get("remote.log.copy.disable") is False


def test_broker_multi_key_precedence_reaches_topics():
    topic = TopicConfig(BrokerConfig({"log.roll.hours": "2", "log.retention.minutes": "-1"}), {})
    assert topic.get("segment.ms") == 2 * HOUR
    assert topic.get("retention.ms") == -1


def test_topic_default_applies_when_broker_synonym_is_unset():
    # flush.ms <- log.flush.interval.ms <- log.flush.scheduler.interval.ms: all default to "never".
    assert TopicConfig(BrokerConfig(), {}).get("flush.ms") == (1 << 63) - 1


def test_overrides_are_normalized():
    topic = TopicConfig(BrokerConfig(), {"preallocate": " TRUE ", "cleanup.policy": " delete "})
    assert topic.overrides == {"preallocate": "true", "cleanup.policy": "delete"}
    assert validate_topic_overrides({"retention.ms": "+10"}) == {"retention.ms": "10"}


def test_unknown_topic_key_is_rejected():
    with pytest.raises(InvalidConfigError) as info:
        validate_topic_overrides({"retention.msec": "1"})
    assert info.value.key == "retention.msec"
    assert info.value.reason == "unknown topic config"
    with pytest.raises(InvalidConfigError):
        TopicConfig(BrokerConfig(), {"log.retention.ms": "1"})  # a broker key is not a topic key


def test_null_value_is_rejected():
    with pytest.raises(InvalidConfigError, match="cannot be null"):
        validate_topic_overrides({"retention.ms": None})


def test_cross_key_checks_need_the_broker():
    broker = BrokerConfig({"log.local.retention.ms": str(HOUR)})
    bad = {"retention.ms": "1000"}  # below the broker's local retention
    assert validate_topic_overrides(bad) == bad
    with pytest.raises(InvalidConfigError, match=r"local.retention.ms: 3600000 is not valid: must not be more than retention.ms \(1000\)"):
        validate_topic_overrides(bad, broker)
    with pytest.raises(InvalidConfigError, match="local.retention.bytes: -1 .* must not be -1"):
        validate_topic_overrides({"retention.bytes": "100", "local.retention.bytes": "-1"}, BrokerConfig())
    validate_topic_overrides({"retention.ms": "-1", "local.retention.ms": "-1"}, BrokerConfig())


def test_remote_storage_needs_the_system_switch():
    off = BrokerConfig({"remote.log.storage.system.enable": "false"})
    with pytest.raises(InvalidConfigError, match="remote.storage.enable: true .* tiered storage is disabled"):
        validate_topic_overrides({"remote.storage.enable": "true"}, off)
    assert validate_topic_overrides({"remote.storage.enable": "true"}, BrokerConfig())


def test_a_stored_topic_loads_after_broker_defaults_change():
    # Valid when created; the broker's local retention later grew past the topic's total.
    topic = TopicConfig(BrokerConfig({"log.local.retention.ms": "5000"}), {"retention.ms": "1000"})
    assert topic.local_retention_ms() == 1000


@pytest.mark.parametrize("local,total,expected", [
    ("-2", "1000", 1000), ("-2", "-1", -1), ("500", "1000", 500), ("-1", "-1", -1),
    ("500", "-1", 500), ("2000", "1000", 1000),
])
def test_local_retention_resolution(local, total, expected):
    topic = TopicConfig(BrokerConfig(), {"local.retention.ms": local, "retention.ms": total,
                                         "local.retention.bytes": local, "retention.bytes": total})
    assert topic.local_retention_ms() == expected
    assert topic.local_retention_bytes() == expected


def test_log_config_values():
    topic = TopicConfig(BrokerConfig({"log.roll.hours": "1"}), {"segment.bytes": "4096",
                                                                  "message.timestamp.type": "LogAppendTime"})
    assert topic.log_config_values() == {
        "segment_bytes": 4096, "segment_ms": HOUR, "segment_jitter_ms": 0,
        "index_interval_bytes": 4096, "segment_index_bytes": 10485760,
        "retention_ms": 168 * HOUR, "retention_bytes": -1, "file_delete_delay_ms": 60000,
        "message_timestamp_type": "LogAppendTime",
    }


def test_describe_sources_and_synonyms():
    broker = BrokerConfig({"log.retention.hours": "24", "message.max.bytes": "2000"})
    topic = TopicConfig(broker, {"retention.ms": "1000"})
    entries = {e.name: e for e in topic.describe(include_synonyms=True)}

    retention = entries["retention.ms"]
    assert (retention.value, retention.source, retention.read_only) == ("1000", TOPIC, False)
    assert retention.config_type is ConfigType.LONG
    assert synonyms(retention) == [("retention.ms", "1000", TOPIC),
                                   ("log.retention.hours", "24", STATIC),
                                   ("log.retention.hours", "168", DEFAULT)]

    max_bytes = entries["max.message.bytes"]
    assert (max_bytes.value, max_bytes.source) == ("2000", STATIC)
    assert synonyms(max_bytes) == [("message.max.bytes", "2000", STATIC), ("message.max.bytes", "1048588", DEFAULT)]

    segment = entries["segment.bytes"]
    assert (segment.value, segment.source) == ("1073741824", DEFAULT)
    assert synonyms(segment) == [("log.segment.bytes", "1073741824", DEFAULT)]

    copy_disable = entries["remote.log.copy.disable"]
    assert (copy_disable.value, copy_disable.source, copy_disable.synonyms) == ("false", DEFAULT, [])


def test_describe_all_keys_sorted_without_synonyms_or_docs_by_default():
    entries = TopicConfig(BrokerConfig(), {"retention.ms": "1"}).describe()
    names = [e.name for e in entries]
    assert names == sorted(names) and "retention.ms" in names and "remote.storage.enable" in names
    assert all(e.synonyms == [] and e.documentation is None for e in entries)
    # the source is still reported without synonyms
    assert next(e for e in entries if e.name == "retention.ms").source is TOPIC


def test_describe_selected_keys_with_documentation():
    [entry] = TopicConfig(BrokerConfig(), {}).describe(["cleanup.policy", "nope"], include_documentation=True)
    assert entry.name == "cleanup.policy" and entry.value == "delete"
    assert entry.config_type is ConfigType.LIST and "compact" in entry.documentation


def test_source_of():
    topic = TopicConfig(BrokerConfig({"log.segment.bytes": "5000"}), {"retention.bytes": "10"})
    assert topic.source_of("retention.bytes") is TOPIC
    assert topic.source_of("segment.bytes") is STATIC
    assert topic.source_of("segment.ms") is DEFAULT
