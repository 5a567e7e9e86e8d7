"""Partition manifests: the truth about one partition's remote tier, kept in the bucket.

A manifest lists every remote segment of the partition that has objects (or may
have: COPY_STARTED) with its offsets, timestamps, sizes, object keys, checksums
and lifecycle state (segment_state.py), plus the remote tier's log start offset.
Only COPY_FINISHED segments are readable; the other states exist so that an
interrupted upload or delete leaves a record of the objects to clean up.

The chunk index is *not* in the manifest: it lives in each segment's meta
(segment_format.py), the trailer of its data object, which the manifest
locates (`object_bytes`, `meta_bytes`) and checks (CRC-32C). A manifest is
rewritten whole on every change, so it must stay small as segments accumulate:
a segment costs a few hundred bytes here instead of a row per chunk, and a cold
read fetches one segment's meta only when it needs it. Segments uploaded before
the meta became a trailer name a separate `.meta` object (`meta_key`) instead;
`read_segment_meta` reads either.

Storage (keys.py): every change writes a new version `manifest/<version:020d>.json`.
Versions strictly increase, by one per write except that a version number seen
in the bucket is never reused (after falling back past a corrupt version, the
next write skips its number). The version object is the commit point, and
`load` finds the newest one by listing `manifest/`:

- With conditional put (`supports_conditional_put`), a version is written
  create-only, so of two writers racing for version N exactly one succeeds; the
  other gets `ManifestConflict` with a freshly loaded cache and may re-apply its
  change. This is what makes the manifest safe against a stale second writer
  (a partition leader that has not noticed it was replaced). A commit is then
  one PUT.
- Without it, the version is written after a HEAD check and a plain put (a
  racing writer can still overwrite the same version: last writer wins, safe
  only with one writer per partition, which the broker guarantees locally), and
  then the `manifest/latest` pointer. The pointer is a hint: if it is lost
  (crash, failed put), listing still finds the newest version.

The last `keep_versions` versions are kept (rollback and forensics); older ones
are deleted in batches of `cleanup_batch`, one request per batch after a
successful commit, so cleanup costs a fraction of a request per commit. Each
document is sealed with a CRC-32C of its body; a version that fails it (or does
not parse, or names another partition) is reported with its key and `load`
falls back to the previous version.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from crc32c import crc32c

from .keys import (
    TOPICS_PREFIX,
    PartitionKeys,
    parse_manifest_key,
    parse_topic_description_key,
    topic_description_key,
    topic_id_text,
)
from .segment_format import COMPRESSIONS, SegmentMeta, decode_sealed_json, encode_sealed_json
from .segment_state import RemoteSegmentState, transition
from .store.base import ObjectNotFound, ObjectStore, PreconditionFailed, StoreError

logger = logging.getLogger("remote_index.manifest")

MANIFEST_FORMAT_VERSION = 1
TOPIC_FORMAT_VERSION = 1
DEFAULT_KEEP_VERSIONS = 3
DEFAULT_CLEANUP_BATCH = 8
_LOAD_ATTEMPTS = 3
NO_TIMESTAMP = -1

COPY_STARTED = RemoteSegmentState.COPY_STARTED
COPY_FINISHED = RemoteSegmentState.COPY_FINISHED
DELETE_FINISHED = RemoteSegmentState.DELETE_FINISHED


class ManifestError(Exception):
    """Base of the manifest errors."""


class CorruptManifestError(ManifestError):
    """A stored document that does not parse, fails its CRC-32C or breaks an invariant."""

    def __init__(self, reason: str, key: str | None = None):
        super().__init__(f"corrupt manifest {key or '<bytes>'}: {reason}")
        self.reason = reason
        self.key = key


class ManifestConflict(ManifestError):
    """Another writer committed this manifest version first; the cache has been reloaded."""

    def __init__(self, key: str, version: int):
        super().__init__(f"manifest version {version} already exists ({key}): another writer committed first")
        self.key = key
        self.version = version


class InvalidManifestChange(ManifestError, ValueError):
    """A change that would break the manifest's invariants (nothing was written)."""


