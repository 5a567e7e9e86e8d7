"""Retention across the tiers, against a broker subprocess.

Local retention deletes a local segment only once its manifest entry is
COPY_FINISHED: with uploads paused nothing goes, however old; once they resume,
every local segment seen gone is already committed in the manifest. Total
retention deletes remote segments manifest first (a COPY_FINISHED entry never
names a missing object) and moves the log start offset. ListOffsets shows
both: earliest (-2), earliest-local (-4), latest-tiered (-5), latest (-1).
"""

from __future__ import annotations

import random

from tests.support.broker import BrokerProcess, free_port
from tests.support.polling import wait_for
from tests.support.raw_client import RawClient
from tests.tiering.harness import (
    EARLIEST,
    EARLIEST_LOCAL,
    LATEST,
    LATEST_TIERED,
    DirectoryReader,
    MinioReader,
    alter_topic,
    check_manifest_shape,
    consistent_snapshot,
    create_topic,
    decode_remote_segment,
    fetch_records,
    iter_records,
    list_offsets,
    local_segment_files,
    now_ms,
    partition_dir,
    partition_prefix,
    produce,
    read_manifest,
    s3_overrides,
    scrape,
    tiering_overrides,
)

SEGMENT_BYTES = 20_000


def _produce_values(client, topic, rng, batches, size=2500, timestamp=None) -> dict[int, bytes]:
    acked = {}
    for i in range(batches):
        values = [f"{topic}/{i}/{r}|".encode() + rng.randbytes(size) for r in range(2)]
        base = produce(client, topic, 0, values, timestamp=timestamp)
        acked.update({base + r: v for r, v in enumerate(values)})
    return acked


def test_local_retention_deletes_only_committed_uploads(tmp_path):
    metrics_port = free_port()
    root = tmp_path / "remote-store"
    broker = BrokerProcess(tmp_path / "broker",
                           tiering_overrides(metrics_port, **{"remote.storage.url": f"file://{root}"})).start()
    reader = DirectoryReader(root)
    topic = "local-ret"
    try:
        with RawClient(broker.bootstrap) as client:
            topic_id = create_topic(client, topic, {
                "remote.storage.enable": "true", "remote.log.copy.disable": "true",
                "segment.bytes": str(SEGMENT_BYTES), "local.retention.ms": "1", "local.retention.bytes": "1",
                "file.delete.delay.ms": "0"})
            prefix = partition_prefix(topic, topic_id)
            directory = partition_dir(broker.data_dir, topic)
            acked = _produce_values(client, topic, random.Random(2), 30)
            closed = sorted(local_segment_files(directory))[:-1]
            assert len(closed) >= 5

            # Uploads paused: passes run (the copy-lag gauge counts every closed segment),
            # local retention is past due for all of them, and still nothing is deleted.
            labels = {"topic": topic, "partition": "0"}
            # (The gauge is set at the end of a pass, after its local retention step.)
            wait_for(lambda: scrape(metrics_port).get("tierbroker_remote_copy_lag_segments", **labels)
                     == len(closed), 30, "a tiering pass over every closed segment")
            assert sorted(local_segment_files(directory))[:-1] == closed
            assert read_manifest(reader, prefix) is None or not read_manifest(reader, prefix).finished
            offsets = list_offsets(client, topic)
            assert offsets == {EARLIEST: 0, EARLIEST_LOCAL: 0, LATEST_TIERED: -1, LATEST: max(acked) + 1}

            # Resume uploads; watch the directory: a segment seen gone must already be
            # COPY_FINISHED in the manifest (which is committed before the delete).
            alter_topic(client, topic, {"remote.log.copy.disable": "false"})
            gone_checked: set[int] = set()

            def all_gone():
                present = set(local_segment_files(directory))
                gone = set(closed) - present
                if gone - gone_checked:
                    view = read_manifest(reader, prefix)
                    finished = {s["base_offset"] for s in view.finished}
                    assert gone - gone_checked <= finished, \
                        f"local segments {sorted(gone - finished)} deleted before their upload committed"
                    gone_checked.update(gone)
                return gone == set(closed)

            wait_for(all_gone, 60, "local retention of every uploaded segment", interval=0.02)
            view = read_manifest(reader, prefix)
            check_manifest_shape(view, prefix)
            assert [s["base_offset"] for s in view.finished] == closed
            active = max(local_segment_files(directory))
            offsets = list_offsets(client, topic)
            assert offsets == {EARLIEST: 0, EARLIEST_LOCAL: active, LATEST_TIERED: active - 1,
                               LATEST: max(acked) + 1}

            # The remote copies hold the deleted data; the local tail still serves fetches.
            remote = {}
            for entry in view.finished:
                remote.update({o: v for o, _, v in iter_records(decode_remote_segment(reader, entry).data)})
            assert {o: v for o, v in acked.items() if o < active} == remote
            fetched = dict(fetch_records(client, topic, 0, active))
            assert fetched and all(acked[o] == v for o, v in fetched.items())
            assert scrape(metrics_port).get("tierbroker_remote_local_deleted_segments_total", topic=topic) \
                == len(closed)
    finally:
        broker.kill()


