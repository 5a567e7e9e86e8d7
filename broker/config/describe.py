"""What DescribeConfigs reports for one key: `ConfigEntry` and its synonyms.

Follows Kafka: an entry's `source` is that of its first synonym (the one whose
value is in effect), or DEFAULT_CONFIG when it has none; synonyms run from the
highest precedence down (topic override, broker keys the operator set, broker
defaults); sensitive values are None everywhere.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .keys import ConfigDef, ConfigType


class ConfigSource(enum.IntEnum):
    """Where a value comes from; Kafka's DescribeConfigs ConfigSource ids."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6


@dataclass(frozen=True)
class ConfigSynonym:
    name: str
    value: str | None
    source: ConfigSource


@dataclass(frozen=True)
class ConfigEntry:
    """One DescribeConfigs result entry. `documentation` is None unless asked for."""

    name: str
    value: str | None
    read_only: bool
    source: ConfigSource
    is_sensitive: bool
    config_type: ConfigType
    synonyms: list[ConfigSynonym] = field(default_factory=list)
    documentation: str | None = None


def make_entry(key: ConfigDef, value: str | None, synonyms: list[ConfigSynonym],
               include_synonyms: bool, include_documentation: bool) -> ConfigEntry:
    """An entry for `key` whose effective value formats to `value`; `synonyms`
    is the full precedence list, used for the source whether or not it is returned."""
    source = synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG
    return ConfigEntry(
        name=key.name,
        value=None if key.sensitive else value,
        read_only=key.read_only,
        source=source,
        is_sensitive=key.sensitive,
        config_type=key.type,
        synonyms=synonyms if include_synonyms else [],
        documentation=key.doc if include_documentation else None,
    )
