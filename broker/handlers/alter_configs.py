"""AlterConfigs (key 33): replace a topic's config overrides wholesale.

Broker configs are static in tierbroker (set them in server.properties and
restart); altering them is refused with a message saying so.
"""

from __future__ import annotations

from ..config import ConfigChange
from .config_changes import apply_resource_changes, resource_error


async def handle(ctx, req):
    responses = []
    for res in req.resources:
        changes = [ConfigChange(c.name, c.value) for c in res.configs]
        responses.append(await apply_resource_changes(
            ctx.node, res.resource_type, res.resource_name, changes, False, req.validate_only))
    return {"responses": responses}


def error_response(req, version, error):
    return {"responses": [resource_error(r, error) for r in req.resources]}
