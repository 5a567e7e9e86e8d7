"""Everything a request handler may use: config, identity, topics, groups,
producer ids, metrics.

One `BrokerNode` per running broker; handlers reach it through their request
context, never through a global.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from remote_index.remote_reader import RemoteLogReader
from tiering import TieringManager

from .config import BrokerConfig
from .groups import GroupCoordinator
from .metrics import BrokerMetrics
from .producer_ids import ProducerIdAllocator
from .topics import TopicRegistry

if TYPE_CHECKING:
    from .tier_admin import TierAdmin


@dataclass(frozen=True)
class Endpoint:
    listener: str
    host: str
    port: int


@dataclass
class BrokerNode:
    config: BrokerConfig
    node_id: int
    cluster_id: str
    topics: TopicRegistry
    metrics: BrokerMetrics
    groups: GroupCoordinator
    producer_ids: ProducerIdAllocator
    tiering: TieringManager
    remote_reader: RemoteLogReader
    # Set right after construction: it needs the node itself.
    tier_admin: "TierAdmin | None" = None
    # Filled in once the listeners are bound (a configured port 0 becomes a real one).
    advertised: list[Endpoint] = field(default_factory=list)
    rack: str | None = None

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint clients are told to use (the first advertised listener)."""
        return self.advertised[0]
