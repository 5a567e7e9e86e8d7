"""DeleteTopics (key 20): delete topics by name or topic ID."""

from ..schema import INT16, INT32, NULL, STRING, UUID, Array, F, api

SCHEMA = api(
    20, "DeleteTopics", valid="0-6", flexible="4+",
    request=[
        F("topics", Array([
            F("name", STRING, "6+", nullable="6+", default=NULL),
            F("topic_id", UUID, "6+"),
        ]), "6+"),
        F("topic_names", Array(STRING), "0-5"),
        F("timeout_ms", INT32),
    ],
    response=[
        F("throttle_time_ms", INT32, "1+"),
        F("responses", Array([
            F("name", STRING, nullable="6+"),
            F("topic_id", UUID, "6+"),
            F("error_code", INT16),
            F("error_message", STRING, "5+", nullable="5+", default=NULL),
        ])),
    ],
)
