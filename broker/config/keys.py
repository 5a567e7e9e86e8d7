"""The shape of one configuration key, and how its values travel between the
string an operator writes and the typed value the code uses.

Invariants:
- `ConfigDef.parse` either returns a value the key's validator accepts or raises
  `InvalidConfigError` naming the key; nothing invalid gets past it.
- Round trip: for any string `s` that `d.parse` accepts,
  `d.parse(d.format(d.parse(s))) == d.parse(s)`.
- `None` is "not set here, inherit" and formats to `None`; no type uses a
  magic number for it.

Parsing follows Kafka's `ConfigDef`: surrounding whitespace is trimmed;
booleans are `true`/`false` in any case; INT/SHORT/LONG are decimal and must fit
Java's 32/16/64-bit range; LIST is comma-separated with whitespace around the
commas ignored, and parses to a tuple so that shared values cannot be mutated.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

#: A validator looks at a parsed (typed) value and returns why it is not
#: acceptable, or None when it is.
Validator = Callable[[Any], "str | None"]

HIDDEN = "[hidden]"


class ConfigType(enum.IntEnum):
    """A key's type; the numbers are DescribeConfigs' ConfigType ids."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


@dataclass(frozen=True)
class Secret:
    """A PASSWORD value. Its repr never shows the secret, so it is safe in logs."""

    value: str

    def __repr__(self) -> str:
        return f"Secret({HIDDEN})"

    __str__ = __repr__


class InvalidConfigError(ValueError):
    """A configuration value was rejected.

    `key` names the configuration key, `value` the offending value as given
    (None when absent), `reason` why it was rejected. The message reads
    "retention.ms: -5 is not valid: must be >= -1"; a sensitive value is shown
    as "[hidden]".
    """

    def __init__(self, key: str, value: str | None, reason: str, *, sensitive: bool = False):
        self.key = key
        self.value = value
        self.reason = reason
        shown = HIDDEN if sensitive else ("null" if value is None else value or '""')
        super().__init__(f"{key}: {shown} is not valid: {reason}")


_INT_BITS = {ConfigType.SHORT: 16, ConfigType.INT: 32, ConfigType.LONG: 64}
_DECIMAL = re.compile(r"[+-]?[0-9]+")
_LIST_SEPARATOR = re.compile(r"\s*,\s*")
_JAVA_DOUBLE_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "+Infinity": math.inf}


def parse_value(type_: ConfigType, text: str) -> Any:
    """Parse `text` as a value of `type_`; raise ValueError(reason) if it is not one."""
    trimmed = text.strip()
    if type_ is ConfigType.BOOLEAN:
        lowered = trimmed.lower()
        if lowered not in ("true", "false"):
            raise ValueError("expected true or false")
        return lowered == "true"
    if type_ in _INT_BITS:
        bits = _INT_BITS[type_]
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if not _DECIMAL.fullmatch(trimmed):
            raise ValueError(f"expected a whole number ({type_.name.lower()})")
        number = int(trimmed)
        if not low <= number <= high:
            raise ValueError(f"out of range for {type_.name.lower()} ({low} to {high})")
        return number
    if type_ is ConfigType.DOUBLE:
        if trimmed in _JAVA_DOUBLE_WORDS:
            return _JAVA_DOUBLE_WORDS[trimmed]
        if "_" in trimmed:
            raise ValueError("expected a number (double)")
        try:
            return float(trimmed)
        except ValueError:
            raise ValueError("expected a number (double)") from None
    if type_ is ConfigType.LIST:
        if not trimmed:
            return ()
        items = tuple(_LIST_SEPARATOR.split(trimmed))
        if "" in items:
            raise ValueError("empty element in comma-separated list")
        return items
    if type_ is ConfigType.PASSWORD:
        return Secret(trimmed)
    return trimmed  # STRING, CLASS


def format_value(type_: ConfigType, value: Any) -> str | None:
    """The string Kafka shows for a typed value; None stays None (unset)."""
    if value is None:
        return None
    if type_ is ConfigType.BOOLEAN:
        return "true" if value else "false"
    if type_ is ConfigType.LIST:
        return ",".join(value)
    if type_ is ConfigType.PASSWORD:
        return value.value
    if type_ is ConfigType.DOUBLE:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(float(value))
    return str(value)


@dataclass(frozen=True)
class ConfigDef:
    """One configuration key: name, type, default, doc and validator.

    `synonym` (topic keys only) names the broker key whose effective value is
    the topic's default, e.g. retention.ms <- log.retention.ms. `read_only`
    means the key cannot be altered while the broker runs. PASSWORD keys must
    be `sensitive`: their values are never shown. The default, when not None,
    satisfies the validator (checked at definition time).
    """

    name: str
    type: ConfigType
    default: Any
    doc: str
    validator: Validator | None = None
    synonym: str | None = None
    sensitive: bool = False
    read_only: bool = False

    def __post_init__(self) -> None:
        if self.type is ConfigType.PASSWORD and not self.sensitive:
            raise ValueError(f"{self.name}: a PASSWORD key must be sensitive")
        if self.default is not None:
            self.validate(self.default)

    def parse(self, text: str) -> Any:
        """The typed, validated value of `text`; InvalidConfigError if it has none."""
        try:
            value = parse_value(self.type, text)
        except ValueError as e:
            raise InvalidConfigError(self.name, text, str(e), sensitive=self.sensitive) from None
        return self.validate(value, text)

    def validate(self, value: Any, text: str | None = None) -> Any:
        """Return `value` if the validator accepts it, else raise InvalidConfigError."""
        reason = self.validator(value) if self.validator is not None and value is not None else None
        if reason is not None:
            shown = text if text is not None else self.format(value)
            raise InvalidConfigError(self.name, shown, reason, sensitive=self.sensitive)
        return value

    def format(self, value: Any) -> str | None:
        """The string Kafka shows for `value` (None for unset)."""
        return format_value(self.type, value)

    def normalize(self, text: str) -> str:
        """`text` in canonical form, e.g. " TRUE " -> "true", "a , b" -> "a,b"."""
        return self.format(self.parse(text))


def key_table(*defs: ConfigDef) -> Mapping[str, ConfigDef]:
    """A read-only name -> ConfigDef table; a name defined twice is a bug."""
    table: dict[str, ConfigDef] = {}
    for d in defs:
        if d.name in table:
            raise ValueError(f"config key {d.name} defined twice")
        table[d.name] = d
    return MappingProxyType(table)