def test_total_retention_deletes_remote_segments_manifest_first(tmp_path, s3_bucket):
    metrics_port = free_port()
    overrides = tiering_overrides(metrics_port) | s3_overrides(s3_bucket.name, s3_bucket.server.url)
    broker = BrokerProcess(tmp_path / "broker", overrides).start()
    reader = MinioReader(s3_bucket.server.host, s3_bucket.server.port, s3_bucket.name)
    topic = "total-ret"
    retention_bytes = 5 * SEGMENT_BYTES
    local_retention_bytes = 2 * SEGMENT_BYTES
    try:
        with RawClient(broker.bootstrap) as client:
            topic_id = create_topic(client, topic, {
                "remote.storage.enable": "true", "segment.bytes": str(SEGMENT_BYTES),
                "retention.bytes": str(retention_bytes), "local.retention.bytes": str(local_retention_bytes)})
            prefix = partition_prefix(topic, topic_id)
            directory = partition_dir(broker.data_dir, topic)
            rng = random.Random(3)
            acked: dict[int, bytes] = {}
            snapshots = 0
            for _ in range(12):
                acked |= _produce_values(client, topic, rng, 8)
                snapshots += _check_manifest_first(reader, prefix)

            def settled():
                """Everything uploaded, nothing half done, and retention has nothing left to do."""
                view, listing = consistent_snapshot(reader, prefix)
                active = max(local_segment_files(directory))
                if view is None or view.copied_end != active or len(view.finished) != len(view.segments):
                    return None
                finished = view.finished
                total = sum(s["size_bytes"] for s in finished) + local_segment_files(directory)[active].stat().st_size
                if total - finished[0]["size_bytes"] >= retention_bytes:
                    return None
                return view, listing

            view, listing = wait_for(settled, 60, "uploads and total retention to settle")
            check_manifest_shape(view, prefix)
            first = view.finished[0]
            active = max(local_segment_files(directory))
            offsets = list_offsets(client, topic)
            assert first["base_offset"] > 0, "total retention deleted nothing"
            assert offsets[EARLIEST] == view.log_start_offset == first["base_offset"]
            assert offsets[EARLIEST_LOCAL] >= offsets[EARLIEST]
            assert offsets[LATEST_TIERED] == active - 1 == view.finished[-1]["last_offset"]
            assert offsets[LATEST] == max(acked) + 1

            # Deleted segments left no objects; retention did not overshoot.
            assert set(listing) == view.named_keys()
            kept = sum(s["size_bytes"] for s in view.finished) + local_segment_files(directory)[active].stat().st_size
            assert kept >= retention_bytes
            for entry in view.finished:
                decode_remote_segment(reader, entry, listing)

            # Local retention: only uploaded segments, none below the local log start.
            local = sorted(local_segment_files(directory))
            assert local[0] == offsets[EARLIEST_LOCAL]
            local_bytes = sum(p.stat().st_size for p in local_segment_files(directory).values())
            oldest_local = local_segment_files(directory)[local[0]].stat().st_size
            assert local_bytes - oldest_local < local_retention_bytes or len(local) == 1

            metrics = scrape(metrics_port)
            uploaded = metrics.get("tierbroker_remote_upload_segments_total", topic=topic)
            assert metrics.get("tierbroker_remote_deleted_segments_total", topic=topic) == uploaded - len(view.finished)
            assert snapshots > 0
    finally:
        broker.kill()


def _check_manifest_first(reader, prefix) -> int:
    """One consistent look at the bucket: every COPY_FINISHED entry's objects exist."""
    view, listing = consistent_snapshot(reader, prefix)
    if view is None:
        return 0
    check_manifest_shape(view, prefix)
    missing = view.named_keys() - set(listing)
    assert not missing, f"manifest v{view.version} names deleted objects {sorted(missing)}"
    return 1


def test_retention_ms_expires_old_data_across_tiers(tmp_path):
    metrics_port = free_port()
    root = tmp_path / "remote-store"
    broker = BrokerProcess(tmp_path / "broker",
                           tiering_overrides(metrics_port, **{"remote.storage.url": f"file://{root}"})).start()
    reader = DirectoryReader(root)
    topic = "aged"
    try:
        with RawClient(broker.bootstrap) as client:
            topic_id = create_topic(client, topic, {
                "remote.storage.enable": "true", "segment.bytes": str(SEGMENT_BYTES),
                "retention.ms": str(3600_000)})
            prefix = partition_prefix(topic, topic_id)
            rng = random.Random(4)
            old = _produce_values(client, topic, rng, 20, timestamp=now_ms() - 2 * 3600_000)
            new = _produce_values(client, topic, rng, 20)
            first_new = min(new)

            def expired():
                # Retention deletes segment by segment over several passes: wait until no
                # remote segment is past retention.ms and the broker agrees with the
                # manifest; no record inside retention.ms may go at any point.
                offsets = list_offsets(client, topic)
                assert offsets[EARLIEST] <= first_new, "retention.ms deleted records that are not expired"
                view = read_manifest(reader, prefix)
                done = (offsets[EARLIEST] > 0 and offsets[LATEST_TIERED] >= first_new
                        and view and view.finished and len(view.segments) == len(view.finished)
                        and all(s["max_timestamp"] > now_ms() - 3600_000 for s in view.finished)
                        and offsets[EARLIEST] == view.log_start_offset)
                return done and (offsets, view)

            offsets, view = wait_for(expired, 60, "old segments to expire in both tiers")
            assert offsets[EARLIEST] == view.log_start_offset == view.finished[0]["base_offset"]
            assert offsets[EARLIEST_LOCAL] >= offsets[EARLIEST]
            assert set(reader.list(prefix + "segments/")) == view.named_keys()
            fetched = dict(fetch_records(client, topic, 0, max(offsets[EARLIEST_LOCAL], first_new)))
            assert fetched and all(new[o] == v for o, v in fetched.items())
            assert len(old) > 0
    finally:
        broker.kill()
