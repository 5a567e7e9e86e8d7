"""What the membership APIs take and give back, apart from their wire schemas.

Handlers translate between these and the request/response bodies of every
version; the coordinator never sees a wire struct.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import errors
from .group import Protocols


@dataclass
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    require_known_member_id: bool = True  # JoinGroup v4+ (KIP-394)


@dataclass
class JoinResult:
    member_id: str
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    leader_id: str
    members: list[dict]  # only for the leader: member_id, group_instance_id, metadata
    skip_assignment: bool = False


@dataclass
class SyncResult:
    protocol_type: str | None
    protocol_name: str | None
    assignment: bytes


class MemberIdRequired(errors.MemberIdRequired):
    """KIP-394: the joiner must rejoin with the member id carried here."""

    def __init__(self, member_id: str):
        super().__init__(f"rejoin with the assigned member id {member_id}")
        self.member_id = member_id
