"""Heartbeat (key 12): keep a classic group membership alive."""

from ..schema import INT16, INT32, NULL, STRING, F, api

SCHEMA = api(
    12, "Heartbeat", valid="0-4", flexible="4+",
    request=[
        F("group_id", STRING),
        F("generation_id", INT32),
        F("member_id", STRING),
        F("group_instance_id", STRING, "3+", nullable="3+", default=NULL),
    ],
    response=[
        F("throttle_time_ms", INT32, "1+"),
        F("error_code", INT16),
    ],
)
