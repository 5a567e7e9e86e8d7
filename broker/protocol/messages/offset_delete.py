"""OffsetDelete (key 47): delete a group's committed offsets for some partitions."""

from ..schema import INT16, INT32, STRING, Array, F, api

SCHEMA = api(
    47, "OffsetDelete", valid="0", flexible="none",
    request=[
        F("group_id", STRING),
        F("topics", Array([
            F("name", STRING),
            F("partitions", Array([
                F("partition_index", INT32),
            ])),
        ])),
    ],
    response=[
        F("error_code", INT16),
        F("throttle_time_ms", INT32),
        F("topics", Array([
            F("name", STRING),
            F("partitions", Array([
                F("partition_index", INT32),
                F("error_code", INT16),
            ])),
        ])),
    ],
)
