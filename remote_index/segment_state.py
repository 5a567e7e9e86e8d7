"""The lifecycle of a remote segment: an enum plus one transition function.

After Kafka's `RemoteLogSegmentState`::

    COPY_STARTED --> COPY_FINISHED --> DELETE_STARTED --> DELETE_FINISHED
         |                                  ^
         +----------------------------------+   (an abandoned upload attempt)

A segment enters the manifest as COPY_STARTED before its objects are written,
so a crash mid-upload leaves a record of the objects to clean up. Only
COPY_FINISHED segments are readable. Repeating a transition (X -> X) is valid
and changes nothing, so a retried manifest update is always safe; every other
move raises `IllegalStateTransition`.
"""

from __future__ import annotations

import enum


class RemoteSegmentState(enum.Enum):
    COPY_STARTED = "COPY_STARTED"
    COPY_FINISHED = "COPY_FINISHED"
    DELETE_STARTED = "DELETE_STARTED"
    DELETE_FINISHED = "DELETE_FINISHED"


_NEXT: dict[RemoteSegmentState, frozenset[RemoteSegmentState]] = {
    RemoteSegmentState.COPY_STARTED: frozenset({RemoteSegmentState.COPY_FINISHED, RemoteSegmentState.DELETE_STARTED}),
    RemoteSegmentState.COPY_FINISHED: frozenset({RemoteSegmentState.DELETE_STARTED}),
    RemoteSegmentState.DELETE_STARTED: frozenset({RemoteSegmentState.DELETE_FINISHED}),
    RemoteSegmentState.DELETE_FINISHED: frozenset(),
}


class IllegalStateTransition(ValueError):
    """A segment was asked to move between states the lifecycle does not connect."""

    def __init__(self, current: RemoteSegmentState, target: RemoteSegmentState, segment_id: str | None = None):
        subject = f"remote segment {segment_id}" if segment_id else "remote segment"
        super().__init__(f"{subject} cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target
        self.segment_id = segment_id


def is_valid_transition(current: RemoteSegmentState, target: RemoteSegmentState) -> bool:
    return current is target or target in _NEXT[current]


def transition(
    current: RemoteSegmentState, target: RemoteSegmentState, segment_id: str | None = None
) -> RemoteSegmentState:
    """Return `target` if the lifecycle allows current -> target, else raise IllegalStateTransition."""
    if not is_valid_transition(current, target):
        raise IllegalStateTransition(current, target, segment_id)
    return target
