"""The classic group coordinator: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.

This broker coordinates every group. The protocol is Kafka's (GroupCoordinator
of the classic protocol), rebalance by rebalance:

1. A join (or a leave, or a member expiring) moves the group to
   PreparingRebalance. Each member must send JoinGroup again within the
   rebalance timeout (the largest `rebalance_timeout_ms` of the members; for a
   consumer that is its max.poll.interval.ms); their requests are parked.
2. The join phase ends when every member has rejoined (and no KIP-394 pending
   member is outstanding), or when the timeout fires: dynamic members that did
   not rejoin are removed. An Empty group's first join phase instead waits
   `group.initial.rebalance.delay.ms`, again each time a new member joined
   meanwhile, never longer than the rebalance timeout.
3. The generation advances, a protocol every member supports is chosen, and
   every parked JoinGroup is answered; the leader's answer carries each
   member's metadata. The group is CompletingRebalance.
4. The leader's SyncGroup carries the assignment (opaque bytes per member,
   never interpreted); every parked SyncGroup is answered and the group is
   Stable. Members that never sync within the rebalance timeout are removed.

A member that sends no heartbeat within its session timeout is removed and
the group rebalances; members parked in a join or sync count as alive.
Static members (KIP-345) keep their place across restarts: a JoinGroup with a
known group_instance_id and an empty member id takes over the old member's id
and assignment without a rebalance when its protocols are unchanged, and the
old id is fenced (FENCED_INSTANCE_ID).

Concurrency: every method and timer callback runs on the event loop and
finishes its state change before it awaits, so no locks are needed; request
coroutines only await their own parked future. Errors are raised as
`broker.protocol.errors` classes; a parked request receives them through its
future.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from ..protocol import errors
from .group import Group, Member
from .offset_log import GroupRecord
from .offset_store import OffsetStore
from .offsets import GroupOffsets
from .requests import JoinRequest, JoinResult, MemberIdRequired, SyncResult
from .settings import GroupSettings
from .state import CAN_REBALANCE, GroupState
from .timers import LoopScheduler, Scheduler

log = logging.getLogger("broker.groups")

# A member that joined in this phase and is still parked after this long is
# dropped (Kafka's GroupCoordinator.NewMemberJoinTimeoutMs).
NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000

EMPTY, PREPARING, COMPLETING, STABLE, DEAD = (
    GroupState.EMPTY, GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE,
    GroupState.STABLE, GroupState.DEAD)


def _check_group_id(group_id: str | None) -> None:
    # Membership APIs need a real group id; offset APIs accept "" (as Kafka does).
    if not group_id:
        raise errors.InvalidGroupId("the group id must not be empty")


def _resolve(waiter: asyncio.Future | None, outcome) -> None:
    """Answer a parked request (its client may have gone: then nobody listens)."""
    if waiter is None or waiter.done():
        return
    if isinstance(outcome, BaseException):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)


class GroupCoordinator:
    """Owns every group and its timers. See the module docstring for the protocol."""

    def __init__(self, settings: GroupSettings, store: OffsetStore, scheduler: Scheduler | None = None):
        self.settings = settings
        self.store = store
        self.scheduler = scheduler or LoopScheduler()
        self.groups: dict[str, Group] = {}
        self.offsets = GroupOffsets(self)
        self.resigned = False  # draining: no more rebalances
        self.closed = False  # gone: no more offset commits either

    # -- lifecycle -------------------------------------------------------------------

    def load_groups(self) -> None:
        """After `store.load()`: every group with stored offsets or a GROUP record
        comes back Empty, as Kafka's coordinator reloads groups after a failover."""
        now = self.scheduler.wall_ms()
        for group_id in self.store.group_ids():
            record = self.store.group_record(group_id)
            group = Group(group_id, state_timestamp_ms=now)
            if record is not None:
                group.protocol_type = record.protocol_type
                group.generation_id = record.generation_id
                if record.empty_since_ms >= 0:
                    group.state_timestamp_ms = record.empty_since_ms
            self.groups[group_id] = group

    async def load(self) -> None:
        """Replay the offsets file (in a worker thread) and recreate the groups."""
        await asyncio.to_thread(self.store.load)
        self.load_groups()

    async def run(self) -> None:
        """The coordinator's background work: the offsets writer and the expiry
        loop. Runs until cancelled (the server's TaskGroup owns it)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.store.run(), name="offsets-writer")
            tasks.create_task(self._expiry_loop(), name="offsets-expiry")

    async def _expiry_loop(self) -> None:
        interval = self.settings.offsets_retention_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.offsets.expire()
            except errors.KafkaError as exc:
                log.warning("offset expiry pass failed: %s", exc)
            except Exception:
                # A bug here must not take the broker down; the next pass retries.
                log.exception("offset expiry pass failed")

    def resign(self) -> None:
        """Stop coordinating rebalances: the broker is draining. Parked JoinGroup and
        SyncGroup requests are answered NOT_COORDINATOR at once (so draining does
        not wait out a rebalance timeout; the clients look for the coordinator
        again), and so are new ones. Offset commits and fetches keep working
        until `close`, so consumers shutting down meanwhile can still commit."""
        if self.resigned:
            return
        self.resigned = True
        for group in self.groups.values():
            for handle in (group.join_timer, group.sync_timer, *group.pending_members.values()):
                if handle is not None:
                    handle.cancel()
            for member in group.members.values():
                if member.heartbeat_timer is not None:
                    member.heartbeat_timer.cancel()
                waiter, member.join_waiter = member.join_waiter, None
                _resolve(waiter, errors.NotCoordinator("the broker is shutting down"))
                waiter, member.sync_waiter = member.sync_waiter, None
                _resolve(waiter, errors.NotCoordinator("the broker is shutting down"))

    def close(self) -> None:
        """After the connections are gone and the run loop stopped: resign, fail
        any write still queued, close the offsets file."""
        self.resign()
        self.closed = True
        self.store.close()

    def _new_waiter(self) -> asyncio.Future:
        return asyncio.get_running_loop().create_future()

    def group(self, group_id: str) -> Group | None:
        return self.groups.get(group_id)

    def get_or_create(self, group_id: str) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            group = Group(group_id, state_timestamp_ms=self.scheduler.wall_ms())
            self.groups[group_id] = group
        return group

    def _persist(self, group: Group) -> None:
        """Record what offset expiry needs after a restart (see GroupRecord)."""
        if group.protocol_type is None:
            return
        empty_since = group.state_timestamp_ms if group.is_(EMPTY) else -1
        self.store.record_group(GroupRecord(group.group_id, group.protocol_type, group.generation_id,
                                            empty_since))

    # -- JoinGroup -------------------------------------------------------------------------

    async def join_group(self, req: JoinRequest) -> JoinResult:
        if self.resigned:
            raise errors.NotCoordinator("the broker is shutting down")
        _check_group_id(req.group_id)
        s = self.settings
        if not s.min_session_timeout_ms <= req.session_timeout_ms <= s.max_session_timeout_ms:
            raise errors.InvalidSessionTimeout(
                f"session timeout {req.session_timeout_ms} ms is outside this broker's bounds "
                f"[{s.min_session_timeout_ms}, {s.max_session_timeout_ms}] "
                "(group.min.session.timeout.ms, group.max.session.timeout.ms)")
        if req.member_id:
            group = self.groups.get(req.group_id)
            if group is None:
                raise errors.UnknownMemberId(f"group {req.group_id!r} does not exist")
            waiter = self._join_current_member(group, req)
        else:
            group = self.get_or_create(req.group_id)
            waiter = self._join_new_member(group, req)
        if group.is_(PREPARING):
            self._try_complete_join(group)
        return await waiter

    def _check_joinable(self, group: Group, req: JoinRequest) -> None:
        if group.is_(DEAD):
            raise errors.CoordinatorNotAvailable(f"group {group.group_id!r} is being removed")
        if not group.supports_protocols(req.protocol_type, [name for name, _ in req.protocols]):
            raise errors.InconsistentGroupProtocol(
                f"group {group.group_id!r} (type {group.protocol_type!r}) has no protocol in common with "
                f"{[name for name, _ in req.protocols]} of type {req.protocol_type!r}")

    def _join_new_member(self, group: Group, req: JoinRequest) -> asyncio.Future:
        self._check_joinable(group, req)
        new_id = f"{req.client_id}-{uuid.uuid4()}"
        if req.group_instance_id is not None:
            old_id = group.static_member_id(req.group_instance_id)
            if old_id is not None:
                return self._replace_static_member(group, req, old_id, new_id)
            return self._add_member_and_rebalance(group, req, new_id)
        if req.require_known_member_id:
            # KIP-394: hand out the id first, so a client that times out and retries
            # does not leave a ghost member behind.
            group.pending_members[new_id] = self.scheduler.call_later(
                req.session_timeout_ms, lambda: self._on_pending_member_expired(group, new_id))
            raise MemberIdRequired(new_id)
        return self._add_member_and_rebalance(group, req, new_id)

    def _join_current_member(self, group: Group, req: JoinRequest) -> asyncio.Future:
        self._check_joinable(group, req)
        member_id = req.member_id
        if member_id in group.pending_members:
            if req.group_instance_id is not None:
                raise errors.UnknownMemberId("a static member cannot join with a pending member id")
            group.pending_members.pop(member_id).cancel()
            return self._add_member_and_rebalance(group, req, member_id)
        if group.is_static_member_fenced(req.group_instance_id, member_id):
            raise errors.FencedInstanceId(
                f"instance {req.group_instance_id!r} now belongs to another member of {group.group_id!r}")
        if not group.has(member_id) or (req.group_instance_id is not None
                                        and group.static_member_id(req.group_instance_id) is None):
            raise errors.UnknownMemberId(f"{member_id} is not a member of group {group.group_id!r}")
        member = group.members[member_id]
        self._schedule_heartbeat(group, member)
        if group.is_(PREPARING):
            return self._update_member_and_rebalance(group, member, req, "member rejoined")
        if group.is_(COMPLETING):
            if member.matches(req.protocols):
                # The JoinGroup response was probably lost: answer it again.
                return self._answered(self._join_result(group, member))
            return self._update_member_and_rebalance(group, member, req, "member changed its metadata")
        if group.is_(STABLE):
            if group.is_leader(member_id):
                # A leader's rejoin means something its assignor sees has changed
                # (e.g. topic metadata), even if its own metadata has not.
                return self._update_member_and_rebalance(group, member, req, "the leader rejoined")
            if not member.matches(req.protocols):
                return self._update_member_and_rebalance(group, member, req, "member changed its metadata")
            return self._answered(self._join_result(group, member, include_members=False))
        raise errors.UnknownMemberId(f"{member_id} is not a member of group {group.group_id!r}")

    def _answered(self, result) -> asyncio.Future:
        waiter = self._new_waiter()
        waiter.set_result(result)
        return waiter

    def _join_result(self, group: Group, member: Member, include_members: bool = True,
                     skip_assignment: bool = False) -> JoinResult:
        is_leader = group.is_leader(member.member_id)
        return JoinResult(
            member_id=member.member_id, generation_id=group.generation_id,
            protocol_type=group.protocol_type, protocol_name=group.protocol_name,
            leader_id=group.leader_id or "",
            members=group.current_member_metadata() if is_leader and include_members else [],
            skip_assignment=skip_assignment)

    def _park_join(self, member: Member) -> asyncio.Future:
        # A second JoinGroup from the same member supersedes the first; answer the
        # first so its connection is not left waiting.
        _resolve(member.join_waiter, errors.RebalanceInProgress("superseded by a newer JoinGroup"))
        member.join_waiter = self._new_waiter()
        return member.join_waiter

    def _add_member_and_rebalance(self, group: Group, req: JoinRequest, member_id: str) -> asyncio.Future:
        member = Member(member_id, req.group_instance_id, req.client_id, req.client_host,
                        req.rebalance_timeout_ms, req.session_timeout_ms, req.protocol_type,
                        list(req.protocols), is_new=True)
        if group.is_(PREPARING) and group.join_is_initial:
            group.new_member_added = True
        group.add(member)
        waiter = self._park_join(member)
        self._schedule_heartbeat(group, member)
        log.info("member %s (client %s, host %s%s) joins group %s", member_id, req.client_id,
                 req.client_host, f", instance {req.group_instance_id}" if req.group_instance_id else "",
                 group.group_id)
        self._maybe_prepare_rebalance(group, f"member {member_id} joined")
        return waiter

    def _update_member_and_rebalance(self, group: Group, member: Member, req: JoinRequest,
                                     reason: str) -> asyncio.Future:
        member.protocols = list(req.protocols)
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.session_timeout_ms = req.session_timeout_ms
        member.client_id = req.client_id
        member.client_host = req.client_host
        waiter = self._park_join(member)
        self._maybe_prepare_rebalance(group, f"{reason} ({member.member_id})")
        return waiter

    def _replace_static_member(self, group: Group, req: JoinRequest, old_id: str,
                               new_id: str) -> asyncio.Future:
        member = group.members[old_id]
        fenced = errors.FencedInstanceId(f"instance {req.group_instance_id!r} rejoined as {new_id}")
        _resolve(member.join_waiter, fenced)
        _resolve(member.sync_waiter, fenced)
        member.join_waiter = member.sync_waiter = None
        group.replace_static_member(req.group_instance_id, old_id, new_id)
        log.info("static member %s of group %s replaced by %s", req.group_instance_id, group.group_id, new_id)
        unchanged = member.matches(req.protocols)
        member.client_id, member.client_host = req.client_id, req.client_host
        if group.is_(STABLE) and unchanged:
            member.rebalance_timeout_ms = req.rebalance_timeout_ms
            member.session_timeout_ms = req.session_timeout_ms
            self._schedule_heartbeat(group, member)
            # No rebalance: the member keeps its assignment. A leader learns the
            # membership but must not reassign (KIP-814 skip_assignment).
            return self._answered(self._join_result(group, member, skip_assignment=group.is_leader(new_id)))
        self._schedule_heartbeat(group, member)
        # Changed metadata needs a new assignment; in CompletingRebalance the leader
        # may already have assigned to the old id, so only a new generation makes the
        # assignment consistent; in PreparingRebalance the member just takes part.
        return self._update_member_and_rebalance(group, member, req, "static member rejoined")

    # -- rebalance -------------------------------------------------------------------------

    def _maybe_prepare_rebalance(self, group: Group, reason: str) -> None:
        if group.state in CAN_REBALANCE:
            self._prepare_rebalance(group, reason)

    def _prepare_rebalance(self, group: Group, reason: str) -> None:
        if group.is_(COMPLETING):
            self._reset_and_propagate_assignment_error(
                group, errors.RebalanceInProgress(f"group {group.group_id!r} is rebalancing: {reason}"))
        self._cancel_sync_timer(group)
        timeout = group.rebalance_timeout_ms
        if group.is_(EMPTY):
            delay = self.settings.initial_rebalance_delay_ms
            group.join_is_initial = True
            group.new_member_added = False
            group.initial_remaining_ms = max(timeout - delay, 0)
            group.join_timer = self.scheduler.call_later(delay, lambda: self._on_initial_delay_expired(group))
        else:
            group.join_is_initial = False
            group.join_timer = self.scheduler.call_later(timeout, lambda: self._complete_join(group))
        log.info("preparing to rebalance group %s in generation %d: %s", group.group_id,
                 group.generation_id, reason)
        group.transition(PREPARING, self.scheduler.wall_ms())
        # Everyone may be in already (e.g. the last member just left).
        self._try_complete_join(group)

    def _on_initial_delay_expired(self, group: Group) -> None:
        group.join_timer = None
        if group.new_member_added and group.initial_remaining_ms > 0 and group.is_(PREPARING):
            group.new_member_added = False
            delay = min(self.settings.initial_rebalance_delay_ms, group.initial_remaining_ms)
            group.initial_remaining_ms -= delay
            group.join_timer = self.scheduler.call_later(delay, lambda: self._on_initial_delay_expired(group))
            return
        self._complete_join(group)

    def _try_complete_join(self, group: Group) -> None:
        """End the join phase early once everyone is in (not during the initial delay)."""
        if group.is_(PREPARING) and not group.join_is_initial and group.all_members_joined():
            if group.join_timer is not None:
                group.join_timer.cancel()
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        group.join_timer = None
        group.join_is_initial = False
        if not group.is_(PREPARING):
            return
        for member in group.not_yet_rejoined():
            if member.group_instance_id is None:
                log.info("member %s of group %s did not rejoin within the rebalance timeout; removing it",
                         member.member_id, group.group_id)
                self._forget_member(group, member)
        if not group.maybe_elect_joined_leader() and group.members:
            # Only static members remain and none rejoined: wait for them (or for
            # their session timeouts) another rebalance timeout.
            log.warning("group %s: no member rejoined; extending the join phase", group.group_id)
            group.join_timer = self.scheduler.call_later(group.rebalance_timeout_ms,
                                                         lambda: self._complete_join(group))
            return
        group.init_next_generation(self.scheduler.wall_ms())
        if group.is_(EMPTY):
            log.info("group %s is empty in generation %d", group.group_id, group.generation_id)
            self._persist(group)
            return
        log.info("group %s stabilized in generation %d with %d members, protocol %s, leader %s",
                 group.group_id, group.generation_id, len(group.members), group.protocol_name,
                 group.leader_id)
        for member in group.members.values():
            waiter, member.join_waiter = member.join_waiter, None
            _resolve(waiter, self._join_result(group, member))
            member.is_new = False
            self._schedule_heartbeat(group, member)
        group.pending_sync = set(group.members)
        generation = group.generation_id
        group.sync_timer = self.scheduler.call_later(
            group.rebalance_timeout_ms, lambda: self._on_pending_sync_expired(group, generation))

    def _on_pending_sync_expired(self, group: Group, generation: int) -> None:
        group.sync_timer = None
        if generation != group.generation_id or group.state not in (COMPLETING, STABLE):
            return
        if not group.pending_sync:
            return
        log.info("group %s: members %s sent no SyncGroup within the rebalance timeout; removing them",
                 group.group_id, sorted(group.pending_sync))
        for member_id in list(group.pending_sync):
            member = group.members.get(member_id)
            if member is not None:
                self._forget_member(group, member)
        group.pending_sync.clear()
        self._maybe_prepare_rebalance(group, "members failed to sync")

    def _cancel_sync_timer(self, group: Group) -> None:
        if group.sync_timer is not None:
            group.sync_timer.cancel()
            group.sync_timer = None
        group.pending_sync.clear()

    def _reset_and_propagate_assignment_error(self, group: Group, error: errors.KafkaError) -> None:
        for member in group.members.values():
            member.assignment = b""
            waiter, member.sync_waiter = member.sync_waiter, None
            _resolve(waiter, error)
            self._schedule_heartbeat(group, member)

    # -- SyncGroup -------------------------------------------------------------------------

    async def sync_group(self, group_id: str, generation_id: int, member_id: str,
                         group_instance_id: str | None, protocol_type: str | None,
                         protocol_name: str | None, assignments: dict[str, bytes]) -> SyncResult:
        _check_group_id(group_id)
        if self.resigned:
            raise errors.NotCoordinator("the broker is shutting down")
        group = self.groups.get(group_id)
        if group is None:
            raise errors.UnknownMemberId(f"group {group_id!r} does not exist")
        self._check_member(group, member_id, group_instance_id, generation_id)
        if protocol_type is not None and protocol_type != group.protocol_type:
            raise errors.InconsistentGroupProtocol(
                f"protocol type {protocol_type!r} is not the group's {group.protocol_type!r}")
        if protocol_name is not None and protocol_name != group.protocol_name:
            raise errors.InconsistentGroupProtocol(
                f"protocol {protocol_name!r} is not the group's {group.protocol_name!r}")
        member = group.members[member_id]
        if group.is_(EMPTY):
            raise errors.UnknownMemberId(f"group {group_id!r} is empty")
        if group.is_(PREPARING):
            raise errors.RebalanceInProgress(f"group {group_id!r} is rebalancing")
        group.pending_sync.discard(member_id)
        if not group.pending_sync:
            self._cancel_sync_timer(group)
        if group.is_(STABLE):
            self._schedule_heartbeat(group, member)
            return SyncResult(group.protocol_type, group.protocol_name, member.assignment)
        # CompletingRebalance: park until the leader's assignment arrives.
        _resolve(member.sync_waiter, errors.RebalanceInProgress("superseded by a newer SyncGroup"))
        waiter = member.sync_waiter = self._new_waiter()
        if group.is_leader(member_id):
            missing = [m for m in group.members if m not in assignments]
            if missing:
                log.warning("group %s: the leader assigned nothing to %s", group_id, missing)
            for m in group.members.values():
                m.assignment = bytes(assignments.get(m.member_id, b""))
            for m in group.members.values():
                sync_waiter, m.sync_waiter = m.sync_waiter, None
                _resolve(sync_waiter, SyncResult(group.protocol_type, group.protocol_name, m.assignment))
                self._schedule_heartbeat(group, m)
            group.transition(STABLE, self.scheduler.wall_ms())
            self._persist(group)
            log.info("group %s is stable in generation %d", group_id, group.generation_id)
        return await waiter

    def _check_member(self, group: Group, member_id: str, group_instance_id: str | None,
                      generation_id: int) -> None:
        if group.is_(DEAD):
            raise errors.CoordinatorNotAvailable(f"group {group.group_id!r} is being removed")
        if group.is_static_member_fenced(group_instance_id, member_id):
            raise errors.FencedInstanceId(
                f"instance {group_instance_id!r} now belongs to another member of {group.group_id!r}")
        if not group.has(member_id):
            raise errors.UnknownMemberId(f"{member_id!r} is not a member of group {group.group_id!r}")
        if generation_id != group.generation_id:
            raise errors.IllegalGeneration(
                f"generation {generation_id} is not group {group.group_id!r}'s current {group.generation_id}")

    # -- Heartbeat ------------------------------------------------------------------------------

    def heartbeat(self, group_id: str, generation_id: int, member_id: str,
                  group_instance_id: str | None) -> None:
        _check_group_id(group_id)
        group = self.groups.get(group_id)
        if group is None:
            raise errors.UnknownMemberId(f"group {group_id!r} does not exist")
        self._check_member(group, member_id, group_instance_id, generation_id)
        if group.is_(EMPTY):
            raise errors.UnknownMemberId(f"group {group_id!r} is empty")
        self._schedule_heartbeat(group, group.members[member_id])
        if group.is_(PREPARING):
            raise errors.RebalanceInProgress(f"group {group_id!r} is rebalancing; rejoin")

    def touch(self, group: Group, member_id: str) -> None:
        """An offset commit from a member counts as a heartbeat."""
        member = group.members.get(member_id)
        if member is not None:
            self._schedule_heartbeat(group, member)

    def _schedule_heartbeat(self, group: Group, member: Member) -> None:
        if member.heartbeat_timer is not None:
            member.heartbeat_timer.cancel()
            member.heartbeat_timer = None
        if self.resigned:
            return  # draining: nobody is expired any more
        timeout = NEW_MEMBER_JOIN_TIMEOUT_MS if member.is_new else member.session_timeout_ms
        member.heartbeat_timer = self.scheduler.call_later(
            timeout, lambda: self._on_heartbeat_expired(group, member))

    def _on_heartbeat_expired(self, group: Group, member: Member) -> None:
        member.heartbeat_timer = None
        if group.is_(DEAD) or group.members.get(member.member_id) is not member:
            return
        if not member.is_new and (member.awaiting_join or member.awaiting_sync):
            # Parked in a join or sync: alive by definition; the rebalance timeout
            # deals with members that never come back.
            self._schedule_heartbeat(group, member)
            return
        log.info("member %s of group %s sent no heartbeat within its session timeout (%d ms); removing it",
                 member.member_id, group.group_id, member.session_timeout_ms)
        self._remove_member_and_update_group(group, member, errors.UnknownMemberId(
            f"{member.member_id} was removed from {group.group_id!r}: session timeout"))

    def _on_pending_member_expired(self, group: Group, member_id: str) -> None:
        if group.pending_members.pop(member_id, None) is not None:
            log.info("pending member %s of group %s never joined; forgetting it", member_id, group.group_id)
            if group.is_(PREPARING):
                self._try_complete_join(group)

    # -- LeaveGroup ----------------------------------------------------------------------------

    def leave_group(self, group_id: str, leaving: list[tuple[str, str | None]]) -> list[errors.KafkaError | None]:
        """Remove members (by member id, or by instance id alone when the member id
        is empty); one error or None per entry, in order."""
        _check_group_id(group_id)
        group = self.groups.get(group_id)
        if group is None:
            return [errors.UnknownMemberId(f"group {group_id!r} does not exist") for _ in leaving]
        if group.is_(DEAD):
            raise errors.CoordinatorNotAvailable(f"group {group_id!r} is being removed")
        out: list[errors.KafkaError | None] = []
        for member_id, instance_id in leaving:
            if not member_id:
                current = group.static_member_id(instance_id)
                if current is None:
                    out.append(errors.UnknownMemberId(f"no member with instance id {instance_id!r}"))
                    continue
                member_id = current
            elif member_id in group.pending_members:
                group.pending_members.pop(member_id).cancel()
                if group.is_(PREPARING):
                    self._try_complete_join(group)
                out.append(None)
                continue
            elif group.is_static_member_fenced(instance_id, member_id):
                out.append(errors.FencedInstanceId(f"instance {instance_id!r} belongs to another member"))
                continue
            elif not group.has(member_id):
                out.append(errors.UnknownMemberId(f"{member_id!r} is not a member of group {group_id!r}"))
                continue
            log.info("member %s leaves group %s", member_id, group_id)
            self._remove_member_and_update_group(group, group.members[member_id], errors.UnknownMemberId(
                f"{member_id} left group {group_id!r}"))
            out.append(None)
        return out

    # -- removal ---------------------------------------------------------------------------------

    def _forget_member(self, group: Group, member: Member) -> None:
        if member.heartbeat_timer is not None:
            member.heartbeat_timer.cancel()
            member.heartbeat_timer = None
        group.remove(member.member_id)

    def _remove_member_and_update_group(self, group: Group, member: Member, error: errors.KafkaError) -> None:
        # A parked join or sync of the removed member is answered, so a client that
        # is still alive retries with a fresh JoinGroup.
        waiter, member.join_waiter = member.join_waiter, None
        _resolve(waiter, error)
        waiter, member.sync_waiter = member.sync_waiter, None
        _resolve(waiter, error)
        self._forget_member(group, member)
        if group.state in (STABLE, COMPLETING):
            self._maybe_prepare_rebalance(group, f"member {member.member_id} left")
        elif group.is_(PREPARING):
            self._try_complete_join(group)
