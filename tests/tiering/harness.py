"""Support for end-to-end tests of the remote tier's write side.

Two halves:

- driving a broker subprocess: overrides for a moto bucket or a local-directory
  store, topic creation, produce, ListOffsets, config changes, Prometheus scrapes;
- an *independent* reader of what the broker left in the bucket. It uses only
  json, base64, struct, zstandard, lz4 and crc32c, never `remote_index` or
  `tiering`: it reads the documented formats (remote_index/keys.py,
  segment_format.py, manifest.py) the way a third-party auditor would, so a bug
  shared by our writer and our reader cannot hide. Against moto it goes through
  the `minio` client; against the local store through plain file reads.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import lz4.frame
import zstandard
from crc32c import crc32c

from tests.helpers.batch_reading import iter_batches, iter_full_records
from tests.helpers.record_batches import build_batch
from tests.support.moto_server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from tests.support.prometheus import Metrics, scrape  # noqa: F401 (re-exported for the tiering tests)
from tests.support.raw_client import RawClient

LATEST, EARLIEST, EARLIEST_LOCAL, LATEST_TIERED = -1, -2, -4, -5


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------
# Broker configuration


def s3_overrides(bucket: str, endpoint_url: str, prefix: str = "") -> dict[str, str]:
    url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    return {
        "remote.storage.url": url,
        "remote.storage.s3.endpoint.url": endpoint_url,
        "remote.storage.s3.region": REGION,
        "remote.storage.s3.path.style.access": "true",
        "remote.storage.s3.access.key.id": ACCESS_KEY_ID,
        "remote.storage.s3.secret.access.key": SECRET_ACCESS_KEY,
    }


def tiering_overrides(metrics_port: int, **extra: str) -> dict[str, str]:
    return {"remote.log.manager.task.interval.ms": "200", "metrics.port": str(metrics_port),
            **{k.replace("_", "."): v for k, v in extra.items()}}


# ---------------------------------------------------------------------------
# Talking to the broker


def create_topic(client: RawClient, name: str, configs: dict[str, str], partitions: int = 1) -> str:
    """Create a topic; returns its topic id (canonical text)."""
    reply = client.request("CreateTopics", 7, {"topics": [
        {"name": name, "num_partitions": partitions, "replication_factor": 1, "assignments": [],
         "configs": [{"name": k, "value": v} for k, v in configs.items()]}],
        "timeout_ms": 5000, "validate_only": False})
    topic = reply.topics[0]
    assert topic.error_code == 0, (topic.error_code, topic.error_message)
    return str(topic.topic_id)


def alter_topic(client: RawClient, name: str, configs: dict[str, str]) -> None:
    reply = client.request("IncrementalAlterConfigs", 1, {"resources": [
        {"resource_type": 2, "resource_name": name,
         "configs": [{"name": k, "config_operation": 0, "value": v} for k, v in configs.items()]}],
        "validate_only": False})
    result = reply.responses[0]
    assert result.error_code == 0, (result.error_code, result.error_message)


def produce(client: RawClient, topic: str, partition: int, values: list[bytes], *, acks: int = -1,
            timestamp: int | None = None) -> int:
    """One batch of `values` (keys k<i>, real timestamps); returns its base offset."""
    ts = now_ms() if timestamp is None else timestamp
    batch = build_batch([(b"k%d" % i, v, (), ts) for i, v in enumerate(values)])
    reply = client.request("Produce", 9, {"acks": acks, "timeout_ms": 10_000, "topic_data": [
        {"name": topic, "partition_data": [{"index": partition, "records": batch}]}]})
    result = reply.responses[0].partition_responses[0]
    assert result.error_code == 0, (result.error_code, result.error_message)
    return result.base_offset


def list_offsets(client: RawClient, topic: str, partition: int = 0) -> dict[int, int]:
    """{-2 earliest, -4 earliest local, -5 latest tiered, -1 latest} via ListOffsets v9."""
    specials = (EARLIEST, EARLIEST_LOCAL, LATEST_TIERED, LATEST)
    reply = client.request("ListOffsets", 9, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": topic, "partitions": [
            {"partition_index": partition, "current_leader_epoch": -1, "timestamp": ts} for ts in specials]}]})
    out = {}
    for ts, p in zip(specials, reply.topics[0].partitions):
        assert p.error_code == 0, (ts, p.error_code)
        out[ts] = p.offset
    return out


def fetch_records(client: RawClient, topic: str, partition: int, offset: int,
                  max_bytes: int = 1 << 20) -> list[tuple[int, bytes]]:
    """(offset, value) of the records one Fetch returns from `offset` (local data only)."""
    reply = client.request("Fetch", 11, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": max_bytes, "isolation_level": 0,
        "session_id": 0, "session_epoch": -1, "rack_id": "", "forgotten_topics_data": [],
        "topics": [{"topic": topic, "partitions": [
            {"partition": partition, "current_leader_epoch": -1, "fetch_offset": offset,
             "log_start_offset": -1, "partition_max_bytes": max_bytes}]}]})
    part = reply.responses[0].partitions[0]
    assert part.error_code == 0, part.error_code
    return [(o, v) for o, _, v in iter_records(bytes(part.records or b""), allow_partial=True) if o >= offset]


# ---------------------------------------------------------------------------
# Record batches, decoded independently


def iter_records(data: bytes, *, allow_partial: bool = False):
    """(offset, key, value) of every record of uncompressed v2 batches."""
    for record in iter_full_records(data, allow_partial=allow_partial):
        yield record.offset, record.key, record.value


# ---------------------------------------------------------------------------
# The local log, read from its files (broker stopped, or only closed segments)


def partition_dir(broker_data_dir: Path, topic: str, partition: int = 0) -> Path:
    return Path(broker_data_dir) / "logs" / f"{topic}-{partition}"


def local_segment_files(directory: Path) -> dict[int, Path]:
    """base offset -> live `.log` file (renamed `.deleted` files are not part of the log)."""
    return {int(p.name[:20]): p for p in sorted(Path(directory).glob("*.log"))}


def local_records(directory: Path) -> dict[int, bytes]:
    """offset -> value of every whole batch in the live local segment files."""
    out = {}
    for path in local_segment_files(directory).values():
        for offset, _, value in iter_records(path.read_bytes(), allow_partial=True):
            out[offset] = value
    return out


# ---------------------------------------------------------------------------
# The bucket, read independently


class BucketReader(abc.ABC):
    """list and ranged get, nothing else."""

    @abc.abstractmethod
    def list(self, prefix: str) -> dict[str, int]: ...  # key -> size

    @abc.abstractmethod
    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes: ...


class MinioReader(BucketReader):
    def __init__(self, host: str, port: int, bucket: str, prefix: str = ""):
        from minio import Minio

        self.client = Minio(f"{host}:{port}", access_key=ACCESS_KEY_ID, secret_key=SECRET_ACCESS_KEY,
                            secure=False, region=REGION)
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix else ""

    def list(self, prefix: str) -> dict[str, int]:
        full = self.prefix + prefix
        return {o.object_name[len(self.prefix):]: o.size
                for o in self.client.list_objects(self.bucket, prefix=full, recursive=True)}

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        kwargs = {"offset": start} | ({"length": length} if length is not None else {})
        response = self.client.get_object(self.bucket, self.prefix + key, **kwargs)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()


class DirectoryReader(BucketReader):
    """The local-directory store's files (its hidden .tmp/ and .multipart/ areas skipped)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def list(self, prefix: str) -> dict[str, int]:
        out = {}
        if not self.root.exists():
            return out
        for path in self.root.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and not key.startswith((".tmp/", ".multipart/")) and key.startswith(prefix):
                out[key] = path.stat().st_size
        return out

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        with open(self.root / key, "rb") as f:
            f.seek(start)
            return f.read() if length is None else f.read(length)

    def pending_multipart_uploads(self) -> list[str]:
        area = self.root / ".multipart"
        return sorted(p.name for p in area.iterdir()) if area.exists() else []


