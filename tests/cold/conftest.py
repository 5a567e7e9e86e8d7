"""Cold reads end to end: a broker subprocess whose partitions' early segments exist
only in the bucket.

Topics get small segments, small chunks and local.retention.bytes=0, so every
uploaded segment is deleted locally once its copy is committed: the local log is
the active segment (plus any closed segment not uploaded yet), and everything
before it is remote-only. The bucket is moto's S3 server over HTTP (session
scoped, tests/support/moto_server.py) or a local-directory store kept outside
the broker's data directory.

Records are produced with the raw client as uncompressed v2 batches of 1-5
records with compressible values, one header each, and real timestamps: record
at offset o has timestamp t0 + 2*o with t0 a few minutes ago (inside total
retention, and the gaps give ListOffsets-by-time a value between two records).

The `ColdBroker` helpers are handed out by fixtures (this directory is not a
package, so tests do not import from here).
"""

from __future__ import annotations

import hashlib
import random
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.batch_reading import iter_full_records
from tests.helpers.record_batches import build_batch
from tests.support.broker import BrokerProcess, free_port
from tests.support.moto_server import (  # noqa: F401 (fixtures)
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    moto_server,
    s3_bucket,
)
from tests.support.polling import wait_for
from tests.support.prometheus import Metrics
from tests.support.raw_client import RawClient
from tests.tiering.harness import (  # noqa: F401 (the offset specs are the `cold` fixture's too)
    EARLIEST,
    EARLIEST_LOCAL,
    LATEST,
    LATEST_TIERED,
    list_offsets,
)

UNKNOWN_SERVER_ERROR = -1
KAFKA_STORAGE_ERROR = 56

SEGMENT_BYTES = 16 * 1024
CHUNK_BYTES = 4096


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Produced:
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int

    def digest(self) -> tuple:
        """What a consumer must hand back, in a compact form for large comparisons."""
        return (self.offset, self.key, hashlib.sha1(self.value).digest(), self.headers, self.timestamp)


