"""The classic group protocol on a manual clock: join, sync, heartbeat, leave,
timeouts, static membership, the initial rebalance delay."""

from __future__ import annotations

import asyncio

import pytest

from broker.groups import GroupState, MemberIdRequired
from broker.protocol import errors

from .harness import REBALANCE, SESSION, Harness, consumer_protocols, settle


def run(coro_fn):
    """Run an async test body with a fresh harness in tmp_path."""
    def wrapper(tmp_path, **kwargs):
        async def main():
            h = Harness(tmp_path / "offsets", **kwargs)
            try:
                await coro_fn(h)
            finally:
                await h.close()
        asyncio.run(main())
    return wrapper


def state(h: Harness, group: str = "g") -> GroupState:
    return h.coordinator.groups[group].state


# -- join ------------------------------------------------------------------------------


def test_member_id_required_then_join(tmp_path):
    @run
    async def body(h):
        first = h.join(require_known=True)
        await settle()
        with pytest.raises(MemberIdRequired) as info:
            first.result()
        member_id = info.value.member_id
        assert member_id.startswith("client-")
        assert state(h) is GroupState.EMPTY  # a pending member does not start a rebalance
        joined = h.join(member_id=member_id, require_known=True)
        await settle()
        h.clock.advance(0)
        await settle()
        result = joined.result()
        assert result.member_id == member_id == result.leader_id
        assert result.generation_id == 1
        assert result.protocol_name == "range"
        assert [m["member_id"] for m in result.members] == [member_id]
        assert state(h) is GroupState.COMPLETING_REBALANCE
    body(tmp_path)


def test_pending_member_expires_after_session_timeout(tmp_path):
    @run
    async def body(h):
        first = h.join(require_known=True)
        await settle()
        member_id = first.exception().member_id
        assert member_id in h.coordinator.groups["g"].pending_members
        h.clock.advance(SESSION)
        assert not h.coordinator.groups["g"].pending_members
        late = h.join(member_id=member_id, require_known=True)
        await settle()
        assert isinstance(late.exception(), errors.UnknownMemberId)
    body(tmp_path)


def test_invalid_session_timeout(tmp_path):
    @run
    async def body(h):
        for session in (999, 300_001):
            task = h.join(session=session)
            await settle()
            assert isinstance(task.exception(), errors.InvalidSessionTimeout)
    body(tmp_path)


def test_empty_group_id_is_invalid(tmp_path):
    @run
    async def body(h):
        task = h.join(group="")
        await settle()
        assert isinstance(task.exception(), errors.InvalidGroupId)
    body(tmp_path)


def test_inconsistent_protocols_are_rejected(tmp_path):
    @run
    async def body(h):
        await h.stable_group(1)
        other = h.join(protocols=consumer_protocols("t", names=("roundrobin",)))
        await settle()
        assert isinstance(other.exception(), errors.InconsistentGroupProtocol)
        wrong_type = h.join(protocol_type="connect")
        await settle()
        assert isinstance(wrong_type.exception(), errors.InconsistentGroupProtocol)
    body(tmp_path)


def test_protocol_chosen_by_votes_among_common_protocols(tmp_path):
    @run
    async def body(h):
        a = h.join(protocols=consumer_protocols("t", names=("cooperative-sticky", "range")))
        b = h.join(protocols=consumer_protocols("t", names=("range", "cooperative-sticky")))
        c = h.join(protocols=consumer_protocols("t", names=("range", "roundrobin", "cooperative-sticky")))
        await settle()
        h.clock.advance(0)
        await settle()
        assert {t.result().protocol_name for t in (a, b, c)} == {"range"}
    body(tmp_path)


def test_protocol_tie_goes_to_leader_preference(tmp_path):
    @run
    async def body(h):
        a = h.join(protocols=consumer_protocols("t", names=("cooperative-sticky", "range")))
        b = h.join(protocols=consumer_protocols("t", names=("range", "cooperative-sticky")))
        await settle()
        h.clock.advance(0)
        await settle()
        assert a.result().leader_id == a.result().member_id
        assert b.result().protocol_name == "cooperative-sticky"
    body(tmp_path)


def test_leader_receives_every_members_metadata(tmp_path):
    @run
    async def body(h):
        a = h.join(protocols=consumer_protocols("t1"))
        b = h.join(protocols=consumer_protocols("t2"))
        await settle()
        h.clock.advance(0)
        await settle()
        ra, rb = a.result(), b.result()
        assert ra.leader_id == rb.leader_id == ra.member_id
        assert {m["member_id"]: m["metadata"] for m in ra.members} == {
            ra.member_id: consumer_protocols("t1")[0][1], rb.member_id: consumer_protocols("t2")[0][1]}
        assert rb.members == []
    body(tmp_path)


