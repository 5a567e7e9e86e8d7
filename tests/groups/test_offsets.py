"""Who may commit, expiry by KIP-211, OffsetDelete, and the admin views."""

from __future__ import annotations

import asyncio

import pytest

from broker.groups import CommittedOffset, GroupState
from broker.groups.admin import delete_groups, describe_group, list_groups
from broker.protocol import errors

from .harness import Harness, consumer_protocols, settle

DAY = 24 * 3600 * 1000
RETENTION = 7 * DAY


def run(body, tmp_path, **settings):
    async def main():
        h = Harness(tmp_path / "offsets", **settings)
        h.start_writer()
        try:
            await body(h)
        finally:
            await h.close()
    asyncio.run(main())


def at(h: Harness, n: int) -> CommittedOffset:
    return CommittedOffset(n, commit_timestamp_ms=h.clock.wall_ms())


# -- who may commit ------------------------------------------------------------------------


def test_simple_commit_creates_a_group_without_protocol(tmp_path):
    async def body(h):
        await h.coordinator.offsets.commit("solo", -1, "", None, {("t", 0): at(h, 5)})
        group = h.coordinator.groups["solo"]
        assert group.is_(GroupState.EMPTY) and group.protocol_type is None
        assert h.coordinator.offsets.fetch("solo", [("t", 0), ("t", 1)]) == {("t", 0): at(h, 5), ("t", 1): None}
        with pytest.raises(errors.IllegalGeneration):
            await h.coordinator.offsets.commit("unknown", 3, "m", None, {("t", 0): at(h, 1)})
    run(body, tmp_path)


def test_member_commits_are_checked(tmp_path):
    async def body(h):
        a, = await h.stable_group(1)
        commit = h.coordinator.offsets.commit
        await commit("g", a.generation_id, a.member_id, None, {("t", 0): at(h, 1)})
        with pytest.raises(errors.IllegalGeneration):
            await commit("g", a.generation_id + 1, a.member_id, None, {("t", 0): at(h, 2)})
        with pytest.raises(errors.UnknownMemberId):
            await commit("g", a.generation_id, "stranger", None, {("t", 0): at(h, 2)})
        with pytest.raises(errors.UnknownMemberId):  # a simple commit while the group has members
            await commit("g", -1, "", None, {("t", 0): at(h, 2)})
        # A rebalance starts: commits of the current generation are still accepted...
        b = h.join()
        await settle()
        await commit("g", a.generation_id, a.member_id, None, {("t", 0): at(h, 3)})
        # ...but not once the join phase ended and the assignment is pending.
        a_again = h.join(member_id=a.member_id)
        await settle()
        new = a_again.result()
        with pytest.raises(errors.RebalanceInProgress):
            await commit("g", new.generation_id, a.member_id, None, {("t", 0): at(h, 4)})
        assert h.coordinator.offsets.fetch("g", None) == {("t", 0): at(h, 3)}
        b.cancel()
    run(body, tmp_path)


def test_commit_counts_as_heartbeat(tmp_path):
    async def body(h):
        a, = await h.stable_group(1, session=10_000)
        for _ in range(3):
            h.clock.advance(6000)
            await h.coordinator.offsets.commit("g", a.generation_id, a.member_id, None, {("t", 0): at(h, 1)})
        assert a.member_id in h.coordinator.groups["g"].members
    run(body, tmp_path)


# -- expiry ---------------------------------------------------------------------------------


def test_empty_group_offsets_expire_retention_after_it_became_empty(tmp_path):
    async def body(h):
        a, = await h.stable_group(1, session=2 * DAY)
        await h.coordinator.offsets.commit("g", a.generation_id, a.member_id, None, {("t", 0): at(h, 1)})
        for _ in range(8):  # older than retention, but the group is not empty
            h.clock.advance(DAY)
            h.coordinator.heartbeat("g", a.generation_id, a.member_id, None)
        assert await h.coordinator.offsets.expire() == 0
        assert h.coordinator.leave_group("g", [(a.member_id, None)]) == [None]
        assert h.coordinator.groups["g"].is_(GroupState.EMPTY)
        h.clock.advance(RETENTION - 1)
        assert await h.coordinator.offsets.expire() == 0
        h.clock.advance(1)
        assert await h.coordinator.offsets.expire() == 1
        assert "g" not in h.coordinator.groups  # empty and without offsets: removed
    run(body, tmp_path, max_session_timeout_ms=2 * DAY)


def test_standalone_offsets_expire_retention_after_their_commit(tmp_path):
    async def body(h):
        await h.coordinator.offsets.commit("solo", -1, "", None, {("t", 0): at(h, 1)})
        h.clock.advance(DAY)
        await h.coordinator.offsets.commit("solo", -1, "", None, {("t", 1): at(h, 1)})
        h.clock.advance(RETENTION - DAY)
        assert await h.coordinator.offsets.expire() == 1
        assert list(h.coordinator.offsets.fetch("solo", None)) == [("t", 1)]
        h.clock.advance(DAY)
        assert await h.coordinator.offsets.expire() == 1
        assert "solo" not in h.coordinator.groups
    run(body, tmp_path)


