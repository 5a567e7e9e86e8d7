"""Committed offsets survive a broker SIGKILL the moment the commit is answered."""

from __future__ import annotations

from kafka import TopicPartition
from kafka.admin import KafkaAdminClient

from broker.protocol import errors
from tests.support.broker import BrokerProcess
from tests.support.raw_client import RawClient

from .e2e_support import create_topic, produce, wait_until
from .kafka_python_member import kafka_python_member

OVERRIDES = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}


def _consume(bootstrap: str, topic: str, group: str, count: int) -> list[str]:
    consumer = kafka_python_member(bootstrap, topic, group_id=group, auto_offset_reset="earliest",
                                   enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=1000)
    values: list[str] = []
    try:
        def got_all():
            for records in consumer.poll(timeout_ms=200).values():
                values.extend(r.value.decode() for r in records)
            return len(values) >= count
        wait_until(got_all, f"{count} records for {group}", interval=0)
        consumer.commit()
    finally:
        consumer.close()
    return values


def _raw_commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    with RawClient(bootstrap) as raw:
        response = raw.request("OffsetCommit", 2, {
            "group_id": group, "generation_id_or_member_epoch": -1, "member_id": "",
            "retention_time_ms": -1, "topics": [{"name": topic, "partitions": [
                {"partition_index": p, "committed_offset": o, "committed_metadata": f"raw-{p}"}
                for p, o in offsets.items()]}]})
    assert {p.error_code for t in response.topics for p in t.partitions} == {0}


def _raw_fetch(bootstrap: str, group: str) -> dict[tuple[str, int], tuple[int, str]]:
    with RawClient(bootstrap) as raw:
        response = raw.request("OffsetFetch", 8, {"groups": [{"group_id": group, "topics": None}]})
    return {(t.name, p.partition_index): (p.committed_offset, p.metadata)
            for t in response.groups[0].topics for p in t.partitions}


def test_committed_offsets_survive_sigkill(tmp_path):
    broker = BrokerProcess(tmp_path / "broker", overrides=OVERRIDES).start()
    try:
        bootstrap = broker.bootstrap
        create_topic(bootstrap, "durable", 3)
        produce(bootstrap, "durable", [f"old-{i}" for i in range(30)], 3)
        assert sorted(_consume(bootstrap, "durable", "consumers", 30)) == sorted(f"old-{i}" for i in range(30))
        # A "simple" commit, and SIGKILL as soon as it is answered.
        _raw_commit(bootstrap, "simple", "durable", {0: 4, 1: 5, 2: 6})
        broker.kill()
        broker.start()
        bootstrap = broker.bootstrap
        assert _raw_fetch(bootstrap, "simple") == {
            ("durable", 0): (4, "raw-0"), ("durable", 1): (5, "raw-1"), ("durable", 2): (6, "raw-2")}
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            offsets = admin.list_group_offsets("consumers")["consumers"]
            assert {tp: meta.offset for tp, meta in offsets.items()} == {
                TopicPartition("durable", p): 10 for p in range(3)}
            groups = {g["group_id"]: g for g in admin.list_groups()}
            assert groups["consumers"]["group_state"] == "Empty"
            assert groups["consumers"]["protocol_type"] == "consumer"
        finally:
            admin.close()
        # The group resumes where it left off.
        produce(bootstrap, "durable", [f"new-{i}" for i in range(30)], 3)
        assert sorted(_consume(bootstrap, "durable", "consumers", 30)) == sorted(f"new-{i}" for i in range(30))
        assert "torn tail" not in broker.log_since_start()
    finally:
        broker.kill()


def test_shutdown_answers_a_parked_join(tmp_path):
    """SIGTERM while a JoinGroup waits for a rebalance: the broker answers it
    (NOT_COORDINATOR, so the client looks for the coordinator again) instead of
    holding the drain for the rebalance timeout, and exits cleanly."""
    import threading

    broker = BrokerProcess(tmp_path / "broker", overrides=OVERRIDES).start()
    try:
        def join(raw, member_id=""):
            return raw.request("JoinGroup", 5, {
                "group_id": "parked", "session_timeout_ms": 60_000, "rebalance_timeout_ms": 120_000,
                "member_id": member_id, "protocol_type": "consumer",
                "protocols": [{"name": "range", "metadata": b""}]})

        with RawClient(broker.bootstrap, timeout=60) as first, RawClient(broker.bootstrap, timeout=60) as second:
            member_id = join(first, join(first).member_id).member_id  # MEMBER_ID_REQUIRED, then join
            first.request("SyncGroup", 3, {"group_id": "parked", "generation_id": 1, "member_id": member_id,
                                           "assignments": [{"member_id": member_id, "assignment": b""}]})
            answers = []
            newcomer = join(second)  # MEMBER_ID_REQUIRED
            waiting = threading.Thread(target=lambda: answers.append(join(second, newcomer.member_id)))
            waiting.start()  # parked: the first member has not rejoined
            wait_until(lambda: "preparing to rebalance group parked in generation 1" in broker.log_since_start(),
                       "the rebalance to start")
            assert broker.stop() == 0
            waiting.join(timeout=60)
            assert [a.error_code for a in answers] == [errors.NotCoordinator.code]
    finally:
        broker.kill()
