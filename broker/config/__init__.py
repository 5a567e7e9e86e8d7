"""The one registry of configuration keys, and the broker's and topics'
effective configuration built from it.

- `keys`: ConfigDef, ConfigType, parsing/formatting, InvalidConfigError
- `validators`, `listeners`, `storage_url`: what a valid value looks like
- `broker_keys`, `topic_keys`: the key tables (Kafka's names and defaults)
- `properties`: server.properties files
- `broker_config`: BrokerConfig (file < environment < overrides)
- `topic_config`: TopicConfig (broker values + topic overrides)
- `describe`, `alter`: DescribeConfigs entries, (Incremental)AlterConfigs

Components receive a BrokerConfig or TopicConfig; nothing here reads globals.
"""

from .alter import AlterOp, ConfigChange, apply_alter
from .broker_config import ENV_PREFIX, BrokerConfig, env_var_name
from .broker_keys import BROKER_KEYS, SYNONYM_GROUPS
from .describe import ConfigEntry, ConfigSource, ConfigSynonym
from .keys import ConfigDef, ConfigType, InvalidConfigError, Secret
from .listeners import Listener
from .properties import PropertiesSyntaxError, parse_properties
from .storage_url import LocalStorageUrl, S3StorageUrl
from .topic_config import TopicConfig, validate_topic_overrides
from .topic_keys import TOPIC_KEYS

__all__ = [
    "AlterOp", "BROKER_KEYS", "BrokerConfig", "ConfigChange", "ConfigDef", "ConfigEntry",
    "ConfigSource", "ConfigSynonym", "ConfigType", "ENV_PREFIX", "InvalidConfigError", "Listener",
    "LocalStorageUrl", "PropertiesSyntaxError", "S3StorageUrl", "SYNONYM_GROUPS", "Secret",
    "TOPIC_KEYS", "TopicConfig", "apply_alter", "env_var_name", "parse_properties",
    "validate_topic_overrides",
]
