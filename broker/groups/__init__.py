"""Consumer groups: the classic group coordinator and committed offsets.

- `coordinator`: JoinGroup / SyncGroup / Heartbeat / LeaveGroup, rebalances, timers
- `requests`, `settings`: what the coordinator takes and answers, and its config
- `group`, `state`: one group's membership and its state machine
- `offsets`: who may commit, OffsetFetch / OffsetDelete, expiry (KIP-211)
- `offset_store`, `offset_log`: durable committed offsets (group-commit fsync, compaction)
- `admin`: ListGroups / DescribeGroups / DeleteGroups
- `consumer_protocol`: the consumer subscription/assignment layouts, for the few
  places that must look inside member metadata
- `timers`: the coordinator's clock (a manual one for tests)
"""

from .coordinator import GroupCoordinator
from .offset_log import CommittedOffset
from .offset_store import OffsetStore
from .requests import JoinRequest, JoinResult, MemberIdRequired, SyncResult
from .settings import GroupSettings
from .state import GroupState

__all__ = ["CommittedOffset", "GroupCoordinator", "GroupSettings", "GroupState", "JoinRequest",
           "JoinResult", "MemberIdRequired", "OffsetStore", "SyncResult"]
