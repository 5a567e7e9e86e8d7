"""Heartbeat (key 12): keep a membership alive; REBALANCE_IN_PROGRESS means rejoin."""

from __future__ import annotations


async def handle(ctx, req):
    ctx.node.groups.heartbeat(req.group_id, req.generation_id, req.member_id, req.group_instance_id)
    return {"error_code": 0}


def error_response(req, version, error):
    return {"error_code": error.code}
