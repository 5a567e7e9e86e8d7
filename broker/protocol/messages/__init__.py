"""Every Kafka API this broker parses, keyed by API key.

One module per API, each defining `SCHEMA`. Field names are the snake_case form of
the names in Kafka's message definitions, so the reference documentation reads
across directly.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..schema import ApiSchema


def _load() -> dict[int, ApiSchema]:
    found: dict[int, ApiSchema] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        schema = getattr(module, "SCHEMA", None)
        if isinstance(schema, ApiSchema):
            if schema.key in found:
                raise RuntimeError(f"API key {schema.key} defined twice")
            found[schema.key] = schema
    return found


SCHEMAS: dict[int, ApiSchema] = _load()
BY_NAME: dict[str, ApiSchema] = {s.name: s for s in SCHEMAS.values()}
