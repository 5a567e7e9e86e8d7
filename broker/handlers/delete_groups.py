"""DeleteGroups (key 42): delete Empty groups and their committed offsets.

A group with members answers NON_EMPTY_GROUP; an unknown one GROUP_ID_NOT_FOUND.
"""

from __future__ import annotations

from ..groups.admin import delete_groups


async def handle(ctx, req):
    results = await delete_groups(ctx.node.groups, list(req.groups_names))
    return {"results": [{"group_id": group_id, "error_code": error.code if error else 0}
                        for group_id, error in results.items()]}


def error_response(req, version, error):
    return {"results": [{"group_id": group_id, "error_code": error.code} for group_id in req.groups_names]}
