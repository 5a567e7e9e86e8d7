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
from collections.abc import Callable
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
    """A scalar wire type. `reader`/`writer` return its codec for one encoding:
    flexible (compact) or not, nullable or not."""

    name = "?"
    default: Any = None

    @abc.abstractmethod
    def reader(self, flexible: bool, nullable: bool) -> Callable[[Reader], Any]: ...

    @abc.abstractmethod
    def writer(self, flexible: bool, nullable: bool) -> Callable[[Writer, Any], None]: ...

    def __repr__(self) -> str:
        return self.name


class _Fixed(Type):
    def __init__(self, name: str, default, method: str):
        self.name = name
        self.default = default
        self._method = method

    def reader(self, flexible, nullable):
        return getattr(Reader, self._method)

    def writer(self, flexible, nullable):
        return getattr(Writer, self._method)


class _Uuid(Type):
    name = "uuid"
    default = ZERO_UUID

    def reader(self, flexible, nullable):
        return Reader.uuid

    def writer(self, flexible, nullable):
        return Writer.uuid


class _LengthPrefixed(Type):
    """Strings and bytes: a length (int16 / int32, or a compact uvarint in
    flexible versions), then the data; a null is a length of -1."""

    what = "?"
    read_plain = read_compact = write_value = None  # set as staticmethods by each kind

    def reader(self, flexible, nullable):
        read = self.read_compact if flexible else self.read_plain
        return lambda r: read(r, nullable)

    def writer(self, flexible, nullable):
        write_value, what = self.write_value, self.what

        def write(w, value):
            if value is None and not nullable:
                raise ValueError(f"null {what} in a non-nullable field")
            write_value(w, value, flexible)
        return write


class _String(_LengthPrefixed):
    name = "string"
    default = ""
    what = "string"
    read_plain = staticmethod(Reader.string)
    read_compact = staticmethod(Reader.compact_string)
    write_value = staticmethod(Writer.string)


class _Bytes(_LengthPrefixed):
    """Opaque bytes; `records` is the same encoding, kept apart for readability."""

    what = "bytes"
    read_plain = staticmethod(Reader.bytes_)
    read_compact = staticmethod(Reader.compact_bytes)
    write_value = staticmethod(Writer.bytes_)

    def __init__(self, name: str):
        self.name = name
        self.default = b""


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


# -- compiled codecs ----------------------------------------------------------------
#
# What decoding or encoding a field list at one version does (which fields are
# present, each one's reader or writer, defaults) is decided once, on first use,
# and kept: a Produce request is decoded about a thousand times a second.
# Keyed by the field list's id; the plan holds the list, so the id stays its own.


@dataclass(frozen=True)
class _FieldCodec:
    name: str
    code: Callable | None  # reader or writer; None: the field is absent at this version
    default: Any
    fresh_list: bool  # the default is an empty list, a new one each time
    tag: int | None = None

    def default_value(self):
        return [] if self.fresh_list else self.default


@dataclass(frozen=True)
class _Plan:
    fields: list[Field]
    untagged: tuple[_FieldCodec, ...]
    tagged: tuple[_FieldCodec, ...]  # present at this version, by tag
    tagged_defaults: tuple[_FieldCodec, ...]  # every tagged field (read side only)


_READ_PLANS: dict[tuple[int, int, bool], _Plan] = {}
_WRITE_PLANS: dict[tuple[int, int, bool], _Plan] = {}


def _codec(f: Field, version: int, code) -> _FieldCodec:
    default = _default_for(f, version)
    fresh = isinstance(default, list) and not default and f.default is None
    return _FieldCodec(f.name, code, None if fresh else default, fresh, f.tag)


def _read_plan(fields: list[Field], version: int, flexible: bool) -> _Plan:
    key = (id(fields), version, flexible)
    plan = _READ_PLANS.get(key)
    if plan is None:
        untagged, tagged, tagged_defaults = [], [], []
        for f in fields:
            reader = _reader(f.type, version, flexible, version in f.nullable) if f.present_in(version) else None
            if f.tag is None:
                untagged.append(_codec(f, version, reader))
            else:
                tagged_defaults.append(_codec(f, version, None))
                if reader is not None:
                    tagged.append(_codec(f, version, reader))
        plan = _READ_PLANS[key] = _Plan(fields, tuple(untagged), tuple(tagged), tuple(tagged_defaults))
    return plan


