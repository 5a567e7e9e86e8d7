"""DeleteRecords (key 21): advance partitions' log start offsets."""

from ..schema import INT16, INT32, INT64, STRING, Array, F, api

SCHEMA = api(
    21, "DeleteRecords", valid="0-2", flexible="2+",
    request=[
        F("topics", Array([
            F("name", STRING),
            F("partitions", Array([
                F("partition_index", INT32),
                F("offset", INT64),
            ])),
        ])),
        F("timeout_ms", INT32),
    ],
    response=[
        F("throttle_time_ms", INT32),
        F("topics", Array([
            F("name", STRING),
            F("partitions", Array([
                F("partition_index", INT32),
                F("low_watermark", INT64),
                F("error_code", INT16),
            ])),
        ])),
    ],
)
