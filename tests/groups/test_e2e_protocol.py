"""Every version of every group API, on the wire, against a broker process.

The client libraries each pick one version per API; this walks all of them
with the project's raw client, so that each version's request decodes and each
response (success and error shapes alike) encodes.
"""

from __future__ import annotations

import pytest

from broker.groups.consumer_protocol import Assignment, encode_assignment
from broker.protocol import errors
from broker.protocol.messages import BY_NAME
from tests.support.broker import BrokerProcess
from tests.support.raw_client import RawClient

from .e2e_support import create_topic
from .harness import subscription

TOPIC = "raw-groups"


@pytest.fixture(scope="module")
def raw_broker(tmp_path_factory):
    broker = BrokerProcess(tmp_path_factory.mktemp("groups-raw"), overrides={
        "group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}).start()
    create_topic(broker.bootstrap, TOPIC, 2)
    yield broker
    broker.kill()


def versions(api: str) -> range:
    schema = BY_NAME[api]
    return range(schema.valid.low, schema.valid.high + 1)


def test_find_coordinator_every_version(raw_broker):
    with RawClient(raw_broker.bootstrap) as raw:
        for v in versions("FindCoordinator"):
            r = raw.request("FindCoordinator", v, {"key": "g", "key_type": 0, "coordinator_keys": ["g", "h"]})
            entries = r.coordinators if v >= 4 else [r]
            assert len(entries) == (2 if v >= 4 else 1)
            for e in entries:
                assert (e.error_code, e.port, e.host) == (0, raw_broker.port, "127.0.0.1"), v
            if v >= 1:
                txn = raw.request("FindCoordinator", v, {"key": "t", "key_type": 1, "coordinator_keys": ["t"]})
                entry = txn.coordinators[0] if v >= 4 else txn
                assert entry.error_code == errors.CoordinatorNotAvailable.code


def _join(raw, v: int, group: str, member_id: str = "") -> object:
    return raw.request("JoinGroup", v, {
        "group_id": group, "session_timeout_ms": 6000, "rebalance_timeout_ms": 6000,
        "member_id": member_id, "group_instance_id": None, "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": subscription(TOPIC)}]})


@pytest.mark.parametrize("join_version", list(versions("JoinGroup")))
def test_membership_round_trip(raw_broker, join_version):
    v = join_version
    group = f"raw-member-{v}"
    sync_v, hb_v, leave_v = min(v, 5), min(v, 4), min(v, 5)
    commit_v, fetch_v = min(v + 1, 9), min(v, 9)
    with RawClient(raw_broker.bootstrap) as raw:
        joined = _join(raw, v, group)
        if v >= 4:
            assert joined.error_code == errors.MemberIdRequired.code
            joined = _join(raw, v, group, joined.member_id)
        assert joined.error_code == 0
        assert joined.generation_id == 1 and joined.leader == joined.member_id
        assert [m.member_id for m in joined.members] == [joined.member_id]
        assert bytes(joined.members[0].metadata) == subscription(TOPIC)
        assignment = encode_assignment(Assignment(0, {TOPIC: [0, 1]}))
        synced = raw.request("SyncGroup", sync_v, {
            "group_id": group, "generation_id": 1, "member_id": joined.member_id,
            "protocol_type": "consumer", "protocol_name": "range",
            "assignments": [{"member_id": joined.member_id, "assignment": assignment}]})
        assert synced.error_code == 0 and bytes(synced.assignment) == assignment
        beat = raw.request("Heartbeat", hb_v, {"group_id": group, "generation_id": 1,
                                               "member_id": joined.member_id})
        assert beat.error_code == 0
        stale = raw.request("Heartbeat", hb_v, {"group_id": group, "generation_id": 0,
                                                "member_id": joined.member_id})
        assert stale.error_code == errors.IllegalGeneration.code
        committed = raw.request("OffsetCommit", commit_v, {
            "group_id": group, "generation_id_or_member_epoch": 1, "member_id": joined.member_id,
            "topics": [{"name": TOPIC, "partitions": [
                {"partition_index": 0, "committed_offset": 7, "committed_metadata": "seven"},
                {"partition_index": 9, "committed_offset": 1, "committed_metadata": None}]}]})
        codes = [p.error_code for p in committed.topics[0].partitions]
        assert codes == [0, errors.UnknownTopicOrPartition.code]
        fetched = raw.request("OffsetFetch", fetch_v, {
            "group_id": group, "topics": [{"name": TOPIC, "partition_indexes": [0, 1]}],
            "groups": [{"group_id": group, "topics": [{"name": TOPIC, "partition_indexes": [0, 1]}]}]})
        topics = fetched.groups[0].topics if fetch_v >= 8 else fetched.topics
        assert [(p.partition_index, p.committed_offset, p.metadata) for p in topics[0].partitions] == [
            (0, 7, "seven"), (1, -1, "")]
        described = raw.request("DescribeGroups", min(v, 5), {"groups": [group, "raw-nope"]})
        mine, nope = described.groups
        assert (mine.group_state, mine.protocol_data, len(mine.members)) == ("Stable", "range", 1)
        assert bytes(mine.members[0].member_assignment) == assignment
        assert nope.group_state == "Dead"
        left = raw.request("LeaveGroup", leave_v, {
            "group_id": group, "member_id": joined.member_id,
            "members": [{"member_id": joined.member_id}, {"member_id": "stranger"}]})
        if leave_v >= 3:
            assert left.error_code == 0
            assert [m.error_code for m in left.members] == [0, errors.UnknownMemberId.code]
        else:
            assert left.error_code == 0
        after = raw.request("Heartbeat", hb_v, {"group_id": group, "generation_id": 1,
                                                "member_id": joined.member_id})
        assert after.error_code == errors.UnknownMemberId.code


