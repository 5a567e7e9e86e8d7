"""ListGroups (key 16): the groups known to a coordinator."""

from ..schema import INT16, INT32, STRING, Array, F, api

SCHEMA = api(
    16, "ListGroups", valid="0-5", flexible="3+",
    request=[
        F("states_filter", Array(STRING), "4+"),
        F("types_filter", Array(STRING), "5+"),
    ],
    response=[
        F("throttle_time_ms", INT32, "1+"),
        F("error_code", INT16),
        F("groups", Array([
            F("group_id", STRING),
            F("protocol_type", STRING),
            F("group_state", STRING, "4+"),
            F("group_type", STRING, "5+"),
        ])),
    ],
)
