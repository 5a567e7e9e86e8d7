"""ApiVersions (key 18): the APIs this broker handles and the versions it advertises."""

from __future__ import annotations

from ..protocol.messages import SCHEMAS


def supported_api_keys() -> list[dict]:
    from . import HANDLERS  # the handler table imports this module

    keys = []
    for key in sorted(HANDLERS):
        versions = SCHEMAS[key].advertised
        keys.append({"api_key": key, "min_version": versions.low,
                     "max_version": min(versions.high, SCHEMAS[key].valid.high)})
    return keys


async def handle(ctx, req):
    return {"error_code": 0, "api_keys": supported_api_keys(), "throttle_time_ms": 0}


def error_response(req, version, error):
    # Even in an error the client needs our ranges to pick a version it can retry with.
    return {"error_code": error.code, "api_keys": supported_api_keys()}