class UnknownRemoteSegment(ManifestError, KeyError):
    def __init__(self, segment_id: str):
        super().__init__(f"no remote segment {segment_id} in the manifest")
        self.segment_id = segment_id

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True, slots=True)
class RemoteSegment:
    """One uploaded (or being uploaded, or being deleted) segment.

    `size_bytes` is the original segment size (what retention.bytes counts);
    `object_bytes` what the stored chunks take in the data object, which ends
    with the `meta_bytes` of the meta trailer. The object fields (object_bytes,
    meta_bytes, checksums, chunk_count) are None until COPY_FINISHED.
    `meta_key` is None except for segments uploaded with their meta as a
    separate object (before trailers), which have no `meta_bytes`.
    """

    segment_id: str
    base_offset: int
    last_offset: int
    size_bytes: int
    data_key: str
    meta_key: str | None = None
    state: RemoteSegmentState = COPY_STARTED
    state_changed_ms: int = 0
    first_timestamp: int = NO_TIMESTAMP
    max_timestamp: int = NO_TIMESTAMP
    compression: str = "none"
    object_bytes: int | None = None
    data_crc32c: int | None = None
    meta_crc32c: int | None = None
    chunk_count: int | None = None
    meta_bytes: int | None = None

    @classmethod
    def start_copy(
        cls,
        keys: PartitionKeys,
        *,
        base_offset: int,
        last_offset: int,
        size_bytes: int,
        now_ms: int,
        first_timestamp: int = NO_TIMESTAMP,
        max_timestamp: int = NO_TIMESTAMP,
        compression: str = "none",
        segment_id: str | None = None,
    ) -> RemoteSegment:
        """A COPY_STARTED entry under a fresh segment id (every upload attempt gets one)."""
        segment_id = segment_id or str(uuid.uuid4())
        return cls(
            segment_id=segment_id,
            base_offset=base_offset,
            last_offset=last_offset,
            size_bytes=size_bytes,
            data_key=keys.segment_data_key(base_offset, segment_id),
            state=COPY_STARTED,
            state_changed_ms=now_ms,
            first_timestamp=first_timestamp,
            max_timestamp=max_timestamp,
            compression=compression,
        )

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    @property
    def is_readable(self) -> bool:
        return self.state is COPY_FINISHED

    @property
    def object_keys(self) -> tuple[str, ...]:
        """Every object this segment has, or may have, in the bucket."""
        return (self.data_key,) if self.meta_key is None else (self.data_key, self.meta_key)

    def with_state(self, target: RemoteSegmentState, now_ms: int, **updates) -> RemoteSegment:
        """This segment moved to `target` (checked by segment_state.transition); a repeated
        transition with no updates returns the segment unchanged."""
        transition(self.state, target, self.segment_id)
        if target is self.state and not updates:
            return self
        return replace(self, state=target, state_changed_ms=now_ms, **updates)

    def finished(self, meta: SegmentMeta, meta_bytes: bytes, now_ms: int) -> RemoteSegment:
        """COPY_FINISHED with the object facts from the uploaded segment's meta, whose
        encoding `meta_bytes` ends the data object."""
        return self.with_state(
            COPY_FINISHED,
            now_ms,
            object_bytes=meta.object_bytes,
            data_crc32c=meta.data_crc32c,
            meta_crc32c=crc32c(meta_bytes),
            meta_bytes=len(meta_bytes),
            chunk_count=len(meta.chunks),
            compression=meta.compression,
            first_timestamp=meta.first_timestamp,
            max_timestamp=meta.max_timestamp,
        )

    def to_dict(self) -> dict:
        return {
            "segment_id": self.segment_id,
            "base_offset": self.base_offset,
            "last_offset": self.last_offset,
            "size_bytes": self.size_bytes,
            "data_key": self.data_key,
            "meta_key": self.meta_key,
            "state": self.state.value,
            "state_changed_ms": self.state_changed_ms,
            "first_timestamp": self.first_timestamp,
            "max_timestamp": self.max_timestamp,
            "compression": self.compression,
            "object_bytes": self.object_bytes,
            "data_crc32c": self.data_crc32c,
            "meta_crc32c": self.meta_crc32c,
            "chunk_count": self.chunk_count,
            "meta_bytes": self.meta_bytes,
        }

    @classmethod
    def from_dict(cls, doc: dict) -> RemoteSegment:
        return cls(**{**doc, "state": RemoteSegmentState(doc["state"])})

    def invariant_violation(self) -> str | None:
        if self.base_offset < 0 or self.last_offset < self.base_offset:
            return f"segment {self.segment_id} has offsets {self.base_offset}..{self.last_offset}"
        if self.compression not in COMPRESSIONS:
            return f"segment {self.segment_id} has unknown compression {self.compression!r}"
        if self.state is COPY_FINISHED and None in (
            self.object_bytes, self.data_crc32c, self.meta_crc32c, self.chunk_count
        ):
            return f"segment {self.segment_id} is COPY_FINISHED without its object sizes and checksums"
        if self.state is COPY_FINISHED and self.meta_key is None and self.meta_bytes is None:
            return f"segment {self.segment_id} is COPY_FINISHED without the size of its meta trailer"
        return None


