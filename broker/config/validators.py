"""Validators: each looks at a parsed value and returns the reason it is not
acceptable, or None. Reasons are phrased to follow "<key>: <value> is not valid: ".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .keys import Validator


@dataclass(frozen=True)
class AtLeast:
    """A number >= `minimum` (Kafka's Range.atLeast)."""

    minimum: int | float

    def __call__(self, value: int | float) -> str | None:
        return None if value >= self.minimum else f"must be >= {self.minimum}"


@dataclass(frozen=True)
class Between:
    """A number in [`low`, `high`] (Kafka's Range.between)."""

    low: int | float
    high: int | float

    def __call__(self, value: int | float) -> str | None:
        if self.low <= value <= self.high:
            return None
        return f"must be between {self.low} and {self.high}"


@dataclass(frozen=True)
class OneOf:
    """A string among `choices`, case-sensitive (Kafka's ValidString.in).

    `unsupported` maps values Kafka knows but tierbroker does not implement to the
    reason they are refused, so an operator learns why rather than "not one of".
    """

    choices: tuple[str, ...]
    unsupported: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, value: str) -> str | None:
        if value in self.choices:
            return None
        if value in self.unsupported:
            return self.unsupported[value]
        return "must be one of: " + ", ".join(self.choices)


@dataclass(frozen=True)
class ListOf:
    """A list with no element repeated, each passing `item` if given (Kafka's
    ValidList); empty only if `allow_empty`."""

    item: Validator | None = None
    allow_empty: bool = True

    def __call__(self, values: tuple[Any, ...]) -> str | None:
        if not values and not self.allow_empty:
            return "must not be empty"
        seen = set()
        for v in values:
            if v in seen:
                return f"{v} appears more than once"
            seen.add(v)
            reason = self.item(v) if self.item is not None else None
            if reason is not None:
                return f"{v}: {reason}"
        return None