# -- initial rebalance delay ---------------------------------------------------------------


def test_initial_delay_waits_and_extends_while_members_join(tmp_path):
    @run
    async def body(h):
        a = h.join(rebalance=60_000)
        await settle()
        h.clock.advance(2000)
        b = h.join(rebalance=60_000)
        await settle()
        h.clock.advance(1000)  # the first 3 s delay ends; b joined meanwhile: wait again
        await settle()
        assert not a.done() and not b.done()
        assert state(h) is GroupState.PREPARING_REBALANCE
        h.clock.advance(3000)  # nobody new: the join phase ends
        await settle()
        assert a.result().generation_id == b.result().generation_id == 1
        assert len(a.result().members) + len(b.result().members) == 2
    body(tmp_path, initial_rebalance_delay_ms=3000)


def test_initial_delay_is_capped_by_the_rebalance_timeout(tmp_path):
    @run
    async def body(h):
        tasks = [h.join(rebalance=10_000)]
        await settle()
        for _ in range(3):  # a new member every 2.5 s keeps extending the 3 s delay...
            h.clock.advance(2500)
            tasks.append(h.join(rebalance=10_000))
            await settle()
        h.clock.advance(2499)
        await settle()
        assert not any(t.done() for t in tasks)
        h.clock.advance(1)  # ...but never past the rebalance timeout after the first join
        await settle()
        assert all(t.done() for t in tasks)
        assert {t.result().generation_id for t in tasks} == {1}
    body(tmp_path, initial_rebalance_delay_ms=3000)


def test_no_initial_delay_when_group_already_has_members(tmp_path):
    @run
    async def body(h):
        first = await h.stable_group(1)
        # A second member joins a Stable group: the rebalance ends as soon as
        # everybody rejoined, without the initial delay.
        b = h.join()
        a = h.join(member_id=first[0].member_id)
        await settle()
        assert a.done() and b.done()
        assert a.result().generation_id == 2
    body(tmp_path, initial_rebalance_delay_ms=3000)


# -- sync ---------------------------------------------------------------------------------


def test_sync_hands_out_the_leaders_assignment(tmp_path):
    @run
    async def body(h):
        a = h.join()
        b = h.join()
        await settle()
        h.clock.advance(0)
        await settle()
        ra, rb = a.result(), b.result()
        follower = h.sync("g", rb.generation_id, rb.member_id)
        await settle()
        assert not follower.done()  # parked until the leader's assignment arrives
        leader = h.sync("g", ra.generation_id, ra.member_id, {ra.member_id: b"A", rb.member_id: b"B"})
        await settle()
        assert leader.result().assignment == b"A"
        assert follower.result().assignment == b"B"
        assert state(h) is GroupState.STABLE
        # In Stable, a repeated SyncGroup returns the stored assignment.
        again = h.sync("g", rb.generation_id, rb.member_id)
        await settle()
        assert again.result().assignment == b"B"
    body(tmp_path)


def test_sync_errors(tmp_path):
    @run
    async def body(h):
        results = await h.stable_group(1)
        r = results[0]
        for args, error in [
            (("nope", r.generation_id, r.member_id), errors.UnknownMemberId),
            (("g", r.generation_id, "stranger"), errors.UnknownMemberId),
            (("g", r.generation_id + 1, r.member_id), errors.IllegalGeneration),
        ]:
            task = h.sync(*args)
            await settle()
            assert isinstance(task.exception(), error), args
    body(tmp_path)


def test_members_that_never_sync_are_removed(tmp_path):
    @run
    async def body(h):
        a = h.join(session=60_000, rebalance=10_000)
        b = h.join(session=60_000, rebalance=10_000)
        await settle()
        h.clock.advance(0)
        await settle()
        ra, rb = a.result(), b.result()
        leader = h.sync("g", ra.generation_id, ra.member_id, {ra.member_id: b"A", rb.member_id: b"B"})
        await settle()
        assert leader.result().assignment == b"A"
        h.clock.advance(10_000)  # b never sent SyncGroup within the rebalance timeout
        group = h.coordinator.groups["g"]
        assert list(group.members) == [ra.member_id]
        assert state(h) is GroupState.PREPARING_REBALANCE
    body(tmp_path)


# -- heartbeat and session timeout --------------------------------------------------------


