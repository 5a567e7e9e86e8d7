"""InitProducerId (key 22): a producer ID and epoch for idempotent or transactional producing."""

from ..schema import INT16, INT32, INT64, STRING, F, api

SCHEMA = api(
    22, "InitProducerId", valid="0-5", flexible="2+",
    request=[
        F("transactional_id", STRING, nullable="0+"),
        F("transaction_timeout_ms", INT32),
        F("producer_id", INT64, "3+", default=-1),
        F("producer_epoch", INT16, "3+", default=-1),
    ],
    response=[
        F("throttle_time_ms", INT32),
        F("error_code", INT16),
        F("producer_id", INT64, default=-1),
        F("producer_epoch", INT16),
    ],
)
