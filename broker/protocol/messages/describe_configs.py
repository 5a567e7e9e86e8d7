"""DescribeConfigs (key 32): read topic and broker configuration, with sources and synonyms."""

from ..schema import BOOL, INT8, INT16, INT32, STRING, Array, F, api

SCHEMA = api(
    32, "DescribeConfigs", valid="0-4", flexible="4+",
    request=[
        F("resources", Array([
            F("resource_type", INT8),
            F("resource_name", STRING),
            F("configuration_keys", Array(STRING), nullable="0+"),
        ])),
        F("include_synonyms", BOOL, "1+"),
        F("include_documentation", BOOL, "3+"),
    ],
    response=[
        F("throttle_time_ms", INT32),
        F("results", Array([
            F("error_code", INT16),
            F("error_message", STRING, nullable="0+"),
            F("resource_type", INT8),
            F("resource_name", STRING),
            F("configs", Array([
                F("name", STRING),
                F("value", STRING, nullable="0+"),
                F("read_only", BOOL),
                F("is_default", BOOL, "0"),
                F("config_source", INT8, "1+", default=-1),
                F("is_sensitive", BOOL),
                F("synonyms", Array([
                    F("name", STRING, "1+"),
                    F("value", STRING, "1+", nullable="0+"),
                    F("source", INT8, "1+"),
                ]), "1+"),
                F("config_type", INT8, "3+"),
                F("documentation", STRING, "3+", nullable="0+"),
            ])),
        ])),
    ],
)