def partition_prefix(topic: str, topic_id: str, partition: int = 0, hashed: bool = False) -> str:
    """The key layout of keys.py, written out again."""
    hash_dir = hashlib.sha256(f"{topic_id}/{partition}".encode()).hexdigest()[:4] + "/" if hashed else ""
    return f"{hash_dir}{topic}-{topic_id}/{partition}/"


def unseal(data: bytes, what: str) -> dict:
    """A sealed JSON document: its "crc32c" is the CRC-32C of the canonical body."""
    doc = json.loads(data)
    stored = doc.pop("crc32c")
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert crc32c(canonical) == stored, f"{what}: seal CRC-32C mismatch"
    return doc


@dataclass
class ManifestView:
    version: int
    doc: dict
    listed_versions: list[int]

    @property
    def segments(self) -> list[dict]:
        return self.doc["segments"]

    @property
    def finished(self) -> list[dict]:
        return [s for s in self.doc["segments"] if s["state"] == "COPY_FINISHED"]

    @property
    def log_start_offset(self) -> int:
        return self.doc["log_start_offset"]

    @property
    def copied_end(self) -> int | None:
        return self.finished[-1]["last_offset"] + 1 if self.finished else None

    def named_keys(self, states=("COPY_FINISHED",)) -> set[str]:
        return {s["data_key"] for s in self.segments if s["state"] in states}


