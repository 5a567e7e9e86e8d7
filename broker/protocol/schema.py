"""Message schemas declared as data, and the one codec that reads and writes them.

A schema is a list of `Field`s. Each field says in which versions it exists, in
which versions it may be null, and (for tagged fields) its tag. Whether strings,
bytes and arrays use the compact encoding, and whether structs carry a tagged-field
section, follows from the message's flexible versions, exactly as Kafka's own
message generator decides it. The definitions live in `broker.protocol.messages`.

Decoded values are `Struct`s (dicts with attribute access). Encoding takes any
mapping; a field that is missing gets its default, and a tagged field equal to its
default is left out of the tagged section.
"""

from __future__ import annotations

import abc
import uuid
from dataclasses import dataclass
from typing import Any

from .primitives import DecodeError, Reader, Writer, ZERO_UUID


class Struct(dict):
    """A decoded message or sub-structure; `s.name` reads `s["name"]`."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


@dataclass(frozen=True)
class Versions:
    """An inclusive version range; `Versions.parse("3+")`, `"0-4"`, `"none"`."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str | None) -> "Versions":
        if text is None or text == "none":
            return cls(1, 0)  # empty
        if text.endswith("+"):
            return cls(int(text[:-1]), 1 << 15)
        if "-" in text:
            low, high = text.split("-")
            return cls(int(low), int(high))
        return cls(int(text), int(text))

    def __contains__(self, version: int) -> bool:
        return self.low <= version <= self.high


class Type(abc.ABC):
    """A scalar wire type. `read`/`write` take whether the version is flexible."""

    name = "?"
    default: Any = None

    @abc.abstractmethod
    def read(self, r: Reader, flexible: bool, nullable: bool): ...

    @abc.abstractmethod
    def write(self, w: Writer, value, flexible: bool, nullable: bool) -> None: ...

    def __repr__(self) -> str:
        return self.name


class _Fixed(Type):
    def __init__(self, name: str, default, reader: str):
        self.name = name
        self.default = default
        self._method = reader

    def read(self, r, flexible, nullable):
        return getattr(r, self._method)()

    def write(self, w, value, flexible, nullable):
        getattr(w, self._method)(value)


class _Uuid(Type):
    name = "uuid"
    default = ZERO_UUID

    def read(self, r, flexible, nullable):
        return r.uuid()

    def write(self, w, value, flexible, nullable):
        w.uuid(value)


class _String(Type):
    name = "string"
    default = ""

    def read(self, r, flexible, nullable):
        return r.compact_string(nullable) if flexible else r.string(nullable)

    def write(self, w, value, flexible, nullable):
        if value is None and not nullable:
            raise ValueError("null string in a non-nullable field")
        w.string(value, flexible)


class _Bytes(Type):
    """Opaque bytes; `records` is the same encoding, kept apart for readability."""

    def __init__(self, name: str):
        self.name = name
        self.default = b""

    def read(self, r, flexible, nullable):
        return r.compact_bytes(nullable) if flexible else r.bytes_(nullable)

    def write(self, w, value, flexible, nullable):
        if value is None and not nullable:
            raise ValueError("null bytes in a non-nullable field")
        w.bytes_(value, flexible)


INT8 = _Fixed("int8", 0, "int8")
INT16 = _Fixed("int16", 0, "int16")
UINT16 = _Fixed("uint16", 0, "uint16")
INT32 = _Fixed("int32", 0, "int32")
UINT32 = _Fixed("uint32", 0, "uint32")
INT64 = _Fixed("int64", 0, "int64")
FLOAT64 = _Fixed("float64", 0.0, "float64")
BOOL = _Fixed("bool", False, "boolean")
UUID = _Uuid()
STRING = _String()
BYTES = _Bytes("bytes")
RECORDS = _Bytes("records")


