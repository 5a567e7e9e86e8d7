"""A topic's effective configuration: `TopicConfig`, and validation of the
overrides a client sends in CreateTopics / AlterConfigs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .broker_config import BrokerConfig, check_local_retention
from .describe import ConfigEntry, ConfigSource, ConfigSynonym, make_entry
from .keys import InvalidConfigError
from .topic_keys import TOPIC_KEYS


def validate_topic_overrides(overrides: Mapping[str, str | None],
                             broker: BrokerConfig | None = None) -> dict[str, str]:
    """The overrides in canonical string form; InvalidConfigError for an
    unknown key, a null or a bad value.

    With `broker`, also the checks that need effective values, as Kafka makes
    them when a topic is created or altered: local retention within total
    retention, and `remote.storage.enable` only where the broker allows tiering.
    """
    normalized: dict[str, str] = {}
    for name, text in overrides.items():
        key = TOPIC_KEYS.get(name)
        if key is None:
            raise InvalidConfigError(name, text, "unknown topic config")
        if text is None:
            raise InvalidConfigError(name, None, "a topic config value cannot be null")
        normalized[name] = key.normalize(text)
    if broker is not None:
        topic = TopicConfig(broker, normalized)
        check_local_retention("local.retention.ms", topic.get("local.retention.ms"),
                              "retention.ms", topic.get("retention.ms"))
        check_local_retention("local.retention.bytes", topic.get("local.retention.bytes"),
                              "retention.bytes", topic.get("retention.bytes"))
        tiering_allowed = broker.get("remote.log.storage.system.enable")
        if normalized.get("remote.storage.enable") == "true" and not tiering_allowed:
            raise InvalidConfigError("remote.storage.enable", "true", "tiered storage is disabled on "
                                     "this broker (remote.log.storage.system.enable=false)")
    return normalized


class TopicConfig:
    """The broker's values with a topic's overrides on top.

    For each topic key: the override if there is one, else the effective value
    of its broker synonym (with the ms/minutes/hours precedence), else the
    topic key's default. Built with each key's value parsed and validated on
    its own; cross-key checks belong to `validate_topic_overrides` at create or
    alter time, so a stored topic still loads after a broker default changes.
    Immutable: an alter builds a new TopicConfig.
    """

    def __init__(self, broker: BrokerConfig, overrides: Mapping[str, str]):
        self.broker = broker
        self._overrides = validate_topic_overrides(overrides)
        self._values: dict[str, Any] = {name: self._resolve(name) for name in TOPIC_KEYS}

    @property
    def overrides(self) -> dict[str, str]:
        """The topic's own settings, canonical strings (a copy)."""
        return dict(self._overrides)

    def get(self, key: str) -> Any:
        """The effective typed value of topic key `key`; KeyError if it is not one."""
        return self._values[key]

    def source_of(self, key: str) -> ConfigSource:
        synonyms = self._synonyms(key)
        return synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG

    def local_retention_ms(self) -> int:
        """How long uploaded segments stay local, resolved: -2 becomes
        `retention.ms`, and never more than `retention.ms`; -1 is unlimited."""
        return _resolve_local(self.get("local.retention.ms"), self.get("retention.ms"))

    def local_retention_bytes(self) -> int:
        """As `local_retention_ms`, for bytes against `retention.bytes`."""
        return _resolve_local(self.get("local.retention.bytes"), self.get("retention.bytes"))

    def log_config_values(self) -> dict[str, Any]:
        """What the local log needs, keyed as `broker.log.LogConfig`'s fields."""
        return {
            "segment_bytes": self.get("segment.bytes"),
            "segment_ms": self.get("segment.ms"),
            "segment_jitter_ms": self.get("segment.jitter.ms"),
            "index_interval_bytes": self.get("index.interval.bytes"),
            "segment_index_bytes": self.get("segment.index.bytes"),
            "retention_ms": self.get("retention.ms"),
            "retention_bytes": self.get("retention.bytes"),
            "file_delete_delay_ms": self.get("file.delete.delay.ms"),
            "message_timestamp_type": self.get("message.timestamp.type"),
        }

    def describe(self, keys: list[str] | None = None, include_synonyms: bool = False,
                 include_documentation: bool = False) -> list[ConfigEntry]:
        """DescribeConfigs for the TOPIC resource: the named keys (unknown names
        are skipped), or all topic keys sorted by name."""
        names = sorted(TOPIC_KEYS) if keys is None else [k for k in keys if k in TOPIC_KEYS]
        return [make_entry(TOPIC_KEYS[name], TOPIC_KEYS[name].format(self.get(name)),
                           self._synonyms(name), include_synonyms, include_documentation)
                for name in names]

    def _resolve(self, name: str) -> Any:
        key = TOPIC_KEYS[name]
        if name in self._overrides:
            return key.parse(self._overrides[name])
        if key.synonym is not None:
            value = self.broker.effective(key.synonym)
            if value is not None:
                return value
        return key.default

    def _synonyms(self, name: str) -> list[ConfigSynonym]:
        """The topic override, then the broker synonyms (Kafka's order)."""
        key = TOPIC_KEYS[name]
        synonyms = []
        if name in self._overrides:
            shown = None if key.sensitive else self._overrides[name]
            synonyms.append(ConfigSynonym(name, shown, ConfigSource.DYNAMIC_TOPIC_CONFIG))
        if key.synonym is not None:
            synonyms.extend(self.broker.synonyms(key.synonym))
        return synonyms


def _resolve_local(local: int, total: int) -> int:
    if local == -2:
        return total
    if total == -1:
        return local
    if local == -1:
        return total
    return min(local, total)