class _Moved(AssertionError):
    """What was listed changed while it was read (a running broker committed)."""


def _vanished(exc: Exception) -> bool:
    return isinstance(exc, (FileNotFoundError, _Moved)) or getattr(exc, "code", None) == "NoSuchKey"


def read_manifest(bucket: BucketReader, prefix: str) -> ManifestView | None:
    """The newest manifest version (None when the partition has none), checked: sealed,
    names this partition, version matches its key, the pointer names a stored version
    no newer than the newest. Retries when a running broker deletes what it listed."""
    for attempt in range(10):
        try:
            return _read_manifest(bucket, prefix)
        except Exception as exc:
            if not _vanished(exc) or attempt == 9:
                raise
            time.sleep(0.05)


def consistent_snapshot(bucket: BucketReader, prefix: str) -> tuple[ManifestView | None, dict[str, int]]:
    """(manifest, listing of segments/) as of one manifest version: the listing is
    retaken until no new version was committed while it was taken."""
    for _ in range(50):
        before = read_manifest(bucket, prefix)
        listing = bucket.list(prefix + "segments/")
        after = read_manifest(bucket, prefix)
        if (before and before.version) == (after and after.version):
            return before, listing
    raise AssertionError(f"{prefix}: the manifest never held still long enough to list")


def _read_manifest(bucket: BucketReader, prefix: str) -> ManifestView | None:
    listed = bucket.list(prefix + "manifest/")
    versions = sorted(int(k.rsplit("/", 1)[1][:20]) for k in listed if k.endswith(".json"))
    if not versions:
        return None
    newest = versions[-1]
    doc = unseal(bucket.get(f"{prefix}manifest/{newest:020d}.json"), f"manifest {newest}")
    assert doc["version"] == newest
    assert prefix.endswith(f"{doc['topic']}-{doc['topic_id']}/{doc['partition']}/"), "names another partition"
    if prefix + "manifest/latest" in listed:
        pointer = int(bucket.get(prefix + "manifest/latest").decode())
        if pointer > newest:
            raise _Moved(f"manifest pointer {pointer} is past the newest listed version {newest}")
    return ManifestView(newest, doc, versions)


