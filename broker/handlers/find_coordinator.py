"""FindCoordinator (key 10): this broker coordinates every group.

v0-3 ask about one key; v4+ batch `coordinator_keys`. Key type 0 is a group;
transactions (1) are not coordinated here yet and answer
COORDINATOR_NOT_AVAILABLE; any other key type is INVALID_REQUEST.
"""

from __future__ import annotations

from ..protocol import errors

GROUP = 0
TRANSACTION = 1


def _locate(ctx, key_type: int) -> dict:
    if key_type == TRANSACTION:
        raise errors.CoordinatorNotAvailable("this broker has no transaction coordinator")
    if key_type != GROUP:
        raise errors.InvalidRequest(f"unknown coordinator key type {key_type}")
    endpoint = ctx.node.endpoint
    return {"node_id": ctx.node.node_id, "host": endpoint.host, "port": endpoint.port,
            "error_code": 0, "error_message": None}


async def handle(ctx, req):
    if ctx.version >= 4:
        coordinators = []
        for key in req.coordinator_keys:
            try:
                entry = _locate(ctx, req.key_type)
            except errors.KafkaError as exc:
                entry = _error_entry(exc)
            coordinators.append({"key": key, **entry})
        return {"coordinators": coordinators}
    return _locate(ctx, req.key_type)


def _error_entry(error: errors.KafkaError) -> dict:
    return {"node_id": -1, "host": "", "port": -1, "error_code": error.code, "error_message": error.message}


def error_response(req, version, error):
    if version >= 4:
        return {"coordinators": [{"key": key, **_error_entry(error)} for key in req.coordinator_keys]}
    return _error_entry(error)
