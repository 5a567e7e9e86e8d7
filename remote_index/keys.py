"""The object-key layout of the remote tier: the one place it is written down.

Keys are relative to the bucket-level prefix (the store prepends that itself)::

    [<hash>/]<topic>-<topic_id>/<partition>/manifest/<version:020d>.json
        versioned partition manifests (manifest.py); never overwritten
    [<hash>/]<topic>-<topic_id>/<partition>/manifest/latest
        pointer to the newest version (text: the version number), written only
        on stores without create-only puts; a hint, readers list manifest/
    [<hash>/]<topic>-<topic_id>/<partition>/segments/<base_offset:020d>-<segment_id>.log
        a segment's data, cut into chunks, then its meta: the chunk index plus
        its .index and .timeindex bytes (segment_format.py)
    [<hash>/]<topic>-<topic_id>/<partition>/segments/<base_offset:020d>-<segment_id>.meta
        the meta as an object of its own, for segments uploaded before the
        meta became the data object's trailer (no longer written)
    topics/<topic>-<topic_id>.json
        topic description (name, id, partition count, configs, key layout) for
        recovering a topic from the bucket alone

`<topic_id>` is the canonical hyphenated UUID (36 characters, so a key parser
takes it from the end: topic names may contain '-'). `<segment_id>` is a fresh
UUID per upload attempt, so a retried upload never overwrites an object a
manifest may already name. Zero-padded offsets and versions make the store's
lexicographic listing numeric order.

`<hash>` is present when the layout is hashed (`hashed=True`): the first four
hex digits of sha256("<topic_id>/<partition>"). S3 partitions request load by
key prefix, so spreading partitions over 65536 prefixes avoids one hot prefix
when a busy topic uploads many partitions at once. Whether a topic's keys are
hashed is recorded in its topic description: readers must use the same layout
the writer used.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import NamedTuple

TOPICS_PREFIX = "topics/"
MANIFEST_DIR = "manifest/"
SEGMENTS_DIR = "segments/"
LATEST_NAME = "latest"
DATA_SUFFIX = ".log"
META_SUFFIX = ".meta"
HASH_HEX_DIGITS = 4

_MANIFEST_NAME = re.compile(r"^(\d{20})\.json$")
_SEGMENT_NAME = re.compile(r"^(\d{20})-([A-Za-z0-9_-]+)\.(log|meta)$")
_TOPIC_DESCRIPTION = re.compile(r"^topics/(.+)-([0-9a-f-]{36})\.json$")


def topic_id_text(topic_id: uuid.UUID | str) -> str:
    """The canonical key form of a topic id (raises ValueError for a non-UUID)."""
    return str(topic_id if isinstance(topic_id, uuid.UUID) else uuid.UUID(str(topic_id)))


def topic_dir_name(topic: str, topic_id: uuid.UUID | str) -> str:
    if not topic or "/" in topic:
        raise ValueError(f"topic name {topic!r} cannot be part of an object key")
    return f"{topic}-{topic_id_text(topic_id)}"


def partition_hash(topic_id: uuid.UUID | str, partition: int) -> str:
    digest = hashlib.sha256(f"{topic_id_text(topic_id)}/{partition}".encode()).hexdigest()
    return digest[:HASH_HEX_DIGITS]


def topic_description_key(topic: str, topic_id: uuid.UUID | str) -> str:
    return f"{TOPICS_PREFIX}{topic_dir_name(topic, topic_id)}.json"


def parse_topic_description_key(key: str) -> tuple[str, str] | None:
    """(topic, topic_id) from a `topics/<topic>-<topic_id>.json` key, else None."""
    match = _TOPIC_DESCRIPTION.match(key)
    if match is None:
        return None
    try:
        return match.group(1), topic_id_text(match.group(2))
    except ValueError:
        return None


class SegmentKey(NamedTuple):
    base_offset: int
    segment_id: str
    kind: str  # "log" (data) or "meta"


def parse_segment_key(key: str) -> SegmentKey | None:
    """Split a segment object key (full key or bare name) into its parts.

    Returns None for a key that is not a segment object, so garbage collection
    can skip strangers instead of failing on them.
    """
    match = _SEGMENT_NAME.match(key.rsplit("/", 1)[-1])
    if match is None:
        return None
    return SegmentKey(int(match.group(1)), match.group(2), match.group(3))


def parse_manifest_key(key: str) -> int | None:
    """The version of a `manifest/<version:020d>.json` key (full or bare), else None."""
    match = _MANIFEST_NAME.match(key.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


class PartitionKeys:
    """Every key of one partition's remote data. Immutable; safe to share."""

    __slots__ = ("hashed", "partition", "partition_prefix", "topic", "topic_id")

    def __init__(self, topic: str, topic_id: uuid.UUID | str, partition: int, hashed: bool = False):
        if partition < 0:
            raise ValueError(f"partition {partition} is negative")
        self.topic = topic
        self.topic_id = topic_id_text(topic_id)
        self.partition = partition
        self.hashed = hashed
        hash_dir = f"{partition_hash(self.topic_id, partition)}/" if hashed else ""
        self.partition_prefix = f"{hash_dir}{topic_dir_name(topic, self.topic_id)}/{partition}/"

    def __repr__(self) -> str:
        return f"PartitionKeys({self.partition_prefix!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, PartitionKeys) and self.partition_prefix == other.partition_prefix

    def __hash__(self) -> int:
        return hash(self.partition_prefix)

    @property
    def manifest_prefix(self) -> str:
        return self.partition_prefix + MANIFEST_DIR

    @property
    def latest_key(self) -> str:
        return self.manifest_prefix + LATEST_NAME

    def manifest_key(self, version: int) -> str:
        if version < 0:
            raise ValueError(f"manifest version {version} is negative")
        return f"{self.manifest_prefix}{version:020d}.json"

    @property
    def segments_prefix(self) -> str:
        return self.partition_prefix + SEGMENTS_DIR

    def segment_data_key(self, base_offset: int, segment_id: str) -> str:
        return self._segment_key(base_offset, segment_id, DATA_SUFFIX)

    def segment_meta_key(self, base_offset: int, segment_id: str) -> str:
        return self._segment_key(base_offset, segment_id, META_SUFFIX)

    def _segment_key(self, base_offset: int, segment_id: str, suffix: str) -> str:
        if base_offset < 0:
            raise ValueError(f"base offset {base_offset} is negative")
        name = f"{base_offset:020d}-{segment_id}{suffix}"
        if _SEGMENT_NAME.match(name) is None:
            raise ValueError(f"segment id {segment_id!r} cannot be part of an object key")
        return self.segments_prefix + name

    @property
    def topic_description_key(self) -> str:
        return topic_description_key(self.topic, self.topic_id)
