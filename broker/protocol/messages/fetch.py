"""Fetch (key 1): read record batches from partition logs, optionally within a fetch session."""

from ..schema import INT8, INT16, INT32, INT64, NULL, RECORDS, STRING, UUID, Array, F, api

SCHEMA = api(
    1, "Fetch", valid="0-17", flexible="12+", supported="4-17",
    request=[
        F("cluster_id", STRING, "12+", nullable="12+", tag=0, default=NULL),
        F("replica_id", INT32, "0-14", default=-1),
        F("replica_state", [
            F("replica_id", INT32, "15+", default=-1),
            F("replica_epoch", INT64, "15+", default=-1),
        ], "15+", tag=1),
        F("max_wait_ms", INT32),
        F("min_bytes", INT32),
        F("max_bytes", INT32, "3+", default=2147483647),
        F("isolation_level", INT8, "4+"),
        F("session_id", INT32, "7+"),
        F("session_epoch", INT32, "7+", default=-1),
        F("topics", Array([
            F("topic", STRING, "0-12"),
            F("topic_id", UUID, "13+"),
            F("partitions", Array([
                F("partition", INT32),
                F("current_leader_epoch", INT32, "9+", default=-1),
                F("fetch_offset", INT64),
                F("last_fetched_epoch", INT32, "12+", default=-1),
                F("log_start_offset", INT64, "5+", default=-1),
                F("partition_max_bytes", INT32),
                F("replica_directory_id", UUID, "17+", tag=0),
            ])),
        ])),
        F("forgotten_topics_data", Array([
            F("topic", STRING, "7-12"),
            F("topic_id", UUID, "13+"),
            F("partitions", Array(INT32), "7+"),
        ]), "7+"),
        F("rack_id", STRING, "11+"),
    ],
    response=[
        F("throttle_time_ms", INT32, "1+"),
        F("error_code", INT16, "7+"),
        F("session_id", INT32, "7+"),
        F("responses", Array([
            F("topic", STRING, "0-12"),
            F("topic_id", UUID, "13+"),
            F("partitions", Array([
                F("partition_index", INT32),
                F("error_code", INT16),
                F("high_watermark", INT64),
                F("last_stable_offset", INT64, "4+", default=-1),
                F("log_start_offset", INT64, "5+", default=-1),
                F("diverging_epoch", [
                    F("epoch", INT32, "12+", default=-1),
                    F("end_offset", INT64, "12+", default=-1),
                ], "12+", tag=0),
                F("current_leader", [
                    F("leader_id", INT32, "12+", default=-1),
                    F("leader_epoch", INT32, "12+", default=-1),
                ], "12+", tag=1),
                F("snapshot_id", [
                    F("end_offset", INT64, default=-1),
                    F("epoch", INT32, default=-1),
                ], "12+", tag=2),
                F("aborted_transactions", Array([
                    F("producer_id", INT64, "4+"),
                    F("first_offset", INT64, "4+"),
                ]), "4+", nullable="4+"),
                F("preferred_read_replica", INT32, "11+", default=-1),
                F("records", RECORDS, nullable="0+"),
            ])),
        ])),
        F("node_endpoints", Array([
            F("node_id", INT32, "16+"),
            F("host", STRING, "16+"),
            F("port", INT32, "16+"),
            F("rack", STRING, "16+", nullable="16+", default=NULL),
        ]), "16+", tag=0),
    ],
)
