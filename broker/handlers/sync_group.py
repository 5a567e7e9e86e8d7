"""SyncGroup (key 14): the leader hands in the assignment; everyone receives theirs.

Assignments are opaque bytes, passed through untouched (any client assignor,
cooperative-sticky included, works).
"""

from __future__ import annotations


async def handle(ctx, req):
    v5 = ctx.version >= 5
    result = await ctx.node.groups.sync_group(
        req.group_id, req.generation_id, req.member_id, req.group_instance_id,
        req.protocol_type if v5 else None, req.protocol_name if v5 else None,
        {a.member_id: bytes(a.assignment) for a in req.assignments})
    return {"error_code": 0, "protocol_type": result.protocol_type, "protocol_name": result.protocol_name,
            "assignment": result.assignment}


def error_response(req, version, error):
    return {"error_code": error.code, "assignment": b""}