def check_manifest_shape(view: ManifestView, prefix: str) -> None:
    """COPY_FINISHED segments sorted, non-overlapping and contiguous; keys under the
    partition's segments/ prefix; no DELETE_FINISHED entries left."""
    finished = view.finished
    for seg in view.segments:
        assert seg["state"] in ("COPY_STARTED", "COPY_FINISHED", "DELETE_STARTED"), seg
        assert seg["data_key"].startswith(prefix + "segments/"), seg["data_key"]
        assert seg["data_key"].endswith(f"{seg['base_offset']:020d}-{seg['segment_id']}.log")
        assert seg["meta_key"] is None, "a segment's meta is the trailer of its data object, not an object"
    for a, b in itertools.pairwise(finished):
        assert b["base_offset"] == a["last_offset"] + 1, \
            f"COPY_FINISHED segments not contiguous: {a['base_offset']}..{a['last_offset']} then " \
            f"{b['base_offset']}..{b['last_offset']}"
    if finished:  # retention deletes whole segments below the log start offset, manifest first
        assert finished[0]["last_offset"] >= view.log_start_offset, "a segment below the log start is readable"


@dataclass
class RemoteSegmentData:
    entry: dict
    meta: dict
    data: bytes  # the original segment bytes (decoded chunks, concatenated)
    chunks: list[dict] = field(default_factory=list)


def decode_remote_segment(bucket: BucketReader, entry: dict, listing: dict[str, int] | None = None
                          ) -> RemoteSegmentData:
    """Read one COPY_FINISHED segment's meta trailer and then its chunks with ranged
    GETs, and check every checksum and size the manifest and the meta promise."""
    name = f"segment {entry['base_offset']}..{entry['last_offset']} ({entry['segment_id']})"
    if listing is not None:
        assert entry["data_key"] in listing, f"{name}: data object missing"
        assert listing[entry["data_key"]] == entry["object_bytes"] + entry["meta_bytes"], f"{name}: data object size"
    meta_bytes = bucket.get(entry["data_key"], entry["object_bytes"], entry["meta_bytes"])
    assert len(meta_bytes) == entry["meta_bytes"], f"{name}: meta trailer short"
    assert crc32c(meta_bytes) == entry["meta_crc32c"], f"{name}: meta CRC-32C differs from the manifest's"
    meta = unseal(meta_bytes, f"{name} meta")
    assert meta["format_version"] == 1
    for k in ("base_offset", "last_offset", "size_bytes", "object_bytes", "data_crc32c", "compression"):
        assert meta[k] == entry[k], f"{name}: meta {k} {meta[k]} != manifest {entry[k]}"
    assert len(meta["chunks"]) == entry["chunk_count"]
    chunks = [dict(zip(meta["chunk_fields"], row, strict=True)) for row in meta["chunks"]]
    original, data_crc, position, object_offset = [], 0, 0, 0
    for i, c in enumerate(chunks):
        assert c["index"] == i and c["position"] == position and c["object_offset"] == object_offset, \
            f"{name}: chunk {i} does not follow chunk {i - 1}"
        stored = bucket.get(entry["data_key"], c["object_offset"], c["object_length"])
        assert len(stored) == c["object_length"], f"{name}: chunk {i} short read"
        assert crc32c(stored) == c["stored_crc32c"], f"{name}: chunk {i} stored CRC-32C"
        data_crc = crc32c(stored, data_crc)
        if c["compressed"]:
            if meta["compression"] == "zstd":
                plain = zstandard.ZstdDecompressor().decompress(stored, max_output_size=c["length"])
            elif meta["compression"] == "lz4":
                plain = lz4.frame.decompress(stored)
            else:
                raise AssertionError(f"{name}: chunk {i} compressed under codec {meta['compression']}")
            assert len(stored) < len(plain), f"{name}: chunk {i} stored compressed but not smaller"
        else:
            plain = stored
        assert len(plain) == c["length"], f"{name}: chunk {i} decoded length"
        assert crc32c(plain) == c["crc32c"], f"{name}: chunk {i} decoded CRC-32C"
        batches = list(iter_batches(plain))
        assert batches and batches[0].position == 0, f"{name}: chunk {i} does not start at a batch"
        assert (batches[0].base_offset, batches[-1].last_offset) == (c["first_offset"], c["last_offset"])
        assert len(batches) == c["batch_count"]
        original.append(plain)
        position += c["length"]
        object_offset += c["object_length"]
    assert position == meta["size_bytes"] and object_offset == meta["object_bytes"]
    assert data_crc == meta["data_crc32c"], f"{name}: data object CRC-32C"
    data = b"".join(original)
    batches = list(iter_batches(data))
    assert batches[0].base_offset >= entry["base_offset"] and batches[-1].last_offset == entry["last_offset"]
    base64.b64decode(meta["offset_index"], validate=True)
    base64.b64decode(meta["time_index"], validate=True)
    return RemoteSegmentData(entry, meta, data, chunks)