def test_heartbeat_answers(tmp_path):
    @run
    async def body(h):
        a, = await h.stable_group(1)
        h.coordinator.heartbeat("g", a.generation_id, a.member_id, None)
        with pytest.raises(errors.IllegalGeneration):
            h.coordinator.heartbeat("g", a.generation_id - 1, a.member_id, None)
        with pytest.raises(errors.UnknownMemberId):
            h.coordinator.heartbeat("g", a.generation_id, "stranger", None)
        with pytest.raises(errors.UnknownMemberId):
            h.coordinator.heartbeat("other", 1, a.member_id, None)
        newcomer = h.join()
        await settle()
        with pytest.raises(errors.RebalanceInProgress):
            h.coordinator.heartbeat("g", a.generation_id, a.member_id, None)
        newcomer.cancel()
    body(tmp_path)


def test_silent_member_is_removed_after_session_timeout(tmp_path):
    @run
    async def body(h):
        a, b = await h.stable_group(2)
        h.clock.advance(SESSION // 2)
        h.coordinator.heartbeat("g", b.generation_id, b.member_id, None)  # b is alive, a is silent
        h.clock.advance(SESSION // 2)
        group = h.coordinator.groups["g"]
        assert list(group.members) == [b.member_id]
        assert state(h) is GroupState.PREPARING_REBALANCE
        with pytest.raises(errors.RebalanceInProgress):
            h.coordinator.heartbeat("g", b.generation_id, b.member_id, None)
        rejoin = h.join(member_id=b.member_id)
        await settle()  # everyone left has rejoined: no need to wait for the timeout
        result = rejoin.result()
        assert result.generation_id == b.generation_id + 1
        assert result.leader_id == b.member_id
    body(tmp_path)


def test_members_that_do_not_rejoin_are_removed_at_rebalance_timeout(tmp_path):
    @run
    async def body(h):
        a, b = await h.stable_group(2)
        c = h.join()
        a_again = h.join(member_id=a.member_id)
        await settle()
        assert not c.done()
        # b is alive (heartbeats) but never rejoins, like a consumer stuck in
        # processing for longer than max.poll.interval.ms.
        for _ in range(REBALANCE // 5000 - 1):
            h.clock.advance(5000)
            with pytest.raises(errors.RebalanceInProgress):
                h.coordinator.heartbeat("g", b.generation_id, b.member_id, None)
        assert not c.done()
        h.clock.advance(5000)
        await settle()
        assert c.done() and a_again.done()
        members = h.coordinator.groups["g"].members
        assert b.member_id not in members and len(members) == 2
        with pytest.raises(errors.UnknownMemberId):
            h.coordinator.heartbeat("g", b.generation_id, b.member_id, None)
    body(tmp_path)


def test_parked_join_counts_as_alive(tmp_path):
    @run
    async def body(h):
        a, b = await h.stable_group(2, session=5000, rebalance=60_000)
        a_again = h.join(member_id=a.member_id, session=5000, rebalance=60_000)
        await settle()
        # a is parked in JoinGroup and sends no heartbeats; b heartbeats but never rejoins.
        for _ in range(5):
            h.clock.advance(4000)
            with pytest.raises(errors.RebalanceInProgress):
                h.coordinator.heartbeat("g", b.generation_id, b.member_id, None)
        assert a.member_id in h.coordinator.groups["g"].members
        assert not a_again.done()
        h.clock.advance(5000)  # b stops heartbeating: its removal ends the join phase
        await settle()
        assert a_again.result().generation_id == a.generation_id + 1
        assert list(h.coordinator.groups["g"].members) == [a.member_id]
    body(tmp_path)


# -- leave ---------------------------------------------------------------------------------


def test_leave_triggers_rebalance_and_batch_leave(tmp_path):
    @run
    async def body(h):
        a, b, c = await h.stable_group(3)
        assert h.coordinator.leave_group("g", [(c.member_id, None)]) == [None]
        assert state(h) is GroupState.PREPARING_REBALANCE
        out = h.coordinator.leave_group("g", [(a.member_id, None), ("stranger", None), (b.member_id, None)])
        assert out[0] is None and out[2] is None
        assert isinstance(out[1], errors.UnknownMemberId)
        h.clock.advance(REBALANCE)
        assert state(h) is GroupState.EMPTY
        assert h.coordinator.groups["g"].generation_id == a.generation_id + 1
        unknown = h.coordinator.leave_group("missing", [("x", None)])
        assert isinstance(unknown[0], errors.UnknownMemberId)
    body(tmp_path)


def test_leave_answers_a_parked_join_of_the_leaver(tmp_path):
    @run
    async def body(h):
        a, b = await h.stable_group(2)
        parked = h.join(member_id=a.member_id)
        await settle()
        h.coordinator.leave_group("g", [(a.member_id, None)])
        await settle()
        assert isinstance(parked.exception(), errors.UnknownMemberId)
    body(tmp_path)


# -- static membership -----------------------------------------------------------------------


def test_static_member_rejoins_without_rebalance(tmp_path):
    @run
    async def body(h):
        a, b = await h.stable_group(2, instances=["i-a", "i-b"])
        generation = a.generation_id
        # b restarts: a fresh JoinGroup with its instance id and no member id.
        back = h.join(instance="i-b")
        await settle()
        result = back.result()
        assert result.member_id != b.member_id
        assert result.generation_id == generation
        assert state(h) is GroupState.STABLE
        sync = h.sync("g", generation, result.member_id, instance="i-b")
        await settle()
        assert sync.result().assignment == b"a1"  # its old assignment
        with pytest.raises(errors.FencedInstanceId):
            h.coordinator.heartbeat("g", generation, b.member_id, "i-b")
        h.coordinator.heartbeat("g", generation, result.member_id, "i-b")
        leave = h.coordinator.leave_group("g", [(b.member_id, "i-b")])
        assert isinstance(leave[0], errors.FencedInstanceId)
    body(tmp_path)


def test_static_leader_rejoin_skips_assignment(tmp_path):
    @run
    async def body(h):
        a, b = await h.stable_group(2, instances=["i-a", "i-b"])
        back = h.join(instance="i-a")
        await settle()
        result = back.result()
        assert result.leader_id == result.member_id
        assert result.skip_assignment
        assert {m["member_id"] for m in result.members} == {result.member_id, b.member_id}
        assert state(h) is GroupState.STABLE
    body(tmp_path)


def test_static_member_with_changed_metadata_triggers_rebalance(tmp_path):
    @run
    async def body(h):
        a, b = await h.stable_group(2, instances=["i-a", "i-b"])
        back = h.join(instance="i-b", protocols=consumer_protocols("t", "u"))
        await settle()
        assert not back.done()
        assert state(h) is GroupState.PREPARING_REBALANCE
        a_again = h.join(member_id=a.member_id, instance="i-a")
        await settle()
        assert back.result().generation_id == a.generation_id + 1
        assert a_again.result().generation_id == a.generation_id + 1
    body(tmp_path)


def test_static_member_replacement_fences_a_parked_request(tmp_path):
    @run
    async def body(h):
        a, b = await h.stable_group(2, instances=["i-a", "i-b"])
        parked = h.join(member_id=a.member_id, instance="i-a")  # the leader rejoins: a rebalance
        await settle()
        assert not parked.done()
        replacement = h.join(instance="i-a")
        await settle()
        assert isinstance(parked.exception(), errors.FencedInstanceId)
        b_again = h.join(member_id=b.member_id, instance="i-b")
        await settle()
        assert replacement.result().generation_id == b_again.result().generation_id == a.generation_id + 1
        assert replacement.result().leader_id == replacement.result().member_id
    body(tmp_path)


def test_static_member_survives_rebalance_timeout(tmp_path):
    @run
    async def body(h):
        a, b = await h.stable_group(2, instances=["i-a", "i-b"], session=40_000, rebalance=10_000)
        a_again = h.join(member_id=a.member_id, instance="i-a", session=40_000, rebalance=10_000)
        await settle()
        h.clock.advance(10_000)  # b (static) did not rejoin: kept, unlike a dynamic member
        await settle()
        result = a_again.result()
        assert {m["member_id"] for m in result.members} == {a.member_id, b.member_id}
        h.clock.advance(30_000)  # b's session timeout (from its last sync) removes it
        assert b.member_id not in h.coordinator.groups["g"].members
    body(tmp_path)


def test_leave_by_instance_id(tmp_path):
    @run
    async def body(h):
        a, b = await h.stable_group(2, instances=["i-a", "i-b"])
        assert h.coordinator.leave_group("g", [("", "i-b")]) == [None]
        assert b.member_id not in h.coordinator.groups["g"].members
        missing = h.coordinator.leave_group("g", [("", "i-zzz")])
        assert isinstance(missing[0], errors.UnknownMemberId)
    body(tmp_path)


def test_resign_answers_parked_requests(tmp_path):
    @run
    async def body(h):
        task = h.join(rebalance=60_000)
        await settle()
        h.coordinator.resign()
        await settle()
        assert isinstance(task.exception(), errors.NotCoordinator)
        late = h.join()
        await settle()
        assert isinstance(late.exception(), errors.NotCoordinator)
    body(tmp_path, initial_rebalance_delay_ms=3000)
