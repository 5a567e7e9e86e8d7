"""A coordinator on a manual clock, with helpers that speak in members and steps."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broker.groups import GroupCoordinator, GroupSettings, JoinRequest, MemberIdRequired, OffsetStore
from broker.groups.consumer_protocol import Subscription, encode_subscription
from broker.groups.timers import ManualScheduler

SESSION = 10_000
REBALANCE = 30_000


def subscription(*topics: str, user_data: bytes | None = None) -> bytes:
    return encode_subscription(Subscription(0, list(topics), user_data))


def consumer_protocols(*topics: str, names=("range",)) -> list[tuple[str, bytes]]:
    return [(name, subscription(*topics)) for name in names]


async def settle() -> None:
    """Let woken tasks run (parked requests finish once their future resolves)."""
    for _ in range(10):
        await asyncio.sleep(0)


class Harness:
    def __init__(self, directory: Path, **settings):
        defaults = dict(initial_rebalance_delay_ms=0, min_session_timeout_ms=1000,
                        max_session_timeout_ms=300_000)
        defaults.update(settings)
        self.clock = ManualScheduler()
        self.store = OffsetStore(directory)
        self.store.load()
        self.coordinator = GroupCoordinator(GroupSettings(**defaults), self.store, self.clock)
        self._writer: asyncio.Task | None = None

    def start_writer(self) -> None:
        self._writer = asyncio.create_task(self.store.run())

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        self.coordinator.close()

    def join(self, group: str = "g", member_id: str = "", *, instance: str | None = None,
             protocols=None, session: int = SESSION, rebalance: int = REBALANCE,
             client_id: str = "client", require_known: bool = False,
             protocol_type: str = "consumer") -> asyncio.Task:
        """Send a JoinGroup; returns the task (parked until the join phase ends)."""
        req = JoinRequest(group, member_id, instance, client_id, "/127.0.0.1", session, rebalance,
                          protocol_type, protocols if protocols is not None else consumer_protocols("t"),
                          require_known)
        return asyncio.create_task(self.coordinator.join_group(req))

    async def join_new(self, group: str = "g", **kwargs) -> asyncio.Task:
        """A KIP-394 join: get a member id, then join with it."""
        first = self.join(group, require_known=True, **kwargs)
        await settle()
        try:
            first.result()
        except MemberIdRequired as exc:
            return self.join(group, exc.member_id, require_known=True, **kwargs)
        raise AssertionError("expected MEMBER_ID_REQUIRED")

    def sync(self, group: str, generation: int, member_id: str, assignments=None,
             instance: str | None = None) -> asyncio.Task:
        return asyncio.create_task(self.coordinator.sync_group(
            group, generation, member_id, instance, None, None, assignments or {}))

    async def stable_group(self, n: int, group: str = "g", instances=None, **kwargs):
        """n members joined and synced; returns their JoinResults (leader first
        in the order of joining) with assignment b"a<i>" each."""
        tasks = [self.join(group, instance=(instances[i] if instances else None), **kwargs) for i in range(n)]
        await settle()
        self.clock.advance(self.coordinator.settings.initial_rebalance_delay_ms)
        await settle()
        results = [t.result() for t in tasks]
        leader = next(r for r in results if r.member_id == r.leader_id)
        assignments = {r.member_id: f"a{i}".encode() for i, r in enumerate(results)}
        syncs = [self.sync(group, r.generation_id, r.member_id,
                           assignments if r is leader else None,
                           instance=(instances[i] if instances else None))
                 for i, r in enumerate(results)]
        await settle()
        for s in syncs:
            s.result()
        return results
