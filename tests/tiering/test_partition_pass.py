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
from remote_index.rate_limit import UNLIMITED, TokenBucket  # noqa: E402
from remote_index.segment_state import RemoteSegmentState as State  # noqa: E402
from remote_index.store import LocalDirectoryStore, StoreError  # noqa: E402
from tiering.metrics import TieringMetrics  # noqa: E402
from tiering.partition_tier import PartitionTier, TopicPartitionRef  # noqa: E402
from tiering.policy import TieringSettings, TierPolicy  # noqa: E402
from tiering.uploader import SegmentUploader  # noqa: E402

SEGMENT_BYTES = 64 << 10
BATCH_BYTES = 16 << 10
POLICY = TierPolicy(remote_enabled=True, copy_disabled=False, retention_ms=-1, retention_bytes=-1,
                    local_retention_ms=-1, local_retention_bytes=-1, chunk_bytes=32 << 10, chunk_compression="zstd")


class RecordingStore(LocalDirectoryStore):
    """Counts manifest version writes (`on_manifest_put` runs before each one) and
    segment data writes (the `fail_data_put`-th one fails)."""

    def __init__(self, root):
        super().__init__(root)
        self.manifest_puts = 0
        self.on_manifest_put = None
        self.data_puts = 0
        self.fail_data_put: int | None = None

    async def put(self, key, data, *, if_none_match=False):
        if parse_manifest_key(key) is not None:
            self.manifest_puts += 1
            if self.on_manifest_put is not None:
                self.on_manifest_put()
        if key.endswith(DATA_SUFFIX):
            self.data_puts += 1
            if self.data_puts == self.fail_data_put:
                raise StoreError("injected failure", key)
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


def test_a_run_of_uploads_writes_one_manifest_version_per_segment(tmp_path, plog):
    fill(plog, 5)
    tier, uploader, store = make_tier(tmp_path, plog)
    asyncio.run(tier.run_pass(uploader, asyncio.Semaphore(1)))
    manifest = tier.manifest
    assert [s.state for s in manifest.segments] == [State.COPY_FINISHED] * 5
    assert manifest.copied_end_offset == plog.segments[5].base_offset
    # Segment 1's COPY_STARTED, then one write per segment that also starts the next.
    assert store.manifest_puts == 6 and manifest.version == 6
    assert not tier.needs_gc


def test_a_pass_stopped_between_uploads_leaves_the_next_attempt_to_gc(tmp_path, plog):
    """A rollback starting while segment 1 commits: the commit also started segment 2's
    attempt, which never uploads. The pass stops, marks the partition for garbage
    collection, and the next pass drops the entry before uploading under a fresh id."""
    fill(plog, 3)
    tier, uploader, store = make_tier(tmp_path, plog)

    def start_rollback_at_the_second_write():
        if store.manifest_puts == 2:
            tier.rolling_back = True

    store.on_manifest_put = start_rollback_at_the_second_write
    asyncio.run(tier.run_pass(uploader, asyncio.Semaphore(1)))
    first, second = tier.manifest.segments
    assert (first.state, second.state) == (State.COPY_FINISHED, State.COPY_STARTED)
    assert tier.needs_gc
    assert not list((store.root / second.data_key).parent.glob(Path(second.data_key).name + "*"))

    store.on_manifest_put = None
    tier.rolling_back = False
    asyncio.run(tier.run_pass(uploader, asyncio.Semaphore(1)))
    segments = tier.manifest.segments
    assert [s.state for s in segments] == [State.COPY_FINISHED] * 3
    assert second.segment_id not in {s.segment_id for s in segments}
    assert tier.manifest.copied_end_offset == plog.segments[3].base_offset


def test_a_failed_upload_leaves_no_started_attempt_behind(tmp_path, plog):
    """The data PUT of segment 2 fails: segment 1 stays committed, segment 2's attempt
    is abandoned (DELETE_STARTED, then DELETE_FINISHED: it leaves the manifest), and
    segment 3's attempt was never started because segment 2 never committed."""
    fill(plog, 3)
    tier, uploader, store = make_tier(tmp_path, plog)
    store.fail_data_put = 2
    with pytest.raises(StoreError):
        asyncio.run(tier.run_pass(uploader, asyncio.Semaphore(1)))
    (only,) = tier.manifest.segments
    assert only.state is State.COPY_FINISHED and only.base_offset == 0
    assert tier.needs_gc and "injected failure" in tier.last_error

    asyncio.run(tier.run_pass(uploader, asyncio.Semaphore(1)))
    assert [s.state for s in tier.manifest.segments] == [State.COPY_FINISHED] * 3