async def read_segment_meta(store: ObjectStore, segment: RemoteSegment) -> SegmentMeta:
    """A COPY_FINISHED segment's meta: the trailer of its data object, or the separate
    `.meta` object of a segment uploaded before trailers. The bytes must match the
    manifest's CRC-32C (else CorruptSegmentMetaError); store errors propagate."""
    if segment.meta_key is None:
        key, start = segment.data_key, segment.object_bytes
        data = await store.get(key, start, start + segment.meta_bytes)
    else:
        key = segment.meta_key
        data = await store.get(key)
    return await asyncio.to_thread(SegmentMeta.from_bytes, data, key=key, expected_crc32c=segment.meta_crc32c)


@dataclass(frozen=True, slots=True)
class PartitionManifest:
    """One version of a partition's manifest. Immutable: changes return a new manifest.

    Invariants: `segments` are sorted by (base_offset, segment_id); the
    COPY_FINISHED ones do not overlap in offsets; no DELETE_FINISHED segment
    is listed (a finished delete leaves the manifest: nothing is left to track).
    """

    topic: str
    topic_id: str
    partition: int
    version: int = 0
    log_start_offset: int = 0  # of the remote tier; retention and DeleteRecords move it up
    segments: tuple[RemoteSegment, ...] = ()
    format_version: int = MANIFEST_FORMAT_VERSION

    @classmethod
    def empty(cls, keys: PartitionKeys) -> PartitionManifest:
        return cls(keys.topic, keys.topic_id, keys.partition)

    # -- lookups -------------------------------------------------------------

    @property
    def finished_segments(self) -> tuple[RemoteSegment, ...]:
        """The readable (COPY_FINISHED) segments in offset order."""
        return tuple(s for s in self.segments if s.state is COPY_FINISHED)

    @property
    def copied_end_offset(self) -> int | None:
        """The offset after the highest COPY_FINISHED segment: where the next upload starts."""
        finished = self.finished_segments
        return max(s.next_offset for s in finished) if finished else None

    @property
    def remote_log_start_offset(self) -> int | None:
        """The first offset readable from the remote tier, None when nothing is."""
        for segment in self.finished_segments:
            if segment.last_offset >= self.log_start_offset:
                return max(segment.base_offset, self.log_start_offset)
        return None

    @property
    def remote_size_bytes(self) -> int:
        """Original bytes of the readable segments (what retention.bytes counts)."""
        return sum(s.size_bytes for s in self.finished_segments)

    @property
    def stored_bytes(self) -> int:
        """Bytes of the data objects this manifest knows of (chunks and meta trailers),
        whatever their state."""
        return sum((s.object_bytes or 0) + (s.meta_bytes or 0) for s in self.segments)

    def segment(self, segment_id: str) -> RemoteSegment | None:
        for candidate in self.segments:
            if candidate.segment_id == segment_id:
                return candidate
        return None

    def segment_for_offset(self, offset: int) -> RemoteSegment | None:
        """The readable segment holding `offset`, or the next one when `offset` falls in a
        gap; None below the remote log start offset or past the copied end."""
        start = self.remote_log_start_offset
        if start is None or offset < start:
            return None
        for segment in self.finished_segments:
            if segment.last_offset >= offset:
                return segment
        return None

    # -- changes (each returns a new manifest; the version is set by commit) --

    def with_segment(self, segment: RemoteSegment) -> PartitionManifest:
        """Add a new COPY_STARTED segment, or replace one (its state change checked)."""
        current = self.segment(segment.segment_id)
        if current is None:
            if segment.state is not COPY_STARTED:
                raise InvalidManifestChange(
                    f"segment {segment.segment_id} enters the manifest as {segment.state.value}, not COPY_STARTED")
        else:
            transition(current.state, segment.state, segment.segment_id)
        return self._with_segments(
            [s for s in self.segments if s.segment_id != segment.segment_id]
            + ([] if segment.state is DELETE_FINISHED else [segment])
        )

    def with_state(self, segment_id: str, target: RemoteSegmentState, now_ms: int, **updates) -> PartitionManifest:
        """Move one segment to `target`. DELETE_FINISHED removes it, and repeating that for
        a segment already gone is a no-op (returns self)."""
        current = self.segment(segment_id)
        if current is None:
            if target is DELETE_FINISHED:
                return self
            raise UnknownRemoteSegment(segment_id)
        changed = current.with_state(target, now_ms, **updates)
        if changed is current:
            return self
        return self.with_segment(changed)

    def with_log_start_offset(self, offset: int) -> PartitionManifest:
        """Raise the remote log start offset (it never moves down)."""
        if offset <= self.log_start_offset:
            return self
        return replace(self, log_start_offset=offset)

    def _with_segments(self, segments: Iterable[RemoteSegment]) -> PartitionManifest:
        changed = replace(self, segments=tuple(sorted(segments, key=lambda s: (s.base_offset, s.segment_id))))
        problem = changed.invariant_violation()
        if problem:
            raise InvalidManifestChange(problem)
        return changed

    def invariant_violation(self) -> str | None:
        if self.partition < 0 or self.version < 0 or self.log_start_offset < 0:
            return "negative partition, version or log start offset"
        order = [(s.base_offset, s.segment_id) for s in self.segments]
        if order != sorted(order) or len({s.segment_id for s in self.segments}) != len(order):
            return "segments are not sorted by base offset or repeat a segment id"
        previous: RemoteSegment | None = None
        for segment in self.segments:
            problem = segment.invariant_violation()
            if problem:
                return problem
            if segment.state is DELETE_FINISHED:
                return f"segment {segment.segment_id} is DELETE_FINISHED but still listed"
            if segment.state is COPY_FINISHED:
                if previous is not None and segment.base_offset <= previous.last_offset:
                    return (f"COPY_FINISHED segments {previous.segment_id} ({previous.base_offset}.."
                            f"{previous.last_offset}) and {segment.segment_id} ({segment.base_offset}.."
                            f"{segment.last_offset}) overlap")
                previous = segment
        return None

    # -- bytes ----------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return encode_sealed_json({
            "format_version": self.format_version,
            "topic": self.topic,
            "topic_id": self.topic_id,
            "partition": self.partition,
            "version": self.version,
            "log_start_offset": self.log_start_offset,
            "segments": [s.to_dict() for s in self.segments],
        })

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str | None = None) -> PartitionManifest:
        try:
            doc = decode_sealed_json(data)
        except ValueError as exc:
            raise CorruptManifestError(str(exc), key) from None
        if doc.get("format_version") != MANIFEST_FORMAT_VERSION:
            raise CorruptManifestError(f"unsupported format_version {doc.get('format_version')!r}", key)
        try:
            manifest = cls(
                topic=doc["topic"],
                topic_id=doc["topic_id"],
                partition=doc["partition"],
                version=doc["version"],
                log_start_offset=doc["log_start_offset"],
                segments=tuple(RemoteSegment.from_dict(s) for s in doc["segments"]),
                format_version=doc["format_version"],
            )
            problem = manifest.invariant_violation()
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptManifestError(f"malformed document: {exc!r}", key) from None
        if problem:
            raise CorruptManifestError(problem, key)
        return manifest


