"""DescribeGroups (key 15): state, protocol and members of groups.

An unknown group is described as "Dead" without an error (Kafka's classic
coordinator does the same); metadata and assignments appear while Stable.
"""

from __future__ import annotations

from ..groups.admin import describe_group


async def handle(ctx, req):
    return {"groups": [describe_group(ctx.node.groups, group_id) for group_id in req.groups]}


def error_response(req, version, error):
    return {"groups": [{"error_code": error.code, "group_id": group_id, "group_state": "",
                        "protocol_type": "", "protocol_data": "", "members": []}
                       for group_id in req.groups]}
