"""BrokerConfig: where values come from, Kafka's multi-key precedence, derived values."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from broker.config import BrokerConfig, ConfigSource, InvalidConfigError, Listener, PropertiesSyntaxError

HOUR = 3_600_000


@pytest.fixture
def props(tmp_path):
    def write(text: str) -> Path:
        path = tmp_path / "server.properties"
        path.write_text(text, encoding="utf-8")
        return path
    return write


def test_defaults():
    cfg = BrokerConfig()
    assert cfg.listeners() == [Listener("PLAINTEXT", "127.0.0.1", 9092)]
    assert cfg.advertised_listeners() is None
    assert cfg.node_id() == 0
    assert cfg.log_dirs() == [Path("./data")]
    assert cfg.log_retention_ms() == 168 * HOUR
    assert cfg.log_roll_ms() == 168 * HOUR
    assert cfg.get("log.segment.bytes") == 1073741824
    assert cfg.get("auto.create.topics.enable") is True
    assert cfg.get("metrics.port") == 9464
    assert cfg.get("remote.storage.s3.secret.access.key") is None
    assert cfg.get("remote.log.manager.copy.max.bytes.per.second") == (1 << 63) - 1
    assert not cfg.unknown


def test_precedence_override_over_env_over_file_over_default(props):
    path = props("num.partitions=2\nlog.segment.bytes=2000\nmessage.max.bytes=3000\n")
    env = {"TIERBROKER_LOG_SEGMENT_BYTES": "2001", "TIERBROKER_MESSAGE_MAX_BYTES": "3001", "HOME": "/root"}
    cfg = BrokerConfig.load(path, {"message.max.bytes": "3002"}, env)
    assert cfg.get("default.replication.factor") == 1  # default
    assert cfg.get("num.partitions") == 2  # file
    assert cfg.get("log.segment.bytes") == 2001  # environment beats file
    assert cfg.get("message.max.bytes") == 3002  # override beats both
    assert cfg.source_of("num.partitions") is ConfigSource.STATIC_BROKER_CONFIG
    assert cfg.source_of("default.replication.factor") is ConfigSource.DEFAULT_CONFIG
    assert cfg.is_set("num.partitions") and not cfg.is_set("default.replication.factor")
    with pytest.raises(KeyError):
        cfg.source_of("no.such.key")


def test_load_without_file_or_environment():
    cfg = BrokerConfig.load(None, {"node.id": "4"})
    assert cfg.node_id() == 4
    assert BrokerConfig.load(None).node_id() == 0


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        BrokerConfig.load(tmp_path / "nope.properties", {}, {})


def test_syntax_error_names_the_file_and_line(props):
    path = props("a=1\nb=\\uZZZZ\n")
    with pytest.raises(PropertiesSyntaxError, match=f"^{path}:2: malformed"):
        BrokerConfig.load(path, {}, {})


def test_invalid_value_in_file_names_the_key(props):
    with pytest.raises(InvalidConfigError, match="^log.segment.bytes: 10 is not valid: must be >= 14$"):
        BrokerConfig.load(props("log.segment.bytes = 10\n"), {}, {})


def test_environment_value_is_checked_too():
    with pytest.raises(InvalidConfigError) as info:
        BrokerConfig.load(None, {}, {"TIERBROKER_AUTO_CREATE_TOPICS_ENABLE": "maybe"})
    assert info.value.key == "auto.create.topics.enable"


def test_unknown_keys_are_kept_and_warned_about(props, caplog):
    with caplog.at_level(logging.WARNING, logger="broker.config"):
        cfg = BrokerConfig.load(props("zookeeper.connect=localhost:2181\nnum.partitions=3\n"), {},
                                {"TIERBROKER_SOME_FUTURE_KEY": "1"})
    assert dict(cfg.unknown) == {"zookeeper.connect": "localhost:2181", "some.future.key": "1"}
    assert cfg.get("num.partitions") == 3
    assert "kept but not used: some.future.key, zookeeper.connect" in caplog.text
    with pytest.raises(KeyError):
        cfg.get("zookeeper.connect")


@pytest.mark.parametrize("settings,expected", [
    ({}, 168 * HOUR),
    ({"log.retention.hours": "24"}, 24 * HOUR),
    ({"log.retention.minutes": "30", "log.retention.hours": "24"}, 30 * 60_000),
    ({"log.retention.ms": "1234", "log.retention.minutes": "30", "log.retention.hours": "24"}, 1234),
    ({"log.retention.ms": "-1", "log.retention.hours": "24"}, -1),
    ({"log.retention.hours": "-1"}, -1),
    ({"log.retention.minutes": "-1"}, -1),
])
def test_retention_ms_minutes_hours(settings, expected):
    assert BrokerConfig(settings).log_retention_ms() == expected


def test_retention_precedence_is_by_key_not_by_layer(props):
    # Kafka's rule: log.retention.ms from the file beats log.retention.hours from a flag.
    cfg = BrokerConfig.load(props("log.retention.ms=5000\n"), {"log.retention.hours": "1"}, {})
    assert cfg.log_retention_ms() == 5000


@pytest.mark.parametrize("settings,expected", [
    ({}, 168 * HOUR),
    ({"log.roll.hours": "1"}, HOUR),
    ({"log.roll.ms": "500", "log.roll.hours": "1"}, 500),
])
def test_roll_ms_hours(settings, expected):
    assert BrokerConfig(settings).log_roll_ms() == expected


def test_roll_jitter_and_flush_groups():
    assert BrokerConfig().effective("log.roll.jitter.ms") == 0
    assert BrokerConfig({"log.roll.jitter.hours": "2"}).effective("log.roll.jitter.ms") == 2 * HOUR
    assert BrokerConfig({"log.flush.scheduler.interval.ms": "9"}).effective("log.flush.interval.ms") == 9
    assert BrokerConfig({"log.flush.interval.ms": "7"}).effective("log.flush.interval.ms") == 7


def test_effective_of_an_ungrouped_key_is_its_value():
    assert BrokerConfig({"num.partitions": "5"}).effective("num.partitions") == 5


def test_node_id_and_broker_id():
    assert BrokerConfig({"broker.id": "7"}).node_id() == 7
    assert BrokerConfig({"node.id": "7"}).node_id() == 7
    assert BrokerConfig({"node.id": "7", "broker.id": "7"}).node_id() == 7
    with pytest.raises(InvalidConfigError, match="broker.id: 8 is not valid: must equal node.id \\(7\\)"):
        BrokerConfig({"node.id": "7", "broker.id": "8"})


def test_log_dirs_and_log_dir():
    assert BrokerConfig({"log.dir": "/a"}).log_dirs() == [Path("/a")]
    assert BrokerConfig({"log.dirs": "/b, /c", "log.dir": "/a"}).log_dirs() == [Path("/b"), Path("/c")]
    with pytest.raises(InvalidConfigError, match="log.dirs: .* must not be empty"):
        BrokerConfig({"log.dirs": ""})


def test_listeners_and_advertised_listeners():
    cfg = BrokerConfig({"listeners": "PLAINTEXT://:9092, internal://127.0.0.1:0",
                        "advertised.listeners": "PLAINTEXT://broker.example:9092"})
    assert cfg.listeners() == [Listener("PLAINTEXT", "", 9092), Listener("INTERNAL", "127.0.0.1", 0)]
    assert cfg.advertised_listeners() == [Listener("PLAINTEXT", "broker.example", 9092)]
    assert BrokerConfig({"listeners": "localhost:9999"}).listeners() == [Listener("PLAINTEXT", "localhost", 9999)]


def test_advertised_listener_names_must_be_listener_names():
    with pytest.raises(InvalidConfigError, match="advertised.listeners: .* listener name EXTERNAL is not in listeners"):
        BrokerConfig({"advertised.listeners": "EXTERNAL://h:1"})


def test_local_retention_must_fit_total():
    BrokerConfig({"log.retention.ms": "1000", "log.local.retention.ms": "1000"})
    BrokerConfig({"log.retention.ms": "-1", "log.local.retention.ms": "-1"})
    with pytest.raises(InvalidConfigError, match="log.local.retention.ms: 2000 is not valid: must not be more than log.retention.ms \\(1000\\)"):
        BrokerConfig({"log.retention.ms": "1000", "log.local.retention.ms": "2000"})
    with pytest.raises(InvalidConfigError, match="log.local.retention.bytes: -1 is not valid: must not be -1"):
        BrokerConfig({"log.retention.bytes": "1000", "log.local.retention.bytes": "-1"})


def test_tiering_default_needs_the_system_switch():
    with pytest.raises(InvalidConfigError, match="remote.storage.enable: true .* needs remote.log.storage.system.enable"):
        BrokerConfig({"remote.storage.enable": "true", "remote.log.storage.system.enable": "false"})


def test_secrets_never_appear_in_repr_or_describe():
    cfg = BrokerConfig({"remote.storage.s3.secret.access.key": "s3cr3t"})
    assert cfg.get("remote.storage.s3.secret.access.key").value == "s3cr3t"
    assert "s3cr3t" not in repr(cfg.get("remote.storage.s3.secret.access.key"))
    [entry] = cfg.describe(["remote.storage.s3.secret.access.key"], include_synonyms=True)
    assert entry.value is None and entry.is_sensitive
    assert entry.source is ConfigSource.STATIC_BROKER_CONFIG
    assert all(s.value is None for s in entry.synonyms)


def test_describe_broker_synonyms_follow_kafka():
    cfg = BrokerConfig({"log.retention.minutes": "10"})
    by_name = {e.name: e for e in cfg.describe(include_synonyms=True, include_documentation=True)}
    ms = by_name["log.retention.ms"]
    assert (ms.value, ms.source, ms.synonyms) == (None, ConfigSource.DEFAULT_CONFIG, [])
    minutes = by_name["log.retention.minutes"]
    assert minutes.value == "10" and minutes.source is ConfigSource.STATIC_BROKER_CONFIG
    assert [(s.name, s.value, s.source) for s in minutes.synonyms] == [
        ("log.retention.minutes", "10", ConfigSource.STATIC_BROKER_CONFIG),
        ("log.retention.hours", "168", ConfigSource.DEFAULT_CONFIG)]
    hours = by_name["log.retention.hours"]
    assert hours.source is ConfigSource.DEFAULT_CONFIG
    assert [s.name for s in hours.synonyms] == ["log.retention.hours"]
    assert all(e.read_only and e.documentation for e in by_name.values())


def test_describe_selected_keys_skips_unknown_names_and_hides_docs_unless_asked():
    entries = BrokerConfig().describe(["num.partitions", "no.such.key"])
    assert [e.name for e in entries] == ["num.partitions"]
    assert entries[0].documentation is None and entries[0].synonyms == []
    assert entries[0].value == "1"
