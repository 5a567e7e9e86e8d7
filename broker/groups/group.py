"""A classic group's membership: members, leader, generation, chosen protocol.

Invariants:
- `leader_id` is a member of the group, or None exactly when there are no members.
- `static_members` maps each member's group_instance_id to that member's id,
  so one instance id belongs to at most one member at a time (KIP-345).
- `generation_id` only grows, by one per completed join phase.
- A member "awaits join" while a JoinGroup of it is parked (`join_waiter` set)
  and "awaits sync" while a SyncGroup is; `pending_members` (KIP-394) have been
  handed a member id but have not joined with it yet.

Concurrency: touched only on the event loop, by the coordinator, which also
owns every timer handle stored here. Plain data plus membership bookkeeping;
the rebalance protocol itself lives in `coordinator.py`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .consumer_protocol import PROTOCOL_TYPE, subscribed_topics
from .state import GroupState, check_transition
from .timers import TimerHandle

Protocols = list[tuple[str, bytes]]


@dataclass(eq=False)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    assignment: bytes = b""
    # A member added by this join phase: expires after NEW_MEMBER_JOIN_TIMEOUT
    # unless the phase completes (Kafka's `isNew`).
    is_new: bool = False
    join_waiter: asyncio.Future | None = None
    sync_waiter: asyncio.Future | None = None
    heartbeat_timer: TimerHandle | None = None

    @property
    def awaiting_join(self) -> bool:
        return self.join_waiter is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_waiter is not None

    def metadata(self, protocol: str) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        raise KeyError(f"member {self.member_id} does not support protocol {protocol!r}")

    def matches(self, protocols: Protocols) -> bool:
        return self.protocols == protocols


@dataclass(eq=False)
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    # Wall-clock time of the last state change (KIP-211 expires an Empty group's
    # offsets retention after it became Empty).
    state_timestamp_ms: int = 0
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    pending_members: dict[str, TimerHandle] = field(default_factory=dict)
    pending_sync: set[str] = field(default_factory=set)
    # The topics the members subscribe to (consumer protocol), None when unknown.
    subscribed_topics: set[str] | None = None
    # The join phase in progress: its timer, whether it is the initial delay
    # (which only ends by time) and how much of the rebalance timeout is left.
    join_timer: TimerHandle | None = None
    join_is_initial: bool = False
    initial_remaining_ms: int = 0
    new_member_added: bool = False
    sync_timer: TimerHandle | None = None

    # -- state -------------------------------------------------------------------

    def is_(self, state: GroupState) -> bool:
        return self.state is state

    def transition(self, target: GroupState, now_ms: int) -> None:
        check_transition(self.group_id, self.state, target)
        self.state = target
        self.state_timestamp_ms = now_ms

    # -- membership ----------------------------------------------------------------

    def has(self, member_id: str) -> bool:
        return member_id in self.members

    def add(self, member: Member) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member.member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        if self.leader_id is None:
            self.leader_id = member.member_id

    def remove(self, member_id: str) -> Member | None:
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        if member.group_instance_id is not None and \
                self.static_members.get(member.group_instance_id) == member_id:
            del self.static_members[member.group_instance_id]
        self.pending_sync.discard(member_id)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        return member

    def replace_static_member(self, instance_id: str, old_id: str, new_id: str) -> Member:
        """Give the static member `old_id` the new id `new_id`, keeping its place
        (and leadership) in the group. The caller fences the old id's waiters."""
        member = self.members.pop(old_id)
        member.member_id = new_id
        self.members[new_id] = member
        self.static_members[instance_id] = new_id
        if self.leader_id == old_id:
            self.leader_id = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)
        return member

    def static_member_id(self, instance_id: str | None) -> str | None:
        return None if instance_id is None else self.static_members.get(instance_id)

    def is_static_member_fenced(self, instance_id: str | None, member_id: str) -> bool:
        """Another member id now holds this instance id: `member_id` is a zombie."""
        current = self.static_member_id(instance_id)
        return current is not None and current != member_id

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def all_members_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def not_yet_rejoined(self) -> list[Member]:
        return [m for m in self.members.values() if not m.awaiting_join]

    def maybe_elect_joined_leader(self) -> bool:
        """Keep a leader that rejoined, else pick any member that did. False when
        no member rejoined (or the group has none)."""
        if self.leader_id is None:
            return False
        if self.members[self.leader_id].awaiting_join:
            return True
        for member_id, member in self.members.items():
            if member.awaiting_join:
                self.leader_id = member_id
                return True
        return False

    @property
    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    # -- protocols -------------------------------------------------------------------

    def supports_protocols(self, protocol_type: str, names: list[str]) -> bool:
        """Could a member with these protocols join? An empty group takes any
        non-empty list; otherwise the type must match and some protocol must be
        supported by every current member."""
        if not self.members:
            return bool(protocol_type) and bool(names)
        if protocol_type != self.protocol_type:
            return False
        return bool(self._common_protocols(extra=names))

    def _common_protocols(self, extra: list[str] | None = None) -> set[str]:
        common: set[str] | None = None if extra is None else set(extra)
        for member in self.members.values():
            names = {name for name, _ in member.protocols}
            common = names if common is None else common & names
        return common or set()

    def select_protocol(self) -> str:
        """Kafka's vote: among the protocols every member supports, each member votes
        for the first of them in its own preference order; the most votes wins. A
        tie goes to the one the leader prefers."""
        candidates = self._common_protocols()
        if not candidates:
            raise ValueError(f"group {self.group_id!r} has no protocol common to all members")
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = next(name for name, _ in member.protocols if name in candidates)
            votes[choice] = votes.get(choice, 0) + 1
        leader = self.members.get(self.leader_id) if self.leader_id else None
        preference = [n for n, _ in leader.protocols] if leader else sorted(candidates)
        rank = {name: i for i, name in enumerate(preference)}
        return max(votes, key=lambda name: (votes[name], -rank.get(name, len(rank))))

    def current_member_metadata(self) -> list[dict]:
        """What the leader gets in its JoinGroup response: every member with its
        metadata for the chosen protocol."""
        assert self.protocol_name is not None
        return [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                 "metadata": m.metadata(self.protocol_name)} for m in self.members.values()]

    def init_next_generation(self, now_ms: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self._compute_subscribed_topics()
            self.transition(GroupState.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = None
            self.transition(GroupState.EMPTY, now_ms)

    def _compute_subscribed_topics(self) -> set[str] | None:
        if self.protocol_type != PROTOCOL_TYPE or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            found = subscribed_topics(member.metadata(self.protocol_name))
            if found is None:
                return None
            topics |= found
        return topics

    def is_subscribed_to_topic(self, topic: str) -> bool:
        """Unknown subscriptions count as subscribed: never delete what may be in use."""
        return True if self.subscribed_topics is None else topic in self.subscribed_topics
