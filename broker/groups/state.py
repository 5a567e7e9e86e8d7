"""Classic group states and the one function that moves a group between them.

    Empty ──join──> PreparingRebalance ──all joined / rebalance timeout──> CompletingRebalance
      ^                 ^       │                                                │
      │                 │       └──no members left──> Empty                      │ leader's SyncGroup
      │                 └──join / leave / expiry── Stable <──────────────────────┘
    any state ──delete / offsets expired──> Dead

These are Kafka's states and transitions (`GroupMetadata.validPreviousStates`);
a move outside them is a coordinator bug and raises `IllegalStateTransition`
(not a Kafka error: it is never the client's fault). Moving to the state a group
is already in is allowed only for Dead, so deleting twice is harmless.
"""

from __future__ import annotations

from enum import Enum


class GroupState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"

    @classmethod
    def parse(cls, text: str) -> "GroupState | None":
        """ListGroups' state filter: Kafka matches the names case-insensitively."""
        for state in cls:
            if state.value.lower() == text.lower():
                return state
        return None


_VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY}),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.DEAD: frozenset(GroupState),
}


class IllegalStateTransition(RuntimeError):
    def __init__(self, group_id: str, current: GroupState, target: GroupState):
        super().__init__(f"group {group_id!r} cannot move from {current.value} to {target.value}")
        self.group_id = group_id
        self.current = current
        self.target = target


def check_transition(group_id: str, current: GroupState, target: GroupState) -> None:
    if current not in _VALID_PREVIOUS[target]:
        raise IllegalStateTransition(group_id, current, target)


# States in which a join, leave or expiry starts a new rebalance.
CAN_REBALANCE = frozenset({GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY})
