"""One module per Kafka API. Each defines:

    async def handle(ctx, request) -> response body (a mapping), or None for no response
    def error_response(request, version, error) -> the response carrying `error`
        for everything the request asked about (request is None only for
        ApiVersions at an unknown version)

`HANDLERS` maps API keys to those modules; ApiVersions advertises exactly these.
"""

from __future__ import annotations

from types import ModuleType

from . import (
    alter_configs,
    api_versions,
    create_partitions,
    create_topics,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    fetch,
    incremental_alter_configs,
    list_offsets,
    metadata,
    produce,
)

HANDLERS: dict[int, ModuleType] = {
    0: produce,
    1: fetch,
    2: list_offsets,
    3: metadata,
    18: api_versions,
    19: create_topics,
    20: delete_topics,
    21: delete_records,
    32: describe_configs,
    33: alter_configs,
    37: create_partitions,
    44: incremental_alter_configs,
    60: describe_cluster,
}
