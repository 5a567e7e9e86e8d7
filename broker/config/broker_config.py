"""The broker's configuration: `BrokerConfig`.

Where a value comes from, highest precedence first: overrides (command-line
flags) > environment > properties file > the key's default. The environment
form of a key is `TIERBROKER_` + the key upper-cased with dots as underscores:
`log.dirs` is `TIERBROKER_LOG_DIRS`. Within the merged settings, keys that set
the same value (`log.retention.ms` / `.minutes` / `.hours`, ...) are resolved
by Kafka's rules (see `broker_keys.SYNONYM_GROUPS`), whichever layer each came
from.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .broker_keys import BROKER_KEYS, SYNONYM_GROUPS, synonym_group
from .describe import ConfigEntry, ConfigSource, ConfigSynonym, make_entry
from .keys import InvalidConfigError
from .listeners import Listener, parse_listeners
from .properties import parse_properties
from .storage_url import LocalStorageUrl, S3StorageUrl, parse_storage_url

log = logging.getLogger(__name__)

ENV_PREFIX = "TIERBROKER_"


DEFAULT_REMOTE_DIR = "remote-tier"


def env_var_name(key: str) -> str:
    """The environment variable that sets `key`: log.dirs -> TIERBROKER_LOG_DIRS."""
    return ENV_PREFIX + key.upper().replace(".", "_")


def settings_from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The config keys set by `TIERBROKER_*` variables (no config key has an '_',
    so the mapping back is exact)."""
    return {name[len(ENV_PREFIX):].lower().replace("_", "."): value
            for name, value in environ.items()
            if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX)}


