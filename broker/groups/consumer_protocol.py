"""The embedded "consumer" protocol: what Kafka consumers put in group metadata.

The coordinator never interprets assignments: it passes the leader's bytes
through. These parsers exist for the few places that must look inside:
OffsetDelete (is the group consuming this topic?), offset expiry of a stable
group, and the CLI's describe (which partitions a member owns). A parse error
is a `DecodeError`; callers treat unparseable metadata as "unknown", never as
empty.

Layouts (classic, non-flexible encoding; int16 version first):

    ConsumerProtocolSubscription v0-3:
        version int16
        topics [string]                                   (int32 count, int16-length strings)
        user_data nullable bytes
        v1+: owned_partitions [topic string, partitions [int32]]
        v2+: generation_id int32
        v3+: rack_id nullable string
    ConsumerProtocolAssignment v0-3:
        version int16
        assigned_partitions [topic string, partitions [int32]]
        user_data nullable bytes

A version above 3 is read as version 3 (newer fields are appended, so the prefix
parses), as Kafka's own readers do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..protocol.primitives import DecodeError, Reader, Writer

PROTOCOL_TYPE = "consumer"
LATEST_VERSION = 3


@dataclass
class Subscription:
    version: int
    topics: list[str]
    user_data: bytes | None = None
    owned_partitions: dict[str, list[int]] = field(default_factory=dict)
    generation_id: int = -1
    rack_id: str | None = None


@dataclass
class Assignment:
    version: int
    partitions: dict[str, list[int]]
    user_data: bytes | None = None


def _topic_partitions(r: Reader) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for _ in range(r.array_length(False, False)):
        topic = r.string(False)
        out.setdefault(topic, []).extend(r.int32() for _ in range(r.array_length(False, False)))
    return out


def _version(r: Reader) -> int:
    version = r.int16()
    if version < 0:
        raise DecodeError(f"negative consumer protocol version {version}")
    return version


def parse_subscription(data: bytes | memoryview) -> Subscription:
    r = Reader(data)
    version = _version(r)
    topics = [r.string(False) for _ in range(r.array_length(False, False))]
    user_data = r.bytes_(True)
    sub = Subscription(version, topics, bytes(user_data) if user_data is not None else None)
    # Kafka marks the later fields "ignorable": some clients declare a version but
    # stop early, so a missing tail is tolerated.
    if version >= 1 and r.remaining():
        sub.owned_partitions = _topic_partitions(r)
    if version >= 2 and r.remaining():
        sub.generation_id = r.int32()
    if version >= 3 and r.remaining():
        sub.rack_id = r.string(True)
    return sub


def parse_assignment(data: bytes | memoryview) -> Assignment:
    r = Reader(data)
    version = _version(r)
    partitions = _topic_partitions(r)
    user_data = r.bytes_(True) if r.remaining() else None
    return Assignment(version, partitions, bytes(user_data) if user_data is not None else None)


def subscribed_topics(data: bytes | memoryview) -> set[str] | None:
    """The topics a member subscribes to, or None when the metadata does not parse."""
    try:
        return set(parse_subscription(data).topics)
    except DecodeError:
        return None


def _write_topic_partitions(w: Writer, partitions: dict[str, list[int]]) -> None:
    w.array_length(len(partitions), False)
    for topic, indexes in partitions.items():
        w.string(topic, False)
        w.array_length(len(indexes), False)
        for index in indexes:
            w.int32(index)


def encode_subscription(sub: Subscription) -> bytes:
    w = Writer()
    w.int16(sub.version)
    w.array_length(len(sub.topics), False)
    for topic in sub.topics:
        w.string(topic, False)
    w.bytes_(sub.user_data, False)
    if sub.version >= 1:
        _write_topic_partitions(w, sub.owned_partitions)
    if sub.version >= 2:
        w.int32(sub.generation_id)
    if sub.version >= 3:
        w.string(sub.rack_id, False)
    return b"".join(bytes(p) for p in w.finish())


def encode_assignment(assignment: Assignment) -> bytes:
    w = Writer()
    w.int16(assignment.version)
    _write_topic_partitions(w, assignment.partitions)
    w.bytes_(assignment.user_data, False)
    return b"".join(bytes(p) for p in w.finish())
