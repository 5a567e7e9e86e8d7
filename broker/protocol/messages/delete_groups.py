"""DeleteGroups (key 42): delete empty consumer groups and their offsets."""

from ..schema import INT16, INT32, STRING, Array, F, api

SCHEMA = api(
    42, "DeleteGroups", valid="0-2", flexible="2+",
    request=[
        F("groups_names", Array(STRING)),
    ],
    response=[
        F("throttle_time_ms", INT32),
        F("results", Array([
            F("group_id", STRING),
            F("error_code", INT16),
        ])),
    ],
)
