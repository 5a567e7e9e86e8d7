"""Operator views and actions on groups: ListGroups, DescribeGroups, DeleteGroups.

Answers follow Kafka's classic coordinator: an unknown group describes as
"Dead" with no error; member metadata and assignments are shown only while
the group is Stable (in other states they are being replaced); only an Empty
group can be deleted, and deleting it drops its committed offsets durably
before the answer.

Concurrency: event loop only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..protocol import errors
from .group import Group
from .state import GroupState

if TYPE_CHECKING:
    from .coordinator import GroupCoordinator

log = logging.getLogger("broker.groups.admin")

# Every group here speaks the classic protocol (KIP-848's "consumer" type is not implemented).
GROUP_TYPE = "classic"


@dataclass(frozen=True)
class GroupListing:
    group_id: str
    protocol_type: str
    state: str
    group_type: str = GROUP_TYPE


def list_groups(coordinator: "GroupCoordinator", states: list[str] | None = None,
                types: list[str] | None = None) -> list[GroupListing]:
    wanted_states = {s.lower() for s in states} if states else None
    wanted_types = {t.lower() for t in types} if types else None
    out = []
    for group in coordinator.groups.values():
        if group.is_(GroupState.DEAD):
            continue
        if wanted_states is not None and group.state.value.lower() not in wanted_states:
            continue
        if wanted_types is not None and GROUP_TYPE not in wanted_types:
            continue
        out.append(GroupListing(group.group_id, group.protocol_type or "", group.state.value))
    return sorted(out, key=lambda g: g.group_id)


def describe_group(coordinator: "GroupCoordinator", group_id: str) -> dict:
    """One DescribeGroups result entry."""
    group = coordinator.groups.get(group_id)
    if group is None:
        return {"error_code": 0, "group_id": group_id, "group_state": GroupState.DEAD.value,
                "protocol_type": "", "protocol_data": "", "members": []}
    stable = group.is_(GroupState.STABLE)
    members = []
    for m in group.members.values():
        members.append({
            "member_id": m.member_id,
            "group_instance_id": m.group_instance_id,
            "client_id": m.client_id,
            "client_host": m.client_host,
            "member_metadata": m.metadata(group.protocol_name) if stable else b"",
            "member_assignment": m.assignment if stable else b"",
        })
    return {"error_code": 0, "group_id": group_id, "group_state": group.state.value,
            "protocol_type": group.protocol_type or "",
            "protocol_data": (group.protocol_name or "") if stable else "", "members": members}


async def delete_groups(coordinator: "GroupCoordinator", group_ids: list[str]) -> dict[str, errors.KafkaError | None]:
    results: dict[str, errors.KafkaError | None] = {}
    pending: dict[str, asyncio.Future] = {}
    now = coordinator.scheduler.wall_ms()
    for group_id in group_ids:
        group = coordinator.groups.get(group_id)
        if group is None or group.is_(GroupState.DEAD):
            results[group_id] = errors.GroupIdNotFound(f"group {group_id!r} does not exist")
        elif not group.is_(GroupState.EMPTY):
            results[group_id] = errors.NonEmptyGroup(
                f"group {group_id!r} has {len(group.members)} members ({group.state.value})")
        else:
            for handle in group.pending_members.values():
                handle.cancel()
            group.pending_members.clear()
            group.transition(GroupState.DEAD, now)
            del coordinator.groups[group_id]
            pending[group_id] = asyncio.ensure_future(coordinator.store.delete_group(group_id))
            results[group_id] = None
    if pending:
        await asyncio.wait(pending.values())
        for group_id, done in pending.items():
            if done.exception() is None:
                log.info("deleted group %s and its committed offsets", group_id)
                continue
            results[group_id] = done.exception()
            # The offsets are still stored: the group must stay visible with them.
            record = coordinator.store.group_record(group_id)
            coordinator.groups.setdefault(group_id, Group(
                group_id, state_timestamp_ms=now,
                protocol_type=record.protocol_type if record else None,
                generation_id=record.generation_id if record else 0))
    return results
