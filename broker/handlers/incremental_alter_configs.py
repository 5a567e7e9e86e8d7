"""IncrementalAlterConfigs (key 44): SET, DELETE, APPEND, SUBTRACT topic config keys."""

from __future__ import annotations

from ..config import ConfigChange
from .config_changes import apply_resource_changes, resource_error


async def handle(ctx, req):
    responses = []
    for res in req.resources:
        changes = [ConfigChange(c.name, c.value, c.config_operation) for c in res.configs]
        responses.append(await apply_resource_changes(
            ctx.node, res.resource_type, res.resource_name, changes, True, req.validate_only))
    return {"responses": responses}


def error_response(req, version, error):
    return {"responses": [resource_error(r, error) for r in req.resources]}
