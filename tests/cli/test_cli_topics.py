"""`tierbroker topics` end to end: the CLI as a subprocess against a live broker."""

from __future__ import annotations

import pytest

from tests.support.broker import BrokerProcess

from .cli_support import cli, cli_json, produce


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    proc = BrokerProcess(tmp_path_factory.mktemp("cli-topics")).start()
    yield proc
    proc.kill()


def topics(broker: BrokerProcess, *args: str):
    return cli("topics", *args, "--bootstrap-server", broker.bootstrap)


def topics_json(broker: BrokerProcess, *args: str):
    return cli_json("topics", *args, "--bootstrap-server", broker.bootstrap)


def test_create_then_list(broker):
    created = topics(broker, "create", "orders", "--partitions", "3", "--config", "retention.ms=3600000")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created topic orders with 3 partitions retention.ms=3600000"
    assert topics_json(broker, "create", "audit", "--partitions", "2") == {
        "topic": "audit", "created": True, "partitions": 2, "configs": {}}

    listed = {t["topic"]: t for t in topics_json(broker, "list")}
    assert listed["orders"]["partitions"] == 3 and listed["orders"]["tiered"] is False
    assert listed["audit"]["partitions"] == 2
    assert len(listed["orders"]["topic_id"]) == 36

    table = topics(broker, "list").stdout.splitlines()
    assert table[0].split() == ["TOPIC", "PARTITIONS", "TIERED", "TOPIC-ID"]
    row = next(line.split() for line in table if line.startswith("orders "))
    assert row[:3] == ["orders", "3", "no"]


def test_create_refusals_print_the_brokers_message(broker):
    assert topics(broker, "create", "dup").returncode == 0
    again = topics(broker, "create", "dup")
    assert again.returncode == 1
    assert "topic 'dup' already exists" in again.stderr and "TOPIC_ALREADY_EXISTS" in again.stderr
    tolerated = topics(broker, "create", "dup", "--if-not-exists")
    assert tolerated.returncode == 0 and "already exists" in tolerated.stdout
    assert topics_json(broker, "create", "dup", "--if-not-exists")["created"] is False

    bad_config = topics(broker, "create", "bad-config", "--config", "retention.ms=soon")
    assert bad_config.returncode == 1
    assert "retention.ms" in bad_config.stderr and "INVALID_CONFIG" in bad_config.stderr
    bad_name = topics(broker, "create", "no spaces")
    assert bad_name.returncode == 1 and "INVALID_TOPIC_EXCEPTION" in bad_name.stderr
    assert topics(broker, "create", "rf", "--replication-factor", "3").returncode == 1

    usage = topics(broker, "create", "x", "--config", "novalue")
    assert usage.returncode == 2 and "KEY=VALUE" in usage.stderr


def test_describe_shows_partitions_offsets_and_non_default_configs(broker):
    assert topics(broker, "create", "clicks", "--partitions", "2", "--config", "segment.bytes=1048576",
                  "--config", "cleanup.policy=delete").returncode == 0
    produce(broker.bootstrap, "clicks", [b"v%d" % i for i in range(10)], partitions=2)

    described = topics_json(broker, "describe", "clicks")
    assert described["topic"] == "clicks" and described["tiered"] is False
    assert [p["partition"] for p in described["partitions"]] == [0, 1]
    for p in described["partitions"]:
        assert p["leader"] == 0 and p["replicas"] == [0] and p["isr"] == [0]
        assert (p["earliest"], p["earliest_local"], p["latest_tiered"], p["latest"]) == (0, 0, None, 5)
    # Only what differs from the defaults: the two overrides, nothing inherited.
    assert described["configs"] == {
        "cleanup.policy": {"value": "delete", "source": "topic", "sensitive": False, "read_only": False},
        "segment.bytes": {"value": "1048576", "source": "topic", "sensitive": False, "read_only": False},
    }

    table = topics(broker, "describe", "clicks")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("TOPIC clicks  ID ") and "PARTITIONS 2" in lines[0] and "TIERED no" in lines[0]
    header = next(i for i, line in enumerate(lines) if line.startswith("PARTITION "))
    assert lines[header].split() == ["PARTITION", "LEADER", "REPLICAS", "ISR", "EARLIEST", "EARLIEST-LOCAL",
                                     "LATEST-TIERED", "LATEST"]
    assert lines[header + 1].split() == ["0", "0", "0", "0", "0", "0", "-", "5"]
    configs = next(i for i, line in enumerate(lines) if line.startswith("CONFIG "))
    assert [line.split() for line in lines[configs:]] == [
        ["CONFIG", "VALUE", "SOURCE"], ["cleanup.policy", "delete", "topic"], ["segment.bytes", "1048576", "topic"]]


def test_describe_of_a_broker_wide_setting_names_its_source(tmp_path):
    with BrokerProcess(tmp_path, overrides={"log.retention.ms": "7200000"}) as broker:
        assert topics(broker, "create", "inherits").returncode == 0
        configs = topics_json(broker, "describe", "inherits")["configs"]
        assert configs["retention.ms"]["value"] == "7200000"
        assert configs["retention.ms"]["source"] == "broker"


def test_describe_unknown_topic(broker):
    result = topics(broker, "describe", "nowhere")
    assert result.returncode == 1
    assert "topic 'nowhere' does not exist" in result.stderr
    # It asked without creating the topic.
    assert "nowhere" not in {t["topic"] for t in topics_json(broker, "list")}


def test_alter_sets_and_deletes_overrides(broker):
    assert topics(broker, "create", "tunable", "--config", "retention.ms=60000").returncode == 0
    altered = topics(broker, "alter", "tunable", "--set", "segment.bytes=2097152", "--set", "retention.bytes=1000000")
    assert altered.returncode == 0, altered.stderr
    assert altered.stdout.strip() == "altered topic tunable: set segment.bytes=2097152, set retention.bytes=1000000"
    configs = topics_json(broker, "describe", "tunable")["configs"]
    # Incremental: the override it did not name is still there.
    assert {k: v["value"] for k, v in configs.items()} == {
        "retention.ms": "60000", "segment.bytes": "2097152", "retention.bytes": "1000000"}

    assert topics_json(broker, "alter", "tunable", "--delete", "retention.ms") == {
        "topic": "tunable", "set": {}, "deleted": ["retention.ms"]}
    assert set(topics_json(broker, "describe", "tunable")["configs"]) == {"segment.bytes", "retention.bytes"}


def test_alter_refusals(broker):
    assert topics(broker, "create", "strict").returncode == 0
    bad = topics(broker, "alter", "strict", "--set", "retention.ms=forever")
    assert bad.returncode == 1 and "retention.ms" in bad.stderr and "INVALID_CONFIG" in bad.stderr
    missing = topics(broker, "alter", "absent", "--set", "retention.ms=1")
    assert missing.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in missing.stderr
    nothing = topics(broker, "alter", "strict")
    assert nothing.returncode == 2 and "--set" in nothing.stderr


def test_unreachable_broker():
    result = cli("topics", "list", "--bootstrap-server", "127.0.0.1:1")
    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr and "cannot connect" in result.stderr
