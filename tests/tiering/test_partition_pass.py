"""One partition's tiering pass in process, against the local-directory store: how
many manifest writes a run of uploads costs, and what a pass interrupted between
two uploads leaves behind.

The end-to-end proof that uploads work lives in test_upload_e2e.py (a broker
process against moto's S3 server); this module pins down the request pattern
that the upload benchmark depends on, which an end-to-end run cannot see."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))

from record_batches import batch_of_size  # noqa: E402

from broker.log import LogConfig, PartitionLog  # noqa: E402
from broker.protocol.records import validate_batches  # noqa: E402
from remote_index.keys import DATA_SUFFIX, parse_manifest_key  # noqa: E402
from remote_index.manifest import PartitionManifest  # noqa: E402
from remote_index.rate_limit import UNLIMITED, TokenBucket  # noqa: E402
from remote_index.segment_format import SegmentMeta, decode_chunk  # noqa: E402
from remote_index.segment_state import RemoteSegmentState as State  # noqa: E402
from remote_index.store import LocalDirectoryStore, StoreError  # noqa: E402
from tiering.metrics import TieringMetrics  # noqa: E402
from tiering.partition_tier import PartitionTier, TopicPartitionRef  # noqa: E402
from tiering.policy import TieringSettings, TierPolicy  # noqa: E402
from tiering import upload_run  # noqa: E402
from tiering.uploader import SegmentUploader  # noqa: E402

SEGMENT_BYTES = 64 << 10
BATCH_BYTES = 16 << 10
POLICY = TierPolicy(remote_enabled=True, copy_disabled=False, retention_ms=-1, retention_bytes=-1,
                    local_retention_ms=-1, local_retention_bytes=-1, chunk_bytes=32 << 10, chunk_compression="zstd")


class RecordingStore(LocalDirectoryStore):
    """Counts manifest version writes (`on_manifest_put` runs before each one) and
    segment data writes (`on_data_put` runs after each one; the `fail_data_put`-th
    one fails)."""

    def __init__(self, root):
        super().__init__(root)
        self.manifest_puts = 0
        self.on_manifest_put = None
        self.data_puts = 0
        self.data_bodies = []  # what each data write was given
        self.on_data_put = None
        self.fail_data_put: int | None = None

    async def put(self, key, data, *, if_none_match=False):
        if parse_manifest_key(key) is not None:
            self.manifest_puts += 1
            if self.on_manifest_put is not None:
                self.on_manifest_put()
        if key.endswith(DATA_SUFFIX):
            self.data_puts += 1
            self.data_bodies.append(data)
            if self.data_puts == self.fail_data_put:
                raise StoreError("injected failure", key)
            info = await super().put(key, data, if_none_match=if_none_match)
            if self.on_data_put is not None:
                self.on_data_put()
            return info
        return await super().put(key, data, if_none_match=if_none_match)


@pytest.fixture
def plog(tmp_path):
    log = PartitionLog.open(tmp_path / "orders-0", LogConfig(segment_bytes=SEGMENT_BYTES), now_ms=int(time.time() * 1000))
    yield log
    log.close()


def fill(log: PartitionLog, closed_segments: int) -> None:
    """Append until `closed_segments` segments are closed (each holds 4 batches)."""
    while len(log.segments) <= closed_segments:
        buf = bytearray(batch_of_size(BATCH_BYTES, timestamp=int(time.time() * 1000)))
        log.append(buf, validate_batches(buf), int(time.time() * 1000))


def make_tier(tmp_path, log: PartitionLog) -> tuple[PartitionTier, SegmentUploader, RecordingStore]:
    store = RecordingStore(tmp_path / "bucket")
    metrics = TieringMetrics(CollectorRegistry())
    ref = TopicPartitionRef("orders", str(uuid.uuid4()), 0)
    tier = PartitionTier(ref, log, POLICY, store, False, metrics)
    uploader = SegmentUploader(store, TokenBucket(UNLIMITED), TieringSettings(), metrics)
    return tier, uploader, store


def bucket_segment_keys(store: RecordingStore, tier: PartitionTier) -> set[str]:
    async def listing():
        return {info.key for info in await store.list(tier.manifests.keys.segments_prefix)}
    return asyncio.run(listing())


def manifest_version(store: RecordingStore, tier: PartitionTier, version: int):
    async def read():
        return PartitionManifest.from_bytes(await store.get(tier.manifests.keys.manifest_key(version)))
    return asyncio.run(read())


def test_a_run_of_uploads_starts_them_in_one_write_and_finishes_them_behind_the_objects(tmp_path, plog,
                                                                                        monkeypatch):
    # However slow this machine, sent segments wait for company (the run's end
    # still commits at once): the count of writes below is exact.
    monkeypatch.setattr(upload_run, "FINISH_LINGER_S", 60.0)
    fill(plog, 5)
    tier, uploader, store = make_tier(tmp_path, plog)
    asyncio.run(tier.run_pass(uploader, asyncio.Semaphore(1)))
    manifest = tier.manifest
    assert [s.state for s in manifest.segments] == [State.COPY_FINISHED] * 5
    assert manifest.copied_end_offset == plog.segments[5].base_offset
    first = manifest_version(store, tier, 1)
    assert [s.state for s in first.segments] == [State.COPY_STARTED] * 5
    # One write starts all five; the finishes share writes, FINISH_BATCH at a time,
    # the last ones when the run ends. Per segment it was two writes once.
    assert store.manifest_puts == 1 + -(-5 // upload_run.FINISH_BATCH) and manifest.version == store.manifest_puts
    assert not tier.needs_gc and tier.last_error is None


def test_a_run_reuses_the_buffers_of_sent_objects_and_holds_none_after(tmp_path, plog):
    """Each object goes out in the buffer of the one sent before it (no fresh memory
    to zero and fault in), every object still decodes to its local segment, and
    once the run is over the uploader keeps no buffer."""
    fill(plog, 3)
    tier, uploader, store = make_tier(tmp_path, plog)
    asyncio.run(tier.run_pass(uploader, asyncio.Semaphore(1)))
    first, *later = store.data_bodies
    assert len(later) == 2 and all(body is first for body in later)
    assert len(uploader.spare_streams) == 0

    async def remote_data(entry) -> bytes:
        obj = await store.get(entry.data_key)
        meta = SegmentMeta.from_bytes(obj[entry.object_bytes:entry.object_bytes + entry.meta_bytes],
                                      expected_crc32c=entry.meta_crc32c)
        return b"".join(decode_chunk(obj[c.object_offset:c.object_end], c, meta.compression) for c in meta.chunks)

    assert len(tier.manifest.segments) == 3
    for entry, local in zip(tier.manifest.segments, plog.segments[:3], strict=True):
        assert asyncio.run(remote_data(entry)) == local.path.read_bytes()


def test_a_pass_stopped_between_uploads_leaves_the_started_attempts_to_gc(tmp_path, plog):
    """A rollback starting once segment 1's data is sent: the run sends nothing more,
    commits what it sent, the attempt it started but never sent stays COPY_STARTED,
    the partition is marked for garbage collection, and the next pass drops it
    before uploading again under fresh ids."""
    fill(plog, 3)
    tier, uploader, store = make_tier(tmp_path, plog)

    def start_rollback_after_the_second_segment():
        if store.data_puts == 2:
            tier.rolling_back = True

    store.on_data_put = start_rollback_after_the_second_segment
    asyncio.run(tier.run_pass(uploader, asyncio.Semaphore(1)))
    states = [s.state for s in tier.manifest.segments]
    assert states == [State.COPY_FINISHED, State.COPY_FINISHED, State.COPY_STARTED]
    leftovers = {s.segment_id for s in tier.manifest.segments if s.state is State.COPY_STARTED}
    assert tier.needs_gc

    store.on_data_put = None
    tier.rolling_back = False
    asyncio.run(tier.run_pass(uploader, asyncio.Semaphore(1)))
    segments = tier.manifest.segments
    assert [s.state for s in segments] == [State.COPY_FINISHED] * 3
    assert not leftovers & {s.segment_id for s in segments}
    assert tier.manifest.copied_end_offset == plog.segments[3].base_offset
    assert bucket_segment_keys(store, tier) == {k for s in segments for k in s.object_keys}


def test_a_failed_upload_keeps_what_was_sent_and_gcs_the_rest(tmp_path, plog):
    """The data PUT of segment 2 fails: segment 1 is still committed, segment 2's
    attempt is abandoned (DELETE_STARTED, then DELETE_FINISHED: it leaves the
    manifest), segment 3's started attempt waits for garbage collection."""
    fill(plog, 3)
    tier, uploader, store = make_tier(tmp_path, plog)
    store.fail_data_put = 2
    with pytest.raises(StoreError):
        asyncio.run(tier.run_pass(uploader, asyncio.Semaphore(1)))
    first, third = tier.manifest.segments
    assert first.state is State.COPY_FINISHED and first.base_offset == 0
    assert third.state is State.COPY_STARTED and third.base_offset == plog.segments[2].base_offset
    assert tier.needs_gc and "injected failure" in tier.last_error
    assert plog.remote_end_offset == plog.segments[1].base_offset

    asyncio.run(tier.run_pass(uploader, asyncio.Semaphore(1)))
    segments = tier.manifest.segments
    assert [s.state for s in segments] == [State.COPY_FINISHED] * 3
    assert third.segment_id not in {s.segment_id for s in segments}
    assert bucket_segment_keys(store, tier) == {k for s in segments for k in s.object_keys}
