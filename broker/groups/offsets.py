"""A group's committed offsets: OffsetCommit, OffsetFetch, OffsetDelete, expiry.

Who may commit (Kafka's rules): a member of the group, with its current
generation; or, when the group has no members, anyone with generation -1 and
no member id (a "simple" consumer that only uses the coordinator for storage;
such a commit creates the group if needed). While the group is completing a
rebalance, commits answer REBALANCE_IN_PROGRESS; during PreparingRebalance they
are still accepted (the heartbeat tells the member to rejoin).

Expiry (KIP-211), every `offsets.retention.check.interval.ms`:
- an Empty group with a protocol type: all its offsets, once it has been
  empty for `offsets.retention.minutes`;
- a standalone group (no protocol type): each offset, retention after its commit;
- a Stable consumer group: offsets of topics no member subscribes to, retention
  after their commit;
- an offset committed with an explicit retention (OffsetCommit v2-4) expires
  at its own expire timestamp instead.
An offset whose commit is in flight is never expired. An Empty group left with
no offsets is removed.

Concurrency: like the coordinator, event loop only; the store orders writes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Iterable

from ..protocol import errors
from .consumer_protocol import PROTOCOL_TYPE
from .group import Group
from .offset_log import CommittedOffset
from .offset_store import TopicPartition
from .state import GroupState

if TYPE_CHECKING:
    from .coordinator import GroupCoordinator

log = logging.getLogger("broker.groups.offsets")

# Kafka's offset.metadata.max.bytes default.
MAX_METADATA_BYTES = 4096


class OffsetMetadataTooLarge(errors.KafkaError):
    """Kafka error 12 (not yet among `broker.protocol.errors`)."""

    code = 12
    name = "OFFSET_METADATA_TOO_LARGE"


class GroupOffsets:
    def __init__(self, coordinator: "GroupCoordinator"):
        self.coordinator = coordinator
        self.store = coordinator.store

    # -- OffsetCommit ----------------------------------------------------------------

    async def commit(self, group_id: str, generation_id: int, member_id: str,
                     group_instance_id: str | None, offsets: dict[TopicPartition, CommittedOffset]) -> None:
        """Validate the committer, then store durably. Group-level errors raise."""
        coordinator = self.coordinator
        if coordinator.closed:
            raise errors.CoordinatorNotAvailable("the broker is shutting down")
        group = coordinator.groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                # A member of a generation this coordinator does not know (e.g. of
                # a group removed meanwhile): it must rejoin.
                raise errors.IllegalGeneration(f"group {group_id!r} does not exist")
            group = coordinator.get_or_create(group_id)
        self._validate(group, generation_id, member_id, group_instance_id)
        if group.is_(GroupState.COMPLETING_REBALANCE):
            raise errors.RebalanceInProgress(f"group {group_id!r} is completing a rebalance")
        if group.state in (GroupState.STABLE, GroupState.PREPARING_REBALANCE):
            coordinator.touch(group, member_id)
        if offsets:
            await self.store.commit(group_id, offsets)

    @staticmethod
    def _validate(group: Group, generation_id: int, member_id: str, group_instance_id: str | None) -> None:
        if group.is_(GroupState.DEAD):
            raise errors.CoordinatorNotAvailable(f"group {group.group_id!r} is being removed")
        if generation_id >= 0 or member_id or group_instance_id is not None:
            if group.is_static_member_fenced(group_instance_id, member_id):
                raise errors.FencedInstanceId(
                    f"instance {group_instance_id!r} now belongs to another member of {group.group_id!r}")
            if not group.has(member_id):
                raise errors.UnknownMemberId(f"{member_id!r} is not a member of group {group.group_id!r}")
            if generation_id != group.generation_id:
                raise errors.IllegalGeneration(
                    f"generation {generation_id} is not group {group.group_id!r}'s current "
                    f"{group.generation_id}")
        elif not group.is_(GroupState.EMPTY):
            raise errors.UnknownMemberId(
                f"group {group.group_id!r} has members: only they may commit (with their generation)")

    # -- OffsetFetch ------------------------------------------------------------------

    def fetch(self, group_id: str,
              tps: Iterable[TopicPartition] | None) -> dict[TopicPartition, CommittedOffset | None]:
        """Committed offsets of `tps` (None for those without one), or all of the group's."""
        stored = self.store.offsets(group_id)
        if tps is None:
            return dict(stored)
        return {tp: stored.get(tp) for tp in tps}

    # -- OffsetDelete -----------------------------------------------------------------

    async def delete(self, group_id: str, tps: list[TopicPartition]) -> dict[TopicPartition, errors.KafkaError | None]:
        group = self.coordinator.groups.get(group_id)
        if group is None or group.is_(GroupState.DEAD):
            raise errors.GroupIdNotFound(f"group {group_id!r} does not exist")
        results: dict[TopicPartition, errors.KafkaError | None] = {}
        if group.is_(GroupState.EMPTY):
            eligible = list(tps)
        elif group.protocol_type == PROTOCOL_TYPE:
            eligible = []
            for tp in tps:
                if group.is_subscribed_to_topic(tp[0]):
                    results[tp] = errors.GroupSubscribedToTopic(
                        f"group {group_id!r} is subscribed to topic {tp[0]!r}")
                else:
                    eligible.append(tp)
        else:
            raise errors.NonEmptyGroup(f"group {group_id!r} has members")
        if eligible:
            await self.store.delete_offsets(group_id, eligible)
            log.info("deleted committed offsets of group %s for %s", group_id, eligible)
        for tp in eligible:
            results[tp] = None
        return results

    # -- expiry -----------------------------------------------------------------------

    def expired_offsets(self, group: Group, now_ms: int) -> list[TopicPartition]:
        retention = self.coordinator.settings.offsets_retention_ms
        skip: set[str] = set()
        if group.protocol_type is not None and group.is_(GroupState.EMPTY):
            def base(value: CommittedOffset) -> int:
                return group.state_timestamp_ms
        elif group.protocol_type is None:
            def base(value: CommittedOffset) -> int:
                return value.commit_timestamp_ms
        elif (group.protocol_type == PROTOCOL_TYPE and group.subscribed_topics is not None
              and group.is_(GroupState.STABLE)):
            skip = group.subscribed_topics

            def base(value: CommittedOffset) -> int:
                return value.commit_timestamp_ms
        else:
            return []
        expired = []
        for tp, value in self.store.offsets(group.group_id).items():
            if tp[0] in skip or self.store.in_flight(group.group_id, tp):
                continue
            if value.expire_timestamp_ms is not None:
                due = now_ms >= value.expire_timestamp_ms
            else:
                due = now_ms - base(value) >= retention
            if due:
                expired.append(tp)
        return expired

    async def expire(self, now_ms: int | None = None) -> int:
        """One expiry pass; returns how many offsets expired."""
        coordinator = self.coordinator
        now = coordinator.scheduler.wall_ms() if now_ms is None else now_ms
        writes = []
        total = 0
        for group in list(coordinator.groups.values()):
            expired = self.expired_offsets(group, now)
            if expired:
                total += len(expired)
                log.info("group %s: %d committed offsets expired", group.group_id, len(expired))
                writes.append(self.store.delete_offsets(group.group_id, expired))
        if writes:
            await asyncio.gather(*writes)
        # Removing a group and queueing its deletion happen in one step, so a commit
        # that recreates the group is ordered after the deletion.
        removals = []
        for group_id, group in list(coordinator.groups.items()):
            if (group.is_(GroupState.EMPTY) and not group.pending_members
                    and not self.store.has_offsets(group_id) and not self.store.in_flight(group_id)):
                group.transition(GroupState.DEAD, now)
                del coordinator.groups[group_id]
                log.info("removed group %s: empty and without committed offsets", group_id)
                if self.store.group_record(group_id) is not None:
                    removals.append(self.store.delete_group(group_id))
        if removals:
            await asyncio.gather(*removals)
        return total
