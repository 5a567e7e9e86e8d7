"""AlterConfigs and IncrementalAlterConfigs on a topic's overrides."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .broker_config import BrokerConfig
from .keys import ConfigType, InvalidConfigError, format_value, parse_value
from .topic_config import validate_topic_overrides
from .topic_keys import TOPIC_KEYS


class AlterOp(enum.IntEnum):
    """IncrementalAlterConfigs' ConfigOperation ids."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


class ConfigChange(NamedTuple):
    """One requested change; AlterConfigs' changes are all SET."""

    name: str
    value: str | None
    op: AlterOp = AlterOp.SET


def apply_alter(overrides: Mapping[str, str], changes: Iterable[ConfigChange | tuple],
                incremental: bool, broker: BrokerConfig | None = None) -> dict[str, str]:
    """The topic's new overrides after `changes`, validated (see
    `validate_topic_overrides`; pass `broker` for its cross-key checks).

    AlterConfigs (`incremental=False`) replaces all overrides with the SETs
    given; a null value leaves the key unset. IncrementalAlterConfigs changes
    only the keys named: SET (value required), DELETE (back to inherited),
    APPEND / SUBTRACT (LIST keys only: add the elements not yet present /
    remove those present, starting from the override or else the topic key's
    default, as Kafka does). A key named twice is refused. Nothing is changed
    in place; on error the caller's overrides stand. `changes` may be plain
    `(name, value[, op])` tuples; an op id Kafka does not define is refused.
    """
    changes = [_change(*c) for c in changes]
    names = [c.name for c in changes]
    for c in changes:
        if names.count(c.name) > 1:
            raise InvalidConfigError(c.name, c.value, "named more than once in one request")
        if c.name not in TOPIC_KEYS:
            raise InvalidConfigError(c.name, c.value, "unknown topic config")
    if not incremental:
        for c in changes:
            if c.op is not AlterOp.SET:
                raise InvalidConfigError(c.name, c.value, f"{c.op.name} needs IncrementalAlterConfigs")
        replacement = {c.name: c.value for c in changes if c.value is not None}
        return validate_topic_overrides(replacement, broker)
    result = dict(overrides)
    for c in changes:
        if c.op is AlterOp.DELETE:
            result.pop(c.name, None)
        elif c.value is None:
            raise InvalidConfigError(c.name, None, f"{c.op.name} needs a value")
        elif c.op is AlterOp.SET:
            result[c.name] = c.value
        else:
            result[c.name] = _apply_list_op(c, result.get(c.name))
    return validate_topic_overrides(result, broker)


def _change(name: str, value: str | None, op: int = AlterOp.SET) -> ConfigChange:
    try:
        return ConfigChange(name, value, AlterOp(op))
    except ValueError:
        raise InvalidConfigError(name, value, f"unknown config operation {op}") from None


def _apply_list_op(change: ConfigChange, override: str | None) -> str:
    """APPEND or SUBTRACT `change.value`'s elements to or from the override, or
    the key's default when there is none."""
    key = TOPIC_KEYS[change.name]
    if key.type is not ConfigType.LIST:
        raise InvalidConfigError(change.name, change.value,
                                 f"{change.op.name} applies only to list configs")
    current = list(key.parse(override) if override is not None else key.default)
    try:
        given = parse_value(ConfigType.LIST, change.value)
    except ValueError as e:
        raise InvalidConfigError(change.name, change.value, str(e)) from None
    if change.op is AlterOp.APPEND:
        current += [v for v in given if v not in current]
    else:
        current = [v for v in current if v not in given]
    return format_value(ConfigType.LIST, current)
