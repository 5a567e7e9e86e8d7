"""DescribeConfigs (key 32): topic and broker configs with Kafka's names,
values, sources, synonyms and (v3+) types and documentation."""

from __future__ import annotations

from ..protocol import errors
from .common import error_fields

TOPIC = 2
BROKER = 4
BROKER_LOGGER = 8


def config_entries(config, keys=None, include_synonyms=False, include_documentation=False):
    return config.describe(keys, include_synonyms=include_synonyms,
                           include_documentation=include_documentation)


async def handle(ctx, req):
    node = ctx.node
    results = []
    for res in req.resources:
        out = {"resource_type": res.resource_type, "resource_name": res.resource_name,
               "error_code": 0, "error_message": None, "configs": []}
        try:
            config = _resource_config(node, res.resource_type, res.resource_name)
            entries = config_entries(config, res.configuration_keys, req.include_synonyms,
                                     req.include_documentation)
            out["configs"] = [_entry(e, ctx.version) for e in entries]
        except errors.KafkaError as exc:
            out.update(error_fields(exc))
        results.append(out)
    return {"results": results}


def _resource_config(node, resource_type: int, name: str):
    if resource_type == TOPIC:
        return node.topics.require(name).config
    if resource_type == BROKER:
        if name not in ("", str(node.node_id)):
            raise errors.InvalidRequest(f"this is broker {node.node_id}, not {name!r}")
        return node.config
    raise errors.InvalidRequest(f"resource type {resource_type} has no configs on this broker")


def _entry(e, version: int) -> dict:
    return {
        "name": e.name,
        "value": e.value,
        "read_only": e.read_only,
        "is_default": e.source == 5,
        "config_source": int(e.source),
        "is_sensitive": e.is_sensitive,
        "synonyms": [{"name": s.name, "value": s.value, "source": int(s.source)} for s in e.synonyms],
        "config_type": int(e.config_type),
        "documentation": e.documentation,
    }


def error_response(req, version, error):
    return {"results": [{"resource_type": r.resource_type, "resource_name": r.resource_name,
                         **error_fields(error), "configs": []} for r in req.resources]}