class BrokerConfig:
    """Every broker key's typed value, plus the unknown keys the operator gave.

    Invariants: every value the operator set parsed and passed its validator
    and the cross-key checks (node.id = broker.id when both are set, advertised
    listener names are listener names, local retention within total
    retention); unknown keys are kept as given (Kafka ignores them with a
    warning) and logged once, at construction. Immutable: safe to share.
    """

    def __init__(self, settings: Mapping[str, str] | None = None):
        self._set: dict[str, Any] = {}
        unknown: dict[str, str] = {}
        for name, text in (settings or {}).items():
            key = BROKER_KEYS.get(name)
            if key is None:
                unknown[name] = text
            else:
                self._set[name] = key.parse(text)
        self.unknown: Mapping[str, str] = MappingProxyType(unknown)
        if unknown:
            log.warning("unknown config keys, kept but not used: %s", ", ".join(sorted(unknown)))
        self._check()

    @classmethod
    def load(cls, properties_path: Path | None, overrides: Mapping[str, str] | None = None,
             environ: Mapping[str, str] | None = None) -> "BrokerConfig":
        """Merge a server.properties file, the environment and overrides.

        The caller passes the environment (usually `os.environ`); nothing here
        reads globals. Raises OSError if the file cannot be read,
        PropertiesSyntaxError if it is malformed, InvalidConfigError for a bad value.
        """
        settings: dict[str, str] = {}
        if properties_path is not None:
            text = Path(properties_path).read_text(encoding="utf-8")
            settings.update(parse_properties(text, source=str(properties_path)))
        settings.update(settings_from_environ(environ or {}))
        settings.update(overrides or {})
        return cls(settings)

    # -- single keys --------------------------------------------------------

    def get(self, key: str) -> Any:
        """The typed value of `key` itself: as set, else its default (maybe None).

        For values several keys can set (retention, roll, log dirs, node id) use
        `effective` or the helpers below. KeyError for a key that is not a broker key.
        """
        if key in self._set:
            return self._set[key]
        return BROKER_KEYS[key].default

    def is_set(self, key: str) -> bool:
        """Whether the operator set `key` (file, environment or override)."""
        return key in self._set

    def source_of(self, key: str) -> ConfigSource:
        """STATIC_BROKER_CONFIG if the operator set `key`, else DEFAULT_CONFIG."""
        if key not in BROKER_KEYS:
            raise KeyError(key)
        return ConfigSource.STATIC_BROKER_CONFIG if key in self._set else ConfigSource.DEFAULT_CONFIG

    def effective(self, key: str) -> Any:
        """The value in force for `key`, in `key`'s unit.

        For the leader of a synonym group (log.retention.ms, log.roll.ms,
        log.roll.jitter.ms, log.flush.interval.ms, log.dirs, node.id): the first
        member the operator set, else the first member with a default, scaled
        to the leader's unit; negative retention is -1 (unlimited). Any other
        key: `get(key)`.
        """
        group = SYNONYM_GROUPS.get(key)
        if group is None:
            return self.get(key)
        chosen = next(((name, factor) for name, factor in group.members if name in self._set), None)
        if chosen is None:
            chosen = next((name, factor) for name, factor in group.members
                          if BROKER_KEYS[name].default is not None)
        name, factor = chosen
        value = self.get(name)
        if factor != 1:
            value *= factor
        if group.negative_is_unlimited and value < 0:
            value = -1
        return value

    # -- derived values -----------------------------------------------------

    def node_id(self) -> int:
        return self.effective("node.id")

    def log_dirs(self) -> list[Path]:
        """`log.dirs`, else `log.dir`, as paths (relative to the working directory)."""
        return [Path(d) for d in self.effective("log.dirs")]

    def log_retention_ms(self) -> int:
        """log.retention.ms > .minutes > .hours, in ms; -1 is unlimited."""
        return self.effective("log.retention.ms")

    def log_roll_ms(self) -> int:
        """log.roll.ms > log.roll.hours, in ms."""
        return self.effective("log.roll.ms")

    def listeners(self) -> list[Listener]:
        """(name, host, port) per listener; host "" binds all interfaces."""
        return parse_listeners(self.get("listeners"))

    def advertised_listeners(self) -> list[Listener] | None:
        """The addresses to give clients, or None when `advertised.listeners` is
        unset: then the server advertises what it bound (`listeners`, with the
        actual port for port 0 and a reachable host for a wildcard)."""
        entries = self.get("advertised.listeners")
        return None if entries is None else parse_listeners(entries)

    def remote_storage_url(self) -> LocalStorageUrl | S3StorageUrl:
        """The configured remote tier, or the embedded default: `remote-tier` in the first log dir."""
        text = self.get("remote.storage.url")
        if text is None:
            return LocalStorageUrl(self.log_dirs()[0] / DEFAULT_REMOTE_DIR)
        return parse_storage_url(text)

    # -- DescribeConfigs ----------------------------------------------------

    def synonyms(self, key: str) -> list[ConfigSynonym]:
        """Kafka's synonym list for the broker value `key` leads: the members of
        its group the operator set (STATIC_BROKER_CONFIG), then the members with a
        non-None default (DEFAULT_CONFIG), each in precedence order."""
        names = synonym_group(key).names
        static = [ConfigSynonym(n, self._shown(n, self._set[n]), ConfigSource.STATIC_BROKER_CONFIG)
                  for n in names if n in self._set]
        defaults = [ConfigSynonym(n, self._shown(n, BROKER_KEYS[n].default), ConfigSource.DEFAULT_CONFIG)
                    for n in names if BROKER_KEYS[n].default is not None]
        return static + defaults

    def describe(self, keys: list[str] | None = None, include_synonyms: bool = False,
                 include_documentation: bool = False) -> list[ConfigEntry]:
        """DescribeConfigs for the BROKER resource: the named keys (unknown names
        are skipped, as Kafka does), or all keys sorted by name.

        Each entry shows the key's own value; its synonyms are those of its
        group from the key itself downwards (Kafka's rule: describing
        log.retention.hours does not list log.retention.ms).
        """
        names = sorted(BROKER_KEYS) if keys is None else [k for k in keys if k in BROKER_KEYS]
        entries = []
        for name in names:
            key = BROKER_KEYS[name]
            synonyms = self.synonyms(name)
            while synonyms and synonyms[0].name != name:
                synonyms.pop(0)
            entries.append(make_entry(key, key.format(self.get(name)), synonyms,
                                      include_synonyms, include_documentation))
        return entries

    # -- internals ------------------------------------------------------------

    def _shown(self, name: str, value: Any) -> str | None:
        key = BROKER_KEYS[name]
        return None if key.sensitive else key.format(value)

    def _check(self) -> None:
        node_id, broker_id = self._set.get("node.id"), self._set.get("broker.id")
        if node_id is not None and broker_id is not None and node_id != broker_id:
            raise InvalidConfigError("broker.id", str(broker_id),
                                     f"must equal node.id ({node_id}) when both are set")
        advertised = self.advertised_listeners()
        if advertised is not None:
            names = {listener.name for listener in self.listeners()}
            for listener in advertised:
                if listener.name not in names:
                    text = self._shown("advertised.listeners", self.get("advertised.listeners"))
                    raise InvalidConfigError("advertised.listeners", text,
                                             f"listener name {listener.name} is not in listeners")
        if self.get("remote.storage.enable") and not self.get("remote.log.storage.system.enable"):
            raise InvalidConfigError("remote.storage.enable", "true",
                                     "needs remote.log.storage.system.enable=true")
        check_local_retention("log.local.retention.ms", self.get("log.local.retention.ms"),
                              "log.retention.ms", self.log_retention_ms())
        check_local_retention("log.local.retention.bytes", self.get("log.local.retention.bytes"),
                              "log.retention.bytes", self.get("log.retention.bytes"))


def check_local_retention(local_name: str, local: int, total_name: str, total: int) -> None:
    """Local retention (-2 = same as total, -1 = unlimited) must fit in total
    retention (-1 = unlimited), as Kafka requires: a local copy cannot outlive
    the log it is a part of."""
    if local == -2 or total == -1:
        return
    if local == -1:
        raise InvalidConfigError(local_name, "-1",
                                 f"must not be -1 (unlimited) while {total_name} is {total}")
    if local > total:
        raise InvalidConfigError(local_name, str(local), f"must not be more than {total_name} ({total})")