@pytest.mark.parametrize("version", list(versions("OffsetCommit")))
def test_simple_commits_every_version(raw_broker, version):
    group = f"raw-simple-{version}"
    with RawClient(raw_broker.bootstrap) as raw:
        r = raw.request("OffsetCommit", version, {
            "group_id": group, "generation_id_or_member_epoch": -1, "member_id": "", "retention_time_ms": -1,
            "topics": [{"name": TOPIC, "partitions": [
                {"partition_index": 1, "committed_offset": 3, "commit_timestamp": -1, "committed_metadata": "m"},
                {"partition_index": 0, "committed_offset": 3, "committed_metadata": "x" * 5000}]}]})
        assert [p.error_code for p in r.topics[0].partitions] == [0, 12]  # OFFSET_METADATA_TOO_LARGE
        for fetch_v in versions("OffsetFetch"):
            body = {"group_id": group, "topics": None if fetch_v >= 2 else [
                {"name": TOPIC, "partition_indexes": [1]}],
                    "groups": [{"group_id": group, "topics": None}], "require_stable": True}
            fetched = raw.request("OffsetFetch", fetch_v, body)
            topics = fetched.groups[0].topics if fetch_v >= 8 else fetched.topics
            assert [(t.name, p.partition_index, p.committed_offset) for t in topics for p in t.partitions] == [
                (TOPIC, 1, 3)], fetch_v


def test_list_delete_and_offset_delete_every_version(raw_broker):
    with RawClient(raw_broker.bootstrap) as raw:
        for v in range(3):
            group = f"raw-delete-{v}"
            raw.request("OffsetCommit", 2, {
                "group_id": group, "generation_id_or_member_epoch": -1, "member_id": "", "retention_time_ms": -1,
                "topics": [{"name": TOPIC, "partitions": [
                    {"partition_index": 0, "committed_offset": 1}, {"partition_index": 1, "committed_offset": 1}]}]})
        for v in versions("ListGroups"):
            listed = raw.request("ListGroups", v, {"states_filter": ["Empty"], "types_filter": []})
            assert listed.error_code == 0
            names = {g.group_id for g in listed.groups}
            assert {"raw-delete-0", "raw-delete-1", "raw-delete-2"} <= names
            if v >= 4:
                assert {g.group_state for g in listed.groups} == {"Empty"}
        stable = raw.request("ListGroups", 4, {"states_filter": ["stable"]})
        assert all(g.group_state == "Stable" for g in stable.groups)
        deleted = raw.request("OffsetDelete", 0, {"group_id": "raw-delete-0", "topics": [
            {"name": TOPIC, "partitions": [{"partition_index": 0}]},
            {"name": "no-such-topic", "partitions": [{"partition_index": 0}]}]})
        assert deleted.error_code == 0
        assert [[p.error_code for p in t.partitions] for t in deleted.topics] == [
            [0], [errors.UnknownTopicOrPartition.code]]
        missing = raw.request("OffsetDelete", 0, {"group_id": "raw-nope", "topics": []})
        assert missing.error_code == errors.GroupIdNotFound.code
        for v in versions("DeleteGroups"):
            r = raw.request("DeleteGroups", v, {"groups_names": [f"raw-delete-{v}", "raw-nope"]})
            assert [(x.group_id, x.error_code) for x in r.results] == [
                (f"raw-delete-{v}", 0), ("raw-nope", errors.GroupIdNotFound.code)]


def test_invalid_requests_get_errors_not_hangups(raw_broker):
    with RawClient(raw_broker.bootstrap) as raw:
        bad_timeout = raw.request("JoinGroup", 5, {
            "group_id": "raw-bad", "session_timeout_ms": 10, "rebalance_timeout_ms": 10, "member_id": "",
            "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b""}]})
        assert bad_timeout.error_code == errors.InvalidSessionTimeout.code
        no_group = raw.request("JoinGroup", 5, {
            "group_id": "", "session_timeout_ms": 6000, "rebalance_timeout_ms": 6000, "member_id": "",
            "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b""}]})
        assert no_group.error_code == errors.InvalidGroupId.code
        no_protocols = raw.request("JoinGroup", 3, {
            "group_id": "raw-bad", "session_timeout_ms": 6000, "rebalance_timeout_ms": 6000, "member_id": "",
            "protocol_type": "consumer", "protocols": []})
        assert no_protocols.error_code == errors.InconsistentGroupProtocol.code
        unknown = raw.request("SyncGroup", 3, {"group_id": "raw-bad", "generation_id": 1, "member_id": "m",
                                               "assignments": []})
        assert unknown.error_code == errors.UnknownMemberId.code
        # A group whose metadata is not a consumer subscription: OffsetDelete must
        # refuse rather than guess that the topic is unused.
        joined = raw.request("JoinGroup", 3, {
            "group_id": "raw-garbage", "session_timeout_ms": 6000, "rebalance_timeout_ms": 6000, "member_id": "",
            "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b"\xff"}]})
        raw.request("SyncGroup", 3, {"group_id": "raw-garbage", "generation_id": joined.generation_id,
                                     "member_id": joined.member_id, "assignments": []})
        refused = raw.request("OffsetDelete", 0, {"group_id": "raw-garbage", "topics": [
            {"name": TOPIC, "partitions": [{"partition_index": 0}]}]})
        assert refused.topics[0].partitions[0].error_code == errors.GroupSubscribedToTopic.code
