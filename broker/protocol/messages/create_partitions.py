"""CreatePartitions (key 37): grow the partition count of existing topics."""

from ..schema import BOOL, INT16, INT32, NULL, STRING, Array, F, api

SCHEMA = api(
    37, "CreatePartitions", valid="0-3", flexible="2+",
    request=[
        F("topics", Array([
            F("name", STRING),
            F("count", INT32),
            F("assignments", Array([
                F("broker_ids", Array(INT32)),
            ]), nullable="0+"),
        ])),
        F("timeout_ms", INT32),
        F("validate_only", BOOL),
    ],
    response=[
        F("throttle_time_ms", INT32),
        F("results", Array([
            F("name", STRING),
            F("error_code", INT16),
            F("error_message", STRING, nullable="0+", default=NULL),
        ])),
    ],
)
