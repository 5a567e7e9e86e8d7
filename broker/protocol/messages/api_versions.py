"""ApiVersions (key 18): which APIs and versions this broker speaks."""

from ..schema import Array, F, INT16, INT32, INT64, BOOL, STRING, api

SCHEMA = api(
    18, "ApiVersions", valid="0-4", flexible="3+",
    request=[
        F("client_software_name", STRING, "3+"),
        F("client_software_version", STRING, "3+"),
    ],
    response=[
        F("error_code", INT16),
        F("api_keys", Array([
            F("api_key", INT16),
            F("min_version", INT16),
            F("max_version", INT16),
        ])),
        F("throttle_time_ms", INT32, "1+"),
        F("supported_features", Array([
            F("name", STRING),
            F("min_version", INT16),
            F("max_version", INT16),
        ]), "3+", tag=0),
        F("finalized_features_epoch", INT64, "3+", tag=1, default=-1),
        F("finalized_features", Array([
            F("name", STRING),
            F("max_version_level", INT16),
            F("min_version_level", INT16),
        ]), "3+", tag=2),
        F("zk_migration_ready", BOOL, "3+", tag=3),
    ],
)
