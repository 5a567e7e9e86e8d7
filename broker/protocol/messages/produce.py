"""Produce (key 0): append record batches to partition logs."""

from ..schema import INT16, INT32, INT64, NULL, RECORDS, STRING, Array, F, api

SCHEMA = api(
    0, "Produce", valid="0-11", flexible="9+", supported="3-11",
    request=[
        F("transactional_id", STRING, "3+", nullable="3+", default=NULL),
        F("acks", INT16),
        F("timeout_ms", INT32),
        F("topic_data", Array([
            F("name", STRING),
            F("partition_data", Array([
                F("index", INT32),
                F("records", RECORDS, nullable="0+"),
            ])),
        ])),
    ],
    response=[
        F("responses", Array([
            F("name", STRING),
            F("partition_responses", Array([
                F("index", INT32),
                F("error_code", INT16),
                F("base_offset", INT64),
                F("log_append_time_ms", INT64, "2+", default=-1),
                F("log_start_offset", INT64, "5+", default=-1),
                F("record_errors", Array([
                    F("batch_index", INT32, "8+"),
                    F("batch_index_error_message", STRING, "8+", nullable="8+", default=NULL),
                ]), "8+"),
                F("error_message", STRING, "8+", nullable="8+", default=NULL),
                F("current_leader", [
                    F("leader_id", INT32, "10+", default=-1),
                    F("leader_epoch", INT32, "10+", default=-1),
                ], "10+", tag=0),
            ])),
        ])),
        F("throttle_time_ms", INT32, "1+"),
        F("node_endpoints", Array([
            F("node_id", INT32, "10+"),
            F("host", STRING, "10+"),
            F("port", INT32, "10+"),
            F("rack", STRING, "10+", nullable="10+", default=NULL),
        ]), "10+", tag=0),
    ],
)
