"""Real consumer groups (kafka-python, aiokafka, confluent-kafka) against a broker process."""

from __future__ import annotations

import pytest

from tests.support.broker import BrokerProcess

from .e2e_support import (
    LIBRARIES,
    ConsumerProcess,
    create_topic,
    group_view,
    produce,
    stable_with,
    wait_until,
)

PARTITIONS = 6
# Small timeouts keep the tests quick; the broker's lower bound is lowered to allow them.
BROKER_OVERRIDES = {"group.initial.rebalance.delay.ms": "500", "group.min.session.timeout.ms": "1000"}


@pytest.fixture(scope="module")
def group_broker(tmp_path_factory):
    proc = BrokerProcess(tmp_path_factory.mktemp("groups-e2e"), overrides=BROKER_OVERRIDES).start()
    yield proc
    proc.kill()


@pytest.mark.parametrize("library", LIBRARIES)
def test_three_consumers_share_a_topic_exactly_once(group_broker, library, tmp_path):
    bootstrap = group_broker.bootstrap
    topic = group = f"share-{library}"
    create_topic(bootstrap, topic, PARTITIONS)
    consumers = [ConsumerProcess(library, bootstrap, topic, group, 6000, tmp_path) for _ in range(3)]
    try:
        # Produce only once the group has settled, so no rebalance runs while
        # records flow (a rebalance may legitimately redeliver uncommitted ones).
        wait_until(lambda: stable_with(bootstrap, group, members=3, partitions=PARTITIONS),
                   "three members sharing six partitions")
        expected = [f"{library}-{i}" for i in range(600)]
        produce(bootstrap, topic, expected, PARTITIONS)
        wait_until(lambda: sum(len(c.snapshot()) for c in consumers) >= len(expected),
                   "every record to be consumed")
        received = [v for c in consumers for v in c.snapshot()]
        assert sorted(received) == sorted(expected)  # each record once, none lost
        assert all(c.snapshot() for c in consumers)  # each member did its share
        view = group_view(bootstrap, group)
        assert view["state"] == "Stable"
        assert {p["lag"] for p in view["partitions"]} == {0}
    finally:
        for c in consumers:
            c.kill()


@pytest.mark.parametrize("library", LIBRARIES)
def test_killed_consumer_is_replaced_and_its_successor_resumes(group_broker, library, tmp_path):
    bootstrap = group_broker.bootstrap
    topic = group = f"crash-{library}"
    create_topic(bootstrap, topic, PARTITIONS)
    first_batch = [f"first-{i}" for i in range(60)]
    produce(bootstrap, topic, first_batch, PARTITIONS)
    doomed = ConsumerProcess(library, bootstrap, topic, group, 3000, tmp_path)
    try:
        wait_until(lambda: len(doomed.snapshot()) >= len(first_batch), "the first consumer to commit")
        assert sorted(doomed.snapshot()) == sorted(first_batch)
    finally:
        doomed.kill()  # no LeaveGroup: the group only learns of it by the session timeout
    second_batch = [f"second-{i}" for i in range(60)]
    produce(bootstrap, topic, second_batch, PARTITIONS)
    successor = ConsumerProcess(library, bootstrap, topic, group, 3000, tmp_path)
    try:
        # The successor only gets partitions once the dead member's session has
        # expired; it then starts at the committed offsets, so in every partition
        # it would see a first-batch record before the second batch if it did not.
        wait_until(lambda: len(successor.snapshot()) >= len(second_batch), "the successor to catch up")
        assert sorted(successor.snapshot()) == sorted(second_batch)
        view = group_view(bootstrap, group)
        assert len(view["members"]) == 1
        assert view["members"][0]["client_id"] == f"e2e-{library}"
    finally:
        successor.kill()


def test_cooperative_sticky_group_shares_a_topic_exactly_once(group_broker, tmp_path):
    """librdkafka's incremental (cooperative) rebalancing runs through the same
    classic protocol: the broker passes its assignments through untouched."""
    bootstrap = group_broker.bootstrap
    topic = group = "share-cooperative"
    create_topic(bootstrap, topic, PARTITIONS)
    consumers = [ConsumerProcess("confluent", bootstrap, topic, group, 6000, tmp_path,
                                 **{"partition.assignment.strategy": "cooperative-sticky"}) for _ in range(3)]
    try:
        wait_until(lambda: stable_with(bootstrap, group, members=3, partitions=PARTITIONS),
                   "three members sharing six partitions")
        assert group_view(bootstrap, group)["protocol"] == "cooperative-sticky"
        expected = [f"coop-{i}" for i in range(300)]
        produce(bootstrap, topic, expected, PARTITIONS)
        wait_until(lambda: sum(len(c.snapshot()) for c in consumers) >= len(expected),
                   "every record to be consumed")
        assert sorted(v for c in consumers for v in c.snapshot()) == sorted(expected)
    finally:
        for c in consumers:
            c.kill()


def test_static_member_restart_keeps_its_assignment_without_rebalance(group_broker, tmp_path):
    bootstrap = group_broker.bootstrap
    topic = group = "static-restart"
    create_topic(bootstrap, topic, PARTITIONS)
    first = [f"first-{i}" for i in range(60)]
    produce(bootstrap, topic, first, PARTITIONS)
    consumers = [ConsumerProcess("confluent", bootstrap, topic, group, 30_000, tmp_path,
                                 **{"group.instance.id": f"instance-{i}"}) for i in range(2)]
    try:
        wait_until(lambda: stable_with(bootstrap, group, members=2, partitions=PARTITIONS), "a stable group")
        wait_until(lambda: sum(len(c.snapshot()) for c in consumers) >= len(first), "the first batch")
        before = {m["group_instance_id"]: m for m in group_view(bootstrap, group)["members"]}
        rebalances = group_broker.log_since_start().count(f"preparing to rebalance group {group} ")
        consumers[1].kill()  # gone without LeaveGroup; back long before its 30 s session ends
        second = [f"second-{i}" for i in range(60)]
        produce(bootstrap, topic, second, PARTITIONS)
        consumers[1] = ConsumerProcess("confluent", bootstrap, topic, group, 30_000, tmp_path,
                                       **{"group.instance.id": "instance-1"})
        wait_until(lambda: sum(v.startswith("second-") for c in consumers for v in c.snapshot()) >= len(second),
                   "the second batch")
        after = {m["group_instance_id"]: m for m in group_view(bootstrap, group)["members"]}
        assert after["instance-1"]["member_id"] != before["instance-1"]["member_id"]
        assert after["instance-1"]["assignment"] == before["instance-1"]["assignment"]
        assert after["instance-0"] == before["instance-0"]
        # The restarted member resumed its partitions from the committed offsets
        # and nobody else was disturbed: no rebalance happened.
        assert sorted(consumers[1].snapshot()) == sorted(
            v for v in second if int(v.split("-")[1]) % PARTITIONS in after["instance-1"]["assignment"][topic])
        assert group_broker.log_since_start().count(f"preparing to rebalance group {group} ") == rebalances
    finally:
        for c in consumers:
            c.kill()
