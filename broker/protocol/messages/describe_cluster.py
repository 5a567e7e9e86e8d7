"""DescribeCluster (key 60): cluster ID, controller and brokers."""

from ..schema import BOOL, INT8, INT16, INT32, NULL, STRING, Array, F, api

SCHEMA = api(
    60, "DescribeCluster", valid="0-1", flexible="0+",
    request=[
        F("include_cluster_authorized_operations", BOOL),
        F("endpoint_type", INT8, "1+", default=1),
    ],
    response=[
        F("throttle_time_ms", INT32),
        F("error_code", INT16),
        F("error_message", STRING, nullable="0+", default=NULL),
        F("endpoint_type", INT8, "1+", default=1),
        F("cluster_id", STRING),
        F("controller_id", INT32, default=-1),
        F("brokers", Array([
            F("broker_id", INT32),
            F("host", STRING),
            F("port", INT32),
            F("rack", STRING, nullable="0+", default=NULL),
        ])),
        F("cluster_authorized_operations", INT32, default=-2147483648),
    ],
)