class _NullDefault:
    """The marker for Kafka's `"default": "null"`: absent from a version reads as None."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL"


NULL = _NullDefault()


@dataclass(frozen=True)
class Field:
    """One field of a schema.

    `type` is a scalar `Type`, a `list[Field]` (a struct), or `Array(...)`.
    `default` overrides the type's default (used when encoding a missing value, and
    as the decoded value in versions without the field); `NULL` makes it None.
    """

    name: str
    type: Any
    versions: Versions
    nullable: Versions
    tag: int | None
    default: Any

    def present_in(self, version: int) -> bool:
        return version in self.versions


def F(name: str, type_, versions: str = "0+", nullable: str | None = None,
      tag: int | None = None, default: Any = None) -> Field:
    """Declare a field. For a tagged field, `versions` are its tagged versions."""
    return Field(name, type_, Versions.parse(versions), Versions.parse(nullable), tag, default)


@dataclass(frozen=True)
class Array:
    """An array of a scalar type or of a struct (a list of fields)."""

    element: Any


def _default_for(f: Field, version: int):
    if f.default is NULL:
        return None
    if f.default is not None:
        return f.default
    if version in f.nullable:
        return None
    if isinstance(f.type, Array):
        return []
    if isinstance(f.type, list):
        return None
    return f.type.default


def _read_value(r: Reader, type_, version: int, flexible: bool, nullable: bool):
    if isinstance(type_, Array):
        n = r.array_length(flexible, nullable)
        if n is None:
            return None
        element = type_.element
        if isinstance(element, list):
            return [read_struct(r, element, version, flexible) for _ in range(n)]
        return [element.read(r, flexible, False) for _ in range(n)]
    if isinstance(type_, list):
        if nullable and r.int8() < 0:
            return None
        return read_struct(r, type_, version, flexible)
    return type_.read(r, flexible, nullable)


def read_struct(r: Reader, fields: list[Field], version: int, flexible: bool) -> Struct:
    out = Struct()
    tagged = None
    for f in fields:
        if f.tag is not None:
            if tagged is None:
                tagged = {}
            tagged[f.tag] = f
            continue
        if f.present_in(version):
            out[f.name] = _read_value(r, f.type, version, flexible, version in f.nullable)
        else:
            out[f.name] = _default_for(f, version)
    if tagged:
        for f in tagged.values():
            out[f.name] = _default_for(f, version)
    if flexible:
        for _ in range(r.uvarint()):
            tag = r.uvarint()
            size = r.uvarint()
            f = tagged.get(tag) if tagged else None
            if f is not None and f.present_in(version):
                sub = Reader(r.buf, r.pos, r.pos + size)
                r.raw(size)
                out[f.name] = _read_value(sub, f.type, version, flexible, version in f.nullable)
            else:
                r.raw(size)  # unknown tags are skipped, as the protocol requires
    return out


def _write_value(w: Writer, type_, value, version: int, flexible: bool, nullable: bool) -> None:
    if isinstance(type_, Array):
        if value is None:
            if not nullable:
                raise ValueError("null array in a non-nullable field")
            w.array_length(None, flexible)
            return
        w.array_length(len(value), flexible)
        element = type_.element
        if isinstance(element, list):
            for item in value:
                write_struct(w, element, item, version, flexible)
        else:
            for item in value:
                element.write(w, item, flexible, False)
        return
    if isinstance(type_, list):
        # A nullable struct is preceded by int8 -1 (null) or 1 (present).
        if nullable:
            w.int8(-1 if value is None else 1)
            if value is None:
                return
        write_struct(w, type_, value if value is not None else {}, version, flexible)
        return
    type_.write(w, value, flexible, nullable)


def write_struct(w: Writer, fields: list[Field], value, version: int, flexible: bool) -> None:
    get = value.get if isinstance(value, dict) else (lambda k, d=None: getattr(value, k, d))
    tagged = []
    for f in fields:
        if not f.present_in(version):
            continue
        if f.tag is not None:
            tagged.append(f)
            continue
        v = get(f.name, None)
        if v is None:
            v = _default_for(f, version)
        _write_value(w, f.type, v, version, flexible, version in f.nullable)
    if not flexible:
        return
    present = []
    for f in sorted(tagged, key=lambda f: f.tag):
        v = get(f.name, None)
        if v is None or v == _default_for(f, version):
            continue
        present.append((f, v))
    w.uvarint(len(present))
    for f, v in present:
        sub = Writer()
        _write_value(sub, f.type, v, version, flexible, version in f.nullable)
        data = b"".join(bytes(p) for p in sub.finish())
        w.uvarint(f.tag)
        w.uvarint(len(data))
        w.raw(data)


@dataclass(frozen=True)
class ApiSchema:
    """One Kafka API: its key, the versions we can parse, and its two bodies.

    `valid` is every version the schema describes; `supported` (a subset) is what
    ApiVersions advertises. A request inside `valid` but outside `supported` is
    decoded and answered with UNSUPPORTED_VERSION by its handler's error response.
    """

    key: int
    name: str
    valid: Versions
    flexible: Versions
    request: list[Field]
    response: list[Field]
    supported: Versions | None = None

    @property
    def advertised(self) -> Versions:
        return self.supported or self.valid

    def is_flexible(self, version: int) -> bool:
        return version in self.flexible

    def request_header_version(self, version: int) -> int:
        return 2 if self.is_flexible(version) else 1

    def response_header_version(self, version: int) -> int:
        # ApiVersions answers with header v0 always, so a client that sent a
        # version we do not know can still read our error and supported versions.
        if self.key == 18:
            return 0
        return 1 if self.is_flexible(version) else 0

    def decode_request(self, r: Reader, version: int) -> Struct:
        if version not in self.valid:
            raise DecodeError(f"{self.name} v{version} is outside the known versions")
        return read_struct(r, self.request, version, self.is_flexible(version))

    def encode_response(self, w: Writer, body, version: int) -> None:
        write_struct(w, self.response, body, version, self.is_flexible(version))

    def decode_response(self, r: Reader, version: int) -> Struct:
        """Used by tests and the CLI's own client."""
        return read_struct(r, self.response, version, self.is_flexible(version))

    def encode_request(self, w: Writer, body, version: int) -> None:
        write_struct(w, self.request, body, version, self.is_flexible(version))


def api(key: int, name: str, valid: str, flexible: str, request: list[Field],
        response: list[Field], supported: str | None = None) -> ApiSchema:
    return ApiSchema(key, name, Versions.parse(valid), Versions.parse(flexible), request, response,
                     Versions.parse(supported) if supported else None)


__all__ = [
    "Array", "ApiSchema", "BOOL", "BYTES", "F", "FLOAT64", "Field", "INT16", "INT32", "INT64",
    "INT8", "NULL", "RECORDS", "STRING", "Struct", "UINT16", "UINT32", "UUID", "Versions", "api",
    "read_struct", "write_struct", "uuid",
]
