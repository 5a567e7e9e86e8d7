"""AlterConfigs (key 33): replace a resource's whole set of configuration overrides."""

from ..schema import BOOL, INT8, INT16, INT32, STRING, Array, F, api

SCHEMA = api(
    33, "AlterConfigs", valid="0-2", flexible="2+",
    request=[
        F("resources", Array([
            F("resource_type", INT8),
            F("resource_name", STRING),
            F("configs", Array([
                F("name", STRING),
                F("value", STRING, nullable="0+"),
            ])),
        ])),
        F("validate_only", BOOL),
    ],
    response=[
        F("throttle_time_ms", INT32),
        F("responses", Array([
            F("error_code", INT16),
            F("error_message", STRING, nullable="0+"),
            F("resource_type", INT8),
            F("resource_name", STRING),
        ])),
    ],
)