def _write_plan(fields: list[Field], version: int, flexible: bool) -> _Plan:
    key = (id(fields), version, flexible)
    plan = _WRITE_PLANS.get(key)
    if plan is None:
        untagged, tagged = [], []
        for f in fields:
            if not f.present_in(version):
                continue
            codec = _codec(f, version, _writer(f.type, version, flexible, version in f.nullable))
            (untagged if f.tag is None else tagged).append(codec)
        tagged.sort(key=lambda c: c.tag)
        plan = _WRITE_PLANS[key] = _Plan(fields, tuple(untagged), tuple(tagged), ())
    return plan


def _reader(type_, version: int, flexible: bool, nullable: bool) -> Callable[[Reader], Any]:
    if isinstance(type_, Array):
        element = type_.element
        read_element = (_struct_reader(element, version, flexible) if isinstance(element, list)
                        else element.reader(flexible, False))

        def read_array(r):
            n = r.array_length(flexible, nullable)
            if n is None:
                return None
            return [read_element(r) for _ in range(n)]
        return read_array
    if isinstance(type_, list):
        read_struct_value = _struct_reader(type_, version, flexible)
        if not nullable:
            return read_struct_value
        return lambda r: None if r.int8() < 0 else read_struct_value(r)
    return type_.reader(flexible, nullable)


def _struct_reader(fields: list[Field], version: int, flexible: bool) -> Callable[[Reader], Struct]:
    return lambda r: read_struct(r, fields, version, flexible)


def _writer(type_, version: int, flexible: bool, nullable: bool) -> Callable[[Writer, Any], None]:
    if isinstance(type_, Array):
        element = type_.element
        write_element = (_struct_writer(element, version, flexible) if isinstance(element, list)
                         else element.writer(flexible, False))

        def write_array(w, value):
            if value is None:
                if not nullable:
                    raise ValueError("null array in a non-nullable field")
                w.array_length(None, flexible)
                return
            w.array_length(len(value), flexible)
            for item in value:
                write_element(w, item)
        return write_array
    if isinstance(type_, list):
        write_struct_value = _struct_writer(type_, version, flexible)

        def write_struct_field(w, value):
            # A nullable struct is preceded by int8 -1 (null) or 1 (present).
            if nullable:
                w.int8(-1 if value is None else 1)
                if value is None:
                    return
            write_struct_value(w, value if value is not None else {})
        return write_struct_field
    return type_.writer(flexible, nullable)


def _struct_writer(fields: list[Field], version: int, flexible: bool) -> Callable[[Writer, Any], None]:
    return lambda w, value: write_struct(w, fields, value, version, flexible)


def read_struct(r: Reader, fields: list[Field], version: int, flexible: bool) -> Struct:
    plan = _read_plan(fields, version, flexible)
    out = Struct()
    for c in plan.untagged:
        out[c.name] = c.code(r) if c.code is not None else c.default_value()
    for c in plan.tagged_defaults:
        out[c.name] = c.default_value()
    if flexible:
        for _ in range(r.uvarint()):
            tag = r.uvarint()
            size = r.uvarint()
            c = next((c for c in plan.tagged if c.tag == tag), None)
            if c is not None:
                sub = Reader(r.buf, r.pos, r.pos + size)
                r.raw(size)
                out[c.name] = c.code(sub)
            else:
                r.raw(size)  # unknown tags are skipped, as the protocol requires
    return out


def write_struct(w: Writer, fields: list[Field], value, version: int, flexible: bool) -> None:
    plan = _write_plan(fields, version, flexible)
    get = value.get if isinstance(value, dict) else (lambda k, d=None: getattr(value, k, d))
    for c in plan.untagged:
        v = get(c.name, None)
        c.code(w, c.default_value() if v is None else v)
    if not flexible:
        return
    present = []
    for c in plan.tagged:
        v = get(c.name, None)
        if v is None or v == c.default_value():
            continue
        present.append((c, v))
    w.uvarint(len(present))
    for c, v in present:
        sub = Writer()
        c.code(sub, v)
        data = b"".join(bytes(p) for p in sub.finish())
        w.uvarint(c.tag)
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
