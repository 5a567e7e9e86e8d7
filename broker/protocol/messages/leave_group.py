"""LeaveGroup (key 13): leave a classic consumer group."""

from ..schema import INT16, INT32, NULL, STRING, Array, F, api

SCHEMA = api(
    13, "LeaveGroup", valid="0-5", flexible="4+",
    request=[
        F("group_id", STRING),
        F("member_id", STRING, "0-2"),
        F("members", Array([
            F("member_id", STRING, "3+"),
            F("group_instance_id", STRING, "3+", nullable="3+", default=NULL),
            F("reason", STRING, "5+", nullable="5+", default=NULL),
        ]), "3+"),
    ],
    response=[
        F("throttle_time_ms", INT32, "1+"),
        F("error_code", INT16),
        F("members", Array([
            F("member_id", STRING, "3+"),
            F("group_instance_id", STRING, "3+", nullable="3+"),
            F("error_code", INT16, "3+"),
        ]), "3+"),
    ],
)