Change = Callable[[PartitionManifest], "PartitionManifest | None"]


class ManifestStore:
    """Reads and commits one partition's manifest; `cached` is the last version seen.

    Concurrency: one ManifestStore per partition per process, used from one event
    loop; commits (and loads) are serialized by a lock, so each change is applied
    to the newest cached version. Across processes the create-only put decides.
    """

    def __init__(self, store: ObjectStore, keys: PartitionKeys, *, keep_versions: int = DEFAULT_KEEP_VERSIONS,
                 cleanup_batch: int = DEFAULT_CLEANUP_BATCH):
        if keep_versions < 1 or cleanup_batch < 1:
            raise ValueError("keep_versions and cleanup_batch must be at least 1")
        self.store = store
        self.keys = keys
        self.keep_versions = keep_versions
        self.cleanup_batch = cleanup_batch
        self._cached: PartitionManifest | None = None
        self._next_version = 1
        self._stored_versions: set[int] = set()  # version objects believed to exist
        self._lock = asyncio.Lock()

    @property
    def cached(self) -> PartitionManifest | None:
        """The manifest as of the last load or commit (None before the first)."""
        return self._cached

    async def load(self) -> PartitionManifest:
        async with self._lock:
            return await self._load()

    async def commit(self, change: Change, *, conflict_retries: int = 0) -> PartitionManifest:
        """Apply `change` to the cached manifest and store the result as the next version.

        `change` gets the current manifest and returns the new one (its version is
        set here), or None / the same object for "nothing to do", in which case
        nothing is written. On a lost race the cache is reloaded and the change is
        re-applied up to `conflict_retries` times, then ManifestConflict is raised.
        A store error while writing the version object propagates with nothing
        cached; one while writing the pointer or deleting old versions is only
        logged, because the version object alone is the commit.
        """
        async with self._lock:
            while True:
                try:
                    return await self._commit(change)
                except ManifestConflict:
                    if conflict_retries <= 0:
                        raise
                    conflict_retries -= 1

    async def _load(self) -> PartitionManifest:
        keys = self.keys
        for _ in range(_LOAD_ATTEMPTS):
            pointer = None if self.store.supports_conditional_put else await self._read_pointer()
            listed = {
                version
                for info in await self.store.list(keys.manifest_prefix)
                if (version := parse_manifest_key(info.key)) is not None
            }
            candidates = sorted(listed | ({pointer} if pointer is not None else set()), reverse=True)
            manifest = None
            corrupt: list[CorruptManifestError] = []
            missing = 0
            for version in candidates:
                key = keys.manifest_key(version)
                try:
                    data = await self.store.get(key)
                except ObjectNotFound:
                    missing += 1  # a pointer to a deleted version, or a listing that raced a delete
                    continue
                try:
                    manifest = self._parse(data, key, version)
                    break
                except CorruptManifestError as exc:
                    logger.error("%s; falling back to the previous manifest version", exc)
                    corrupt.append(exc)
            # Every listed version vanished: a writer committed and deleted them while we
            # read. List again rather than mistake the partition for one with no manifest.
            if manifest is not None or missing < len(listed):
                break
        if manifest is None:
            if corrupt:
                raise CorruptManifestError(
                    f"no readable version among {len(corrupt)} stored ({corrupt[0].reason})", corrupt[0].key)
            manifest = PartitionManifest.empty(keys)
        self._stored_versions = listed
        self._next_version = max([manifest.version, *candidates]) + 1
        self._cached = manifest
        return manifest

    async def _read_pointer(self) -> int | None:
        try:
            text = await self.store.get(self.keys.latest_key)
        except ObjectNotFound:
            return None
        try:
            return int(text.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            logger.warning("ignoring unreadable manifest pointer %s: %r", self.keys.latest_key, text[:40])
            return None

    def _parse(self, data: bytes, key: str, version: int) -> PartitionManifest:
        manifest = PartitionManifest.from_bytes(data, key=key)
        keys = self.keys
        if (manifest.topic, manifest.topic_id, manifest.partition) != (keys.topic, keys.topic_id, keys.partition):
            raise CorruptManifestError(
                f"names {manifest.topic}-{manifest.topic_id}/{manifest.partition}, not this partition", key)
        if manifest.version != version:
            raise CorruptManifestError(f"says version {manifest.version} but is stored as version {version}", key)
        return manifest

    async def _commit(self, change: Change) -> PartitionManifest:
        current = self._cached if self._cached is not None else await self._load()
        changed = change(current)
        if changed is None or changed is current or changed == current:
            return current
        if (changed.topic, changed.topic_id, changed.partition) != (current.topic, current.topic_id, current.partition):
            raise InvalidManifestChange("a change cannot move the manifest to another partition")
        version = self._next_version
        new = replace(changed, version=version)
        problem = new.invariant_violation()
        if problem:
            raise InvalidManifestChange(problem)
        key = self.keys.manifest_key(version)
        data = new.to_bytes()
        if self.store.supports_conditional_put:
            try:
                await self.store.put(key, data, if_none_match=True)
            except PreconditionFailed:
                await self._load()
                raise ManifestConflict(key, version) from None
        else:
            # Narrows, does not close, the race a conditional put would close.
            if await self.store.head(key) is not None:
                await self._load()
                raise ManifestConflict(key, version)
            await self.store.put(key, data)
        self._cached = new
        self._next_version = version + 1
        self._stored_versions.add(version)
        # Neither follow-up is part of the commit (both only log their failures), so
        # they run side by side. A reader that meanwhile finds the pointer naming a
        # deleted version lists instead.
        follow_ups = [self._delete_old_versions(version)]
        if not self.store.supports_conditional_put:
            follow_ups.append(self._write_pointer(key, version))
        await asyncio.gather(*follow_ups)
        return new

    async def _write_pointer(self, key: str, version: int) -> None:
        try:
            await self.store.put(self.keys.latest_key, str(version).encode("ascii"))
        except StoreError as exc:
            logger.warning("manifest %s committed but its pointer was not updated: %s", key, exc)

    async def _delete_old_versions(self, newest: int) -> None:
        old = sorted(v for v in self._stored_versions if v <= newest - self.keep_versions)
        if len(old) < self.cleanup_batch:
            return
        try:
            await self.store.delete_many([self.keys.manifest_key(v) for v in old])
        except StoreError as exc:
            logger.warning("could not delete old manifest versions %s of %s: %s", old, self.keys, exc)
            return
        self._stored_versions.difference_update(old)


# ---------------------------------------------------------------------------
# Topic descriptions


@dataclass(frozen=True)
class TopicDescription:
    """What recovering a topic from the bucket alone needs: its identity, partition count,
    config overrides, and whether its partition keys are hashed (keys.py)."""

    name: str
    topic_id: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)
    hashed_keys: bool = False
    format_version: int = TOPIC_FORMAT_VERSION

    def __post_init__(self):
        object.__setattr__(self, "topic_id", topic_id_text(self.topic_id))

    @property
    def key(self) -> str:
        return topic_description_key(self.name, self.topic_id)

    def partition_keys(self, partition: int) -> PartitionKeys:
        if not 0 <= partition < self.partitions:
            raise ValueError(f"topic {self.name} has no partition {partition}")
        return PartitionKeys(self.name, self.topic_id, partition, self.hashed_keys)

    def to_bytes(self) -> bytes:
        return encode_sealed_json({
            "format_version": self.format_version,
            "name": self.name,
            "topic_id": self.topic_id,
            "partitions": self.partitions,
            "configs": dict(self.configs),
            "hashed_keys": self.hashed_keys,
        })

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str | None = None) -> TopicDescription:
        try:
            doc = decode_sealed_json(data)
        except ValueError as exc:
            raise CorruptManifestError(str(exc), key) from None
        if doc.get("format_version") != TOPIC_FORMAT_VERSION:
            raise CorruptManifestError(f"unsupported format_version {doc.get('format_version')!r}", key)
        try:
            description = cls(
                name=doc["name"],
                topic_id=doc["topic_id"],
                partitions=doc["partitions"],
                configs=dict(doc["configs"]),
                hashed_keys=doc["hashed_keys"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptManifestError(f"malformed topic description: {exc!r}", key) from None
        if not isinstance(description.partitions, int) or description.partitions < 1:
            raise CorruptManifestError(f"partition count {description.partitions!r}", key)
        return description


async def put_topic_description(store: ObjectStore, description: TopicDescription) -> None:
    """Write (or overwrite) the topic's description; configs change, so this is a plain put."""
    await store.put(description.key, description.to_bytes())


async def get_topic_description(store: ObjectStore, topic: str, topic_id: str | uuid.UUID) -> TopicDescription | None:
    key = topic_description_key(topic, topic_id)
    try:
        data = await store.get(key)
    except ObjectNotFound:
        return None
    return TopicDescription.from_bytes(data, key=key)


async def list_topics(store: ObjectStore) -> list[tuple[str, str]]:
    """(topic, topic_id) of every topic described in the bucket, from the keys alone."""
    found = []
    for info in await store.list(TOPICS_PREFIX):
        parsed = parse_topic_description_key(info.key)
        if parsed is not None:
            found.append(parsed)
    return found