def value_for(rng: random.Random, tag: bytes, size: int) -> bytes:
    """Compressible, but not to nothing: a random third, then repeated text."""
    head = tag + b"|" + rng.randbytes(size // 3)
    return head + (b"cold-read " * (size // 10 + 1))[: max(size - len(head), 0)]


def topic_configs(compression: str = "zstd", *, segment_bytes: int = SEGMENT_BYTES,
                  chunk_bytes: int = CHUNK_BYTES, local_retention_bytes: int = 0, **extra: str) -> dict[str, str]:
    return {
        "remote.storage.enable": "true",
        "segment.bytes": str(segment_bytes),
        "remote.storage.chunk.bytes": str(chunk_bytes),
        "remote.storage.chunk.compression": compression,
        "local.retention.bytes": str(local_retention_bytes),
        **extra,
    }


# -- record batches, decoded independently -------------------------------------------


def decode_records(data: bytes) -> list[tuple[int, bytes, bytes, tuple, int]]:
    """(offset, key, value, headers, timestamp) of every record in whole uncompressed
    v2 batches, CRC-32C checked; a partial batch at the end is ignored (Kafka allows it)."""
    return [(r.offset, r.key, r.value, r.headers, r.timestamp)
            for r in iter_full_records(data, allow_partial=True)]


# -- the broker --------------------------------------------------------------------------


class ColdBroker:
    """A broker process with tiering on, and the few requests cold-read tests need."""

    def __init__(self, process: BrokerProcess, metrics_port: int, *, bucket: str | None = None,
                 moto=None, store_root: Path | None = None):
        self.process = process
        self.metrics_port = metrics_port
        self.bucket = bucket
        self.moto = moto
        self.store_root = store_root
        self._client: RawClient | None = None
        self._next_offset: dict[tuple[str, int], int] = {}
        # (topic, partition) -> [(base offset, last offset, size)] of every batch produced
        self.batches: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
        self.t0 = now_ms() - 10 * 60 * 1000

    @classmethod
    def start(cls, data_dir: Path, *, moto=None, store_root: Path | None = None,
              overrides: dict[str, str] | None = None) -> ColdBroker:
        metrics_port = free_port()
        settings = {"remote.log.manager.task.interval.ms": "200", "metrics.port": str(metrics_port)}
        bucket = None
        if moto is not None:
            bucket = moto.create_bucket("cold")
            settings |= {
                "remote.storage.url": f"s3://{bucket}/tier",
                "remote.storage.s3.endpoint.url": moto.url,
                "remote.storage.s3.region": REGION,
                "remote.storage.s3.path.style.access": "true",
                "remote.storage.s3.access.key.id": ACCESS_KEY_ID,
                "remote.storage.s3.secret.access.key": SECRET_ACCESS_KEY,
            }
        else:
            assert store_root is not None
            settings["remote.storage.url"] = f"file://{store_root}"
        process = BrokerProcess(data_dir, settings | (overrides or {})).start()
        return cls(process, metrics_port, bucket=bucket, moto=moto, store_root=store_root)

    @property
    def bootstrap(self) -> str:
        return self.process.bootstrap

    @property
    def log_dir(self) -> Path:
        return Path(self.process.overrides["log.dirs"])

    @property
    def pid(self) -> int:
        return self.process.proc.pid

    def client(self) -> RawClient:
        if self._client is None:
            self._client = RawClient(self.bootstrap, timeout=30)
        return self._client

    def kill(self) -> None:
        if self._client is not None:
            self._client.close()
        self.process.kill()

    # -- requests ------------------------------------------------------------------------

    def create_topic(self, name: str, configs: dict[str, str], partitions: int = 1) -> str:
        reply = self.client().request("CreateTopics", 7, {"topics": [
            {"name": name, "num_partitions": partitions, "replication_factor": 1, "assignments": [],
             "configs": [{"name": k, "value": v} for k, v in configs.items()]}],
            "timeout_ms": 10_000, "validate_only": False})
        topic = reply.topics[0]
        assert topic.error_code == 0, (topic.error_code, topic.error_message)
        return str(topic.topic_id)

    def produce(self, topic: str, partition: int, nbytes: int, *, seed: int = 0,
                value_bytes: tuple[int, int] = (150, 1200), big_every: int = 0,
                request_bytes: int = 16 * 1024) -> list[Produced]:
        """About `nbytes` of records in batches of 1-5 (every `big_every`-th batch holds one
        record bigger than a chunk), several batches per Produce request. Returns them with
        the offsets the broker gave."""
        rng = random.Random(f"{topic}/{partition}/{seed}")
        out: list[Produced] = []
        written = batch_number = 0
        while written < nbytes:
            first = self._next_offset.get((topic, partition), 0)
            offset, batches, records_sent = first, [], []
            while written < nbytes and sum(map(len, batches)) < request_bytes:
                big = big_every and batch_number % big_every == big_every - 1
                records = []
                for o in range(offset, offset + (1 if big else rng.randint(1, 5))):
                    size = 3 * CHUNK_BYTES if big else rng.randint(*value_bytes)
                    tag = b"%s/%d/%d" % (topic.encode(), partition, o)
                    records.append(Produced(o, b"key-%d" % o, value_for(rng, tag, size),
                                            (("offset", str(o).encode()),), self.t0 + 2 * o))
                batches.append(build_batch([(r.key, r.value, r.headers, r.timestamp) for r in records]))
                self.batches.setdefault((topic, partition), []).append((offset, offset + len(records) - 1,
                                                                        len(batches[-1])))
                written += len(batches[-1])
                batch_number += 1
                offset += len(records)
                records_sent += records
            reply = self.client().request("Produce", 9, {"acks": -1, "timeout_ms": 10_000, "topic_data": [
                {"name": topic, "partition_data": [{"index": partition, "records": b"".join(batches)}]}]})
            result = reply.responses[0].partition_responses[0]
            assert result.error_code == 0, (result.error_code, result.error_message)
            assert result.base_offset == first, (result.base_offset, first)
            self._next_offset[(topic, partition)] = offset
            out += records_sent
        return out

    def offsets(self, topic: str, partition: int = 0) -> dict[int, int]:
        """{-2 earliest, -4 earliest local, -5 latest tiered, -1 latest} (ListOffsets v9)."""
        return list_offsets(self.client(), topic, partition)

    def wait_until_remote_only(self, topic: str, partitions: int = 1, *, share: float = 0.6,
                               timeout: float = 90) -> dict[int, dict[int, int]]:
        """Wait until each partition's local log starts where the remote tier ends, past
        `share` of its records: the earlier ones exist only in the bucket."""

        def settled(partition: int):
            o = self.offsets(topic, partition)
            ok = (o[EARLIEST] == 0 and o[EARLIEST_LOCAL] > o[EARLIEST]
                  and o[LATEST_TIERED] + 1 == o[EARLIEST_LOCAL] and o[EARLIEST_LOCAL] >= share * o[LATEST])
            return o if ok else None

        return {p: wait_for(lambda p=p: settled(p), timeout, f"{topic}-{p} remote-only up to {share:.0%}")
                for p in range(partitions)}

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20,
              max_wait_ms: int = 1000) -> tuple[int, bytes]:
        """(error code, record bytes) of one Fetch v11 of one partition."""
        return self.fetch_many(topic, {partition: offset}, max_bytes, max_wait_ms)[partition]

    def fetch_many(self, topic: str, offsets: dict[int, int], max_bytes: int = 1 << 20,
                   max_wait_ms: int = 1000, partition_max_bytes: int | None = None) -> dict[int, tuple[int, bytes]]:
        """{partition: (error code, record bytes)} of one Fetch v11 of several partitions."""
        reply = self.client().request("Fetch", 11, {
            "replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": max_bytes,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1, "rack_id": "",
            "forgotten_topics_data": [],
            "topics": [{"topic": topic, "partitions": [
                {"partition": p, "current_leader_epoch": -1, "fetch_offset": o,
                 "log_start_offset": -1, "partition_max_bytes": partition_max_bytes or max_bytes}
                for p, o in offsets.items()]}]})
        assert reply.error_code == 0, reply.error_code
        return {part.partition_index: (part.error_code, bytes(part.records or b""))
                for part in reply.responses[0].partitions}

    def replay(self, topic: str, partition: int, start: int, end: int, max_bytes: int = 256 * 1024,
               timeout: float = 60, pause_s: float = 0) -> list[tuple]:
        """Every record in [start, end) by raw Fetches (retrying empty cold answers),
        `pause_s` apart (a consumer busy with what it got)."""
        out: list[tuple] = []
        offset = start
        deadline = time.monotonic() + timeout
        while offset < end:
            assert time.monotonic() < deadline, f"replay of {topic}-{partition} stuck at {offset}"
            if pause_s and offset > start:
                time.sleep(pause_s)
            error, data = self.fetch(topic, partition, offset, max_bytes)
            assert error == 0, (offset, error)
            for record in decode_records(data):
                if offset <= record[0] < end:
                    assert record[0] == offset, f"expected offset {offset}, got {record[0]}"
                    out.append(record)
                    offset += 1
        return out

    def metrics(self) -> Metrics:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        return Metrics(urllib.request.urlopen(url, timeout=10).read().decode())

    # -- the bucket ------------------------------------------------------------------------

    def get_object(self, key: str) -> bytes:
        if self.moto is not None:
            return self.moto.sync_client().get_object(Bucket=self.bucket, Key="tier/" + key)["Body"].read()
        return (self.store_root / key).read_bytes()

    def put_object(self, key: str, data: bytes) -> None:
        if self.moto is not None:
            self.moto.sync_client().put_object(Bucket=self.bucket, Key="tier/" + key, Body=data)
        else:
            (self.store_root / key).write_bytes(data)

    def list_keys(self, prefix: str = "") -> list[str]:
        if self.moto is not None:
            client = self.moto.sync_client()
            keys = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="tier/" + prefix):
                keys += [obj["Key"][len("tier/"):] for obj in page.get("Contents", ())]
            return sorted(keys)
        return sorted(p.relative_to(self.store_root).as_posix() for p in self.store_root.rglob("*")
                      if p.is_file() and not p.relative_to(self.store_root).as_posix().startswith("."))

    def remote_segments(self, topic: str, topic_id: str, partition: int = 0) -> list[tuple]:
        """[(RemoteSegment, SegmentMeta)] of the partition's COPY_FINISHED segments, from the
        newest manifest version in the bucket (parsed with the project's own codecs: these
        tests only need to find a chunk, not to audit the format)."""
        from remote_index.keys import PartitionKeys
        from remote_index.manifest import PartitionManifest
        from remote_index.segment_format import SegmentMeta

        keys = PartitionKeys(topic, topic_id, partition)
        versions = [k for k in self.list_keys(keys.manifest_prefix) if k.endswith(".json")]
        manifest = PartitionManifest.from_bytes(self.get_object(max(versions)))
        return [(segment, SegmentMeta.from_bytes(self.get_object(segment.data_key)[segment.object_bytes:]))
                for segment in manifest.finished_segments]


@pytest.fixture
def start_cold_broker(tmp_path):
    """Start a ColdBroker: `start_cold_broker(moto=moto_server)` or `(store_root=path)`;
    killed at teardown."""
    started: list[ColdBroker] = []

    def start(*, moto=None, store_root: Path | None = None, overrides: dict[str, str] | None = None,
              name: str = "broker") -> ColdBroker:
        broker = ColdBroker.start(tmp_path / name, moto=moto, store_root=store_root, overrides=overrides)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.kill()


@pytest.fixture(scope="module")
def start_module_cold_broker(tmp_path_factory):
    """As `start_cold_broker`, for one broker shared by a module's tests."""
    started: list[ColdBroker] = []

    def start(*, moto=None, store_root: Path | None = None, overrides: dict[str, str] | None = None
              ) -> ColdBroker:
        broker = ColdBroker.start(tmp_path_factory.mktemp("cold-broker"), moto=moto, store_root=store_root,
                                  overrides=overrides)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.kill()


@pytest.fixture(scope="session")
def cold():
    """This module: its helpers (topic_configs, decode_records, wait_for, ...) for tests,
    which cannot import a conftest."""
    import sys

    return sys.modules[__name__]