# ---------------------------------------------------------------------------
# Invariants checked against a running or stopped broker


class LocalDeletionWatch:
    """Watches a partition directory: every local segment seen gone must already be
    COPY_FINISHED in the manifest (committed before the local delete, so a manifest
    read after noticing the deletion must show it)."""

    def __init__(self, directory: Path, bucket: BucketReader, prefix: str):
        self.directory = Path(directory)
        self.bucket = bucket
        self.prefix = prefix
        self.seen: set[int] = set(local_segment_files(self.directory))
        self.gone: set[int] = set()

    def check(self) -> set[int]:
        """Look once; returns the base offsets seen gone so far."""
        present = set(local_segment_files(self.directory))
        newly_gone = self.seen - present - self.gone
        self.seen |= present
        if newly_gone:
            view = read_manifest(self.bucket, self.prefix)
            finished = {s["base_offset"] for s in view.finished} if view else set()
            early = sorted(newly_gone - finished)
            assert not early, f"local segments {early} deleted before their upload was COPY_FINISHED"
            self.gone |= newly_gone
        return self.gone


def remote_records(bucket: BucketReader, view: ManifestView, cache: dict | None = None) -> dict[int, bytes]:
    """offset -> value of every record in the COPY_FINISHED segments (decoded and verified;
    `cache` maps segment id -> records, to verify each segment once)."""
    out: dict[int, bytes] = {}
    listing = bucket.list(view.segments[0]["data_key"].rsplit("/", 1)[0] + "/") if view.segments else {}
    for entry in view.finished:
        records = cache.get(entry["segment_id"]) if cache is not None else None
        if records is None:
            data = decode_remote_segment(bucket, entry, listing).data
            records = {o: v for o, _, v in iter_records(data)}
            assert min(records) >= entry["base_offset"] and max(records) == entry["last_offset"]
            if cache is not None:
                cache[entry["segment_id"]] = records
        out.update(records)
    return out


def assert_nothing_lost(acked: dict[int, bytes], bucket: BucketReader, prefix: str, directory: Path,
                        earliest: int = 0, cache: dict | None = None) -> dict[str, int]:
    """Every acknowledged record at or above `earliest` is in a live local segment or
    in a COPY_FINISHED remote segment, with its value. Returns where they were found."""
    view = read_manifest(bucket, prefix)
    remote = remote_records(bucket, view, cache) if view is not None else {}
    local = local_records(directory)
    missing, wrong = [], []
    for offset, value in acked.items():
        if offset < earliest:
            continue
        copies = [tier[offset] for tier in (local, remote) if offset in tier]
        if not copies:
            missing.append(offset)
        elif any(copy != value for copy in copies):
            wrong.append(offset)
    if missing:
        tiers = (f"manifest log start {view.log_start_offset if view else None}, remote segments "
                 f"{[(s['base_offset'], s['last_offset'], s['state']) for s in view.segments] if view else []}, "
                 f"local records {min(local, default=None)}..{max(local, default=None)}")
        raise AssertionError(f"{len(missing)} acknowledged records lost, e.g. offsets {missing[:10]} ({tiers})")
    assert not wrong, f"{len(wrong)} acknowledged records changed, e.g. offsets {wrong[:10]}"
    return {"local": sum(o in local for o in acked), "remote": sum(o in remote for o in acked)}
