"""JoinGroup (key 11): join a classic group; parked until the join phase ends.

v0 has no rebalance timeout: the session timeout stands in for it (as in
Kafka). From v4 a joiner without a member id is first handed one with
MEMBER_ID_REQUIRED (KIP-394). See `broker.groups.coordinator` for the protocol.
"""

from __future__ import annotations

from ..groups import JoinRequest


async def handle(ctx, req):
    version = ctx.version
    result = await ctx.node.groups.join_group(JoinRequest(
        group_id=req.group_id,
        member_id=req.member_id,
        group_instance_id=req.group_instance_id,
        client_id=ctx.header.client_id or "",
        client_host=client_host(ctx),
        session_timeout_ms=req.session_timeout_ms,
        rebalance_timeout_ms=req.rebalance_timeout_ms if version >= 1 else req.session_timeout_ms,
        protocol_type=req.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in req.protocols],
        require_known_member_id=version >= 4,
    ))
    return {
        "error_code": 0,
        "generation_id": result.generation_id,
        "protocol_type": result.protocol_type,
        "protocol_name": result.protocol_name,
        "leader": result.leader_id,
        "skip_assignment": result.skip_assignment,
        "member_id": result.member_id,
        "members": result.members,
    }


def client_host(ctx) -> str:
    """The client's address as Kafka shows it in DescribeGroups: "/127.0.0.1"."""
    peer = getattr(ctx.connection, "peer", None)
    if not peer:
        return ""
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    return "/" + host.strip("[]")


def error_response(req, version, error):
    # MEMBER_ID_REQUIRED carries the id the client must rejoin with.
    return {"error_code": error.code, "generation_id": -1, "protocol_name": None, "leader": "",
            "member_id": getattr(error, "member_id", req.member_id), "members": []}