def test_stable_group_expires_only_unsubscribed_topics(tmp_path):
    async def body(h):
        a, = await h.stable_group(1, protocols=consumer_protocols("t"), session=2 * DAY)
        await h.coordinator.offsets.commit("g", a.generation_id, a.member_id, None,
                                           {("t", 0): at(h, 1), ("old", 0): at(h, 1)})
        for _ in range(8):  # stay alive for a week
            h.clock.advance(DAY)
            h.coordinator.heartbeat("g", a.generation_id, a.member_id, None)
        assert await h.coordinator.offsets.expire() == 1
        assert list(h.coordinator.offsets.fetch("g", None)) == [("t", 0)]
    run(body, tmp_path, max_session_timeout_ms=2 * DAY)


def test_explicit_retention_time_wins(tmp_path):
    async def body(h):
        value = CommittedOffset(1, commit_timestamp_ms=h.clock.wall_ms(),
                                expire_timestamp_ms=h.clock.wall_ms() + 1000)
        await h.coordinator.offsets.commit("solo", -1, "", None, {("t", 0): value})
        h.clock.advance(999)
        assert await h.coordinator.offsets.expire() == 0
        h.clock.advance(1)
        assert await h.coordinator.offsets.expire() == 1
    run(body, tmp_path)


def test_empty_since_survives_restart(tmp_path):
    """A restarted coordinator expires an empty group by when it became empty."""
    async def first(h):
        a, = await h.stable_group(1)
        await h.coordinator.offsets.commit("g", a.generation_id, a.member_id, None, {("t", 0): at(h, 1)})
        h.clock.advance(DAY)
        h.coordinator.leave_group("g", [(a.member_id, None)])
        await h.coordinator.offsets.commit("g", -1, "", None, {("t", 1): at(h, 1)})  # flush
        h.coordinator.close()

    run(first, tmp_path)

    async def second(h):
        h.coordinator.load_groups()
        group = h.coordinator.groups["g"]
        assert group.is_(GroupState.EMPTY) and group.protocol_type == "consumer"
        assert group.generation_id == 2
        # The manual clock restarted at the same wall time; the group became empty a day in.
        h.clock.advance(DAY + RETENTION)
        assert await h.coordinator.offsets.expire() == 2
    run(second, tmp_path)


# -- OffsetDelete and admin --------------------------------------------------------------------


def test_offset_delete_refuses_subscribed_topics(tmp_path):
    async def body(h):
        a, = await h.stable_group(1, protocols=consumer_protocols("t"))
        await h.coordinator.offsets.commit("g", a.generation_id, a.member_id, None,
                                           {("t", 0): at(h, 1), ("u", 0): at(h, 1)})
        out = await h.coordinator.offsets.delete("g", [("t", 0), ("u", 0)])
        assert isinstance(out[("t", 0)], errors.GroupSubscribedToTopic)
        assert out[("u", 0)] is None
        assert list(h.coordinator.offsets.fetch("g", None)) == [("t", 0)]
        with pytest.raises(errors.GroupIdNotFound):
            await h.coordinator.offsets.delete("nope", [("t", 0)])
        h.coordinator.leave_group("g", [(a.member_id, None)])
        assert (await h.coordinator.offsets.delete("g", [("t", 0)])) == {("t", 0): None}
    run(body, tmp_path)


def test_list_describe_delete(tmp_path):
    async def body(h):
        a, b = await h.stable_group(2, protocols=consumer_protocols("t"))
        await h.coordinator.offsets.commit("solo", -1, "", None, {("t", 0): at(h, 1)})
        listing = list_groups(h.coordinator)
        assert [(g.group_id, g.protocol_type, g.state) for g in listing] == [
            ("g", "consumer", "Stable"), ("solo", "", "Empty")]
        assert [g.group_id for g in list_groups(h.coordinator, ["empty"])] == ["solo"]
        described = describe_group(h.coordinator, "g")
        assert described["group_state"] == "Stable" and described["protocol_data"] == "range"
        assert {m["member_id"]: m["member_assignment"] for m in described["members"]} == {
            a.member_id: b"a0", b.member_id: b"a1"}
        assert describe_group(h.coordinator, "nope")["group_state"] == "Dead"
        out = await delete_groups(h.coordinator, ["g", "solo", "nope"])
        assert isinstance(out["g"], errors.NonEmptyGroup)
        assert out["solo"] is None
        assert isinstance(out["nope"], errors.GroupIdNotFound)
        assert "solo" not in h.coordinator.groups and not h.coordinator.offsets.fetch("solo", None)
    run(body, tmp_path)
