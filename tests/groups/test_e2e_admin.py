"""Admin clients and the `tierbroker groups` CLI against a live group."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata

from tests.support.broker import REPO, BrokerProcess

from .e2e_support import create_topic, produce, wait_until
from .kafka_python_member import kafka_python_member

TOPIC = GROUP = "admin-view"
PARTITIONS = 6
PER_PARTITION = 10


def cli(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "broker.cli", "groups", *args, "--bootstrap-server", bootstrap],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


@pytest.fixture(scope="module")
def live_group(tmp_path_factory):
    """A broker and one kafka-python member owning all six partitions, which has
    committed offset p in partition p (so the lag there is 10 - p)."""
    broker = BrokerProcess(tmp_path_factory.mktemp("groups-admin"), overrides={
        "group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}).start()
    bootstrap = broker.bootstrap
    create_topic(bootstrap, TOPIC, PARTITIONS)
    produce(bootstrap, TOPIC, [f"v{i}" for i in range(PARTITIONS * PER_PARTITION)], PARTITIONS)
    consumer = kafka_python_member(bootstrap, TOPIC, group_id=GROUP, client_id="admin-member",
                                   enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500)
    try:
        wait_until(lambda: consumer.poll(timeout_ms=100) is not None and len(consumer.assignment()) == PARTITIONS,
                   "the member to own every partition", interval=0)
        consumer.commit({TopicPartition(TOPIC, p): OffsetAndMetadata(p, "", -1) for p in range(PARTITIONS)})
        consumer.pause(*consumer.assignment())  # stay a member without moving the positions
        yield broker, consumer
    finally:
        consumer.close()
        broker.kill()


def test_kafka_python_admin_lists_and_describes(live_group):
    broker, _ = live_group
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert listed[GROUP]["group_state"] == "Stable"
        assert listed[GROUP]["protocol_type"] == "consumer"
        described = admin.describe_groups([GROUP])[GROUP]
        assert described["group_state"] == "Stable"
        assert described["protocol_type"] == "consumer"
        (member,) = described["members"]
        assert member["client_id"] == "admin-member"
        assert member["client_host"] == "/127.0.0.1"
        offsets = admin.list_group_offsets(GROUP)[GROUP]
        assert {tp.partition: meta.offset for tp, meta in offsets.items()} == {p: p for p in range(PARTITIONS)}
    finally:
        admin.close()


def test_confluent_admin_lists_and_describes(live_group):
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    broker, _ = live_group
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = admin.list_consumer_groups().result(timeout=30)
    assert GROUP in {g.group_id for g in listed.valid}
    described = admin.describe_consumer_groups([GROUP])[GROUP].result(timeout=30)
    assert described.state == ConsumerGroupState.STABLE
    (member,) = described.members
    assert member.client_id == "admin-member"
    assert sorted(tp.partition for tp in member.assignment.topic_partitions) == list(range(PARTITIONS))


def test_cli_describe_shows_lag(live_group):
    broker, _ = live_group
    result = cli(broker.bootstrap, "describe", GROUP, "--json")
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["state"] == "Stable" and view["protocol"] == "range"
    (member,) = view["members"]
    assert member["client_id"] == "admin-member"
    assert member["assignment"] == {TOPIC: list(range(PARTITIONS))}
    assert [(p["partition"], p["committed_offset"], p["log_end_offset"], p["lag"]) for p in view["partitions"]] == [
        (p, p, PER_PARTITION, PER_PARTITION - p) for p in range(PARTITIONS)]
    assert {p["member_id"] for p in view["partitions"]} == {member["member_id"]}

    table = cli(broker.bootstrap, "describe", GROUP)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    header = next(line for line in lines if line.startswith("TOPIC"))
    assert header.split()[:5] == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
    rows = [line.split() for line in lines if line.startswith(TOPIC + " ")]
    assert [(int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows] == [
        (p, p, PER_PARTITION, PER_PARTITION - p) for p in range(PARTITIONS)]


def test_cli_list_and_unknown_group(live_group):
    broker, _ = live_group
    listed = cli(broker.bootstrap, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"group": GROUP, "protocol_type": "consumer", "state": "Stable"} in json.loads(listed.stdout)
    missing = cli(broker.bootstrap, "describe", "no-such-group")
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr


def test_cli_reports_an_unreachable_broker():
    result = cli("127.0.0.1:1", "list")
    assert result.returncode == 1
    assert "cannot connect" in result.stderr


def test_delete_offsets_and_groups(live_group):
    broker, consumer = live_group
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        # Runs last in this module: the member leaves, the group becomes Empty.
        consumer.close()
        wait_until(lambda: {g["group_id"]: g["group_state"] for g in admin.list_groups()}.get(GROUP) == "Empty",
                   "the group to become empty")
        admin.delete_group_offsets(GROUP, [TopicPartition(TOPIC, 0)])
        offsets = admin.list_group_offsets(GROUP)[GROUP]
        assert sorted(tp.partition for tp in offsets) == list(range(1, PARTITIONS))
        admin.delete_groups([GROUP])
        assert GROUP not in {g["group_id"] for g in admin.list_groups()}
    finally:
        admin.close()
