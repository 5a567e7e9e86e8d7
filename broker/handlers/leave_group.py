"""LeaveGroup (key 13): one member (v0-2) or a batch of members (v3+) leave.

From v3 a member may be named by group_instance_id alone (an operator removing
a static member); the top-level error is then NONE and each member carries its own.
"""

from __future__ import annotations


async def handle(ctx, req):
    if ctx.version < 3:
        (error,) = ctx.node.groups.leave_group(req.group_id, [(req.member_id, None)])
        return {"error_code": error.code if error else 0}
    leaving = [(m.member_id, m.group_instance_id) for m in req.members]
    results = ctx.node.groups.leave_group(req.group_id, leaving)
    return {"error_code": 0, "members": [
        {"member_id": member_id, "group_instance_id": instance_id, "error_code": error.code if error else 0}
        for (member_id, instance_id), error in zip(leaving, results)]}


def error_response(req, version, error):
    return {"error_code": error.code, "members": []}
