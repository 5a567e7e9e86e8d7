"""ListGroups (key 16): every group this coordinator knows, optionally filtered
by state (v4+, case-insensitive) and type (v5+; all groups here are "classic")."""

from __future__ import annotations

from ..groups.admin import list_groups


async def handle(ctx, req):
    listings = list_groups(ctx.node.groups, req.states_filter or None, req.types_filter or None)
    return {"error_code": 0, "groups": [
        {"group_id": g.group_id, "protocol_type": g.protocol_type, "group_state": g.state,
         "group_type": g.group_type} for g in listings]}


def error_response(req, version, error):
    return {"error_code": error.code, "groups": []}
