"""A struggling or absent bucket, through the fault proxy in front of moto.

Transient faults (500 InternalError, 503 SlowDown, connection resets before and
after moto handled the request, stalled responses) only delay uploads: nothing
acknowledged is lost, no local segment goes before its upload is committed,
and the retries metric shows the struggle. With the bucket gone entirely,
produce and local fetch keep working, `tierbroker_remote_store_unavailable` is 1
and the log says why; when it comes back, uploads catch up.
"""

from __future__ import annotations

import random
import time

from tests.support.broker import BrokerProcess, free_port
from tests.support.polling import wait_for
from tests.support.fault_proxy import FaultProxy
from tests.support.raw_client import RawClient
from tests.tiering.harness import (
    EARLIEST,
    EARLIEST_LOCAL,
    LATEST,
    LATEST_TIERED,
    LocalDeletionWatch,
    MinioReader,
    assert_nothing_lost,
    check_manifest_shape,
    create_topic,
    fetch_records,
    list_offsets,
    local_segment_files,
    partition_dir,
    partition_prefix,
    produce,
    read_manifest,
    s3_overrides,
    scrape,
    tiering_overrides,
)
from tiering.manager import MAX_BACKOFF_S

SEGMENT_BYTES = 20_000
TOPIC_CONFIGS = {"remote.storage.enable": "true", "segment.bytes": str(SEGMENT_BYTES),
                 "local.retention.bytes": "1", "file.delete.delay.ms": "0"}


def _produce(client, topic, rng, batches, tag) -> dict[int, bytes]:
    acked = {}
    for i in range(batches):
        values = [f"{tag}/{i}/{r}|".encode() + rng.randbytes(rng.randint(1000, 3000)) for r in range(2)]
        base = produce(client, topic, 0, values)
        acked.update({base + r: v for r, v in enumerate(values)})
    return acked


def _uploaded_through_active(client, topic, directory) -> bool:
    active = max(local_segment_files(directory))
    return list_offsets(client, topic)[LATEST_TIERED] == active - 1


def _pending_multipart(s3_bucket) -> list:
    client = s3_bucket.server.sync_client()
    return client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", [])


def test_transient_faults_delay_uploads_but_lose_nothing(tmp_path, s3_bucket):
    proxy = FaultProxy(s3_bucket.server.host, s3_bucket.server.port, seed=11).start()
    metrics_port = free_port()
    overrides = tiering_overrides(metrics_port, **{"remote.storage.multipart.threshold.bytes": "15000"}) \
        | s3_overrides(s3_bucket.name, proxy.url)
    broker = BrokerProcess(tmp_path / "broker", overrides).start()
    reader = MinioReader(s3_bucket.server.host, s3_bucket.server.port, s3_bucket.name)  # around the proxy
    topic = "faulty"
    try:
        with RawClient(broker.bootstrap) as client:
            topic_id = create_topic(client, topic, TOPIC_CONFIGS)
            prefix = partition_prefix(topic, topic_id)
            directory = partition_dir(broker.data_dir, topic)
            watch = LocalDeletionWatch(directory, reader, prefix)

            # Both of botocore's attempts at the first manifest write fail, so the uploader's
            # own retry runs in every run: botocore absorbs most of the random faults below
            # (once in a while all of them).
            proxy.inject("internal_error", next=2, method="PUT", path="/manifest/")
            proxy.inject("internal_error", fraction=0.08)
            proxy.inject("slow_down", fraction=0.08)
            proxy.inject("reset", fraction=0.04)
            proxy.inject("reset", fraction=0.04, forward=True)  # moto acted; the answer is lost
            proxy.inject("stall", fraction=0.04, seconds=0.5)
            rng = random.Random(12)
            acked: dict[int, bytes] = {}
            for round_ in range(10):
                acked |= _produce(client, topic, rng, 6, f"r{round_}")
                watch.check()
                time.sleep(0.2)
            assert len(local_segment_files(directory)) + len(watch.gone) >= 10

            def caught_up():
                watch.check()
                active = max(local_segment_files(directory))
                offsets = list_offsets(client, topic)
                return offsets[LATEST_TIERED] == active - 1 and offsets[EARLIEST_LOCAL] == active

            wait_for(caught_up, 120, "uploads to catch up through the faults", interval=0.05)
            injected = dict(proxy.injected)
            proxy.clear()
            assert all(injected.get(kind) for kind in ("internal_error", "slow_down", "reset", "stall")), injected

            metrics = scrape(metrics_port)
            assert metrics.get("tierbroker_remote_store_retries_total", operation="manifest") >= 1
            view = read_manifest(reader, prefix)
            check_manifest_shape(view, prefix)
            assert view.finished[0]["base_offset"] == 0
            found = assert_nothing_lost(acked, reader, prefix, directory)
            assert found["remote"] > 0
            offsets = list_offsets(client, topic)
            active = max(local_segment_files(directory))
            assert offsets == {EARLIEST: 0, EARLIEST_LOCAL: active, LATEST_TIERED: active - 1,
                               LATEST: max(acked) + 1}
            assert watch.check() <= {s["base_offset"] for s in view.finished}
            assert sorted(local_segment_files(directory)) == [active]

            # Abandoned attempts leave nothing once the faults stop: every object under
            # segments/ is named by a COPY_FINISHED entry, no multipart upload is left.
            def clean():
                view = read_manifest(reader, prefix)
                stray = set(reader.list(prefix + "segments/")) - view.named_keys()
                return not stray and len(view.segments) == len(view.finished) and not _pending_multipart(s3_bucket)

            def leftovers():
                view = read_manifest(reader, prefix)
                return (f"stray objects {sorted(set(reader.list(prefix + 'segments/')) - view.named_keys())}, "
                        f"unfinished entries {[s for s in view.segments if s['state'] != 'COPY_FINISHED']}, "
                        f"multipart uploads {_pending_multipart(s3_bucket)}")

            # The pass that collects them may be one backoff away: a pass that failed just
            # before the faults stopped waits up to MAX_BACKOFF_S before the next.
            wait_for(clean, MAX_BACKOFF_S + 30, "garbage collection of abandoned attempts", describe=leftovers)
    finally:
        broker.kill()
        proxy.stop()


def test_bucket_down_keeps_produce_and_fetch_working_then_recovers(tmp_path, s3_bucket):
    proxy_port = free_port()
    metrics_port = free_port()
    overrides = tiering_overrides(metrics_port) | s3_overrides(s3_bucket.name, f"http://127.0.0.1:{proxy_port}")
    # The endpoint is a closed port from the start: the bucket is down before the first pass.
    broker = BrokerProcess(tmp_path / "broker", overrides).start()
    reader = MinioReader(s3_bucket.server.host, s3_bucket.server.port, s3_bucket.name)
    topic = "outage"
    rng = random.Random(13)
    proxy = None
    try:
        with RawClient(broker.bootstrap) as client:
            topic_id = create_topic(client, topic, TOPIC_CONFIGS)
            prefix = partition_prefix(topic, topic_id)
            directory = partition_dir(broker.data_dir, topic)
            watch = LocalDeletionWatch(directory, reader, prefix)
            acked = _produce(client, topic, rng, 20, "down-1")
            _assert_down_but_serving(broker, client, topic, directory, metrics_port, acked, watch, outage_began=0)

            # Up: uploads catch up, the gauge clears, local retention follows the uploads.
            proxy = FaultProxy(s3_bucket.server.host, s3_bucket.server.port, listen_port=proxy_port).start()
            wait_for(lambda: watch.check() is not None and _uploaded_through_active(client, topic, directory),
                     60, "uploads after the bucket came back")
            wait_for(lambda: scrape(metrics_port).get("tierbroker_remote_store_unavailable") == 0, 30,
                     "the unavailable gauge to clear")
            assert "object store reachable again" in broker.log_since_start()
            wait_for(lambda: list_offsets(client, topic)[EARLIEST_LOCAL] == max(local_segment_files(directory)),
                     30, "local retention of the uploaded segments")
            watch.check()

            # Down again while running (the proxy stops: connections refused), then back.
            outage_began = len(broker.log_since_start())
            proxy.stop()
            proxy = None
            acked |= _produce(client, topic, rng, 20, "down-2")
            _assert_down_but_serving(broker, client, topic, directory, metrics_port, acked, watch, outage_began)
            proxy = FaultProxy(s3_bucket.server.host, s3_bucket.server.port, listen_port=proxy_port).start()
            wait_for(lambda: watch.check() is not None and _uploaded_through_active(client, topic, directory),
                     60, "uploads after the second outage")
            wait_for(lambda: scrape(metrics_port).get("tierbroker_remote_store_unavailable") == 0, 30,
                     "the unavailable gauge to clear again")

            view = read_manifest(reader, prefix)
            check_manifest_shape(view, prefix)
            assert view.finished[0]["base_offset"] == 0
            assert_nothing_lost(acked, reader, prefix, directory)
            offsets = list_offsets(client, topic)
            assert offsets[EARLIEST] == 0 and offsets[LATEST] == max(acked) + 1
    finally:
        broker.kill()
        if proxy is not None:
            proxy.stop()


def _assert_down_but_serving(broker, client, topic, directory, metrics_port, acked, watch,
                             outage_began: int) -> None:
    """With the bucket down: the gauge and the log say so, nothing un-uploaded is
    deleted locally, and produce and local fetch work.

    `outage_began` is the length of the broker's log when the bucket went away. The
    broker may notice before this is called (its first failed pass can land while
    the test is still producing), so the log is read from there, not from now."""
    def log_since_outage() -> str:
        return broker.log_since_start()[outage_began:]

    wait_for(lambda: scrape(metrics_port).get("tierbroker_remote_store_unavailable") == 1, 30,
             "tierbroker_remote_store_unavailable to be 1")
    wait_for(lambda: "object store unavailable" in log_since_outage(), 10,
             "the broker log to say the object store is unavailable")
    before = list_offsets(client, topic)
    remote_end = before[LATEST_TIERED] + 1
    not_uploaded = [b for b in sorted(local_segment_files(directory)) if b >= remote_end]
    assert len(not_uploaded) >= 3, "expected several closed segments waiting for the bucket"
    # Produce and fetch are unaffected.
    more = {}
    base = produce(client, topic, 0, [b"while-down-%d" % i for i in range(3)])
    more.update({base + i: b"while-down-%d" % i for i in range(3)})
    acked.update(more)
    fetched = dict(fetch_records(client, topic, 0, before[EARLIEST_LOCAL]))
    assert fetched and all(acked[o] == v for o, v in fetched.items())
    assert dict(fetch_records(client, topic, 0, base)) == more
    # Failed passes go on (the gauge stays 1); every waiting segment is still on disk.
    wait_for(lambda: "failed again" in log_since_outage(), 30, "a second failed pass")
    assert scrape(metrics_port).get("tierbroker_remote_store_unavailable") == 1
    assert set(not_uploaded) <= set(local_segment_files(directory))
    watch.check()
    after = list_offsets(client, topic)
    assert after[LATEST_TIERED] == before[LATEST_TIERED]
    assert after[EARLIEST_LOCAL] == before[EARLIEST_LOCAL]


def test_lost_answers_lose_nothing_and_leave_nothing(tmp_path, s3_bucket):
    """moto acts on a request, the broker never hears so. A COPY_FINISHED manifest
    version that landed makes the retry find its version taken: the segment is
    committed, so its objects must stay and uploads go on. A CreateMultipartUpload
    that landed leaves an upload the broker never learnt of: it must not stay."""
    proxy = FaultProxy(s3_bucket.server.host, s3_bucket.server.port).start()
    metrics_port = free_port()
    overrides = tiering_overrides(metrics_port, **{"remote.storage.multipart.threshold.bytes": "15000"}) \
        | s3_overrides(s3_bucket.name, proxy.url)
    broker = BrokerProcess(tmp_path / "broker", overrides).start()
    reader = MinioReader(s3_bucket.server.host, s3_bucket.server.port, s3_bucket.name)
    topic = "lost-answer"
    manifest_puts = []
    creates = []

    def copy_finished_commit(method: str, target: str) -> bool:
        if method != "PUT" or "/manifest/0" not in target:
            return False
        manifest_puts.append(target)
        return len(manifest_puts) in (2, 4)  # the COPY_FINISHED commits of the first two uploads

    def create_multipart(method: str, target: str) -> bool:
        if method != "POST" or not target.endswith("?uploads"):
            return False
        creates.append(target)
        return len(creates) in (1, 3)

    try:
        with RawClient(broker.bootstrap) as client:
            topic_id = create_topic(client, topic, TOPIC_CONFIGS)
            prefix = partition_prefix(topic, topic_id)
            directory = partition_dir(broker.data_dir, topic)
            watch = LocalDeletionWatch(directory, reader, prefix)
            proxy.inject("reset", match=copy_finished_commit, forward=True)
            proxy.inject("reset", match=create_multipart, forward=True)
            rng = random.Random(14)
            acked = _produce(client, topic, rng, 30, "lost")

            def caught_up():
                watch.check()
                active = max(local_segment_files(directory))
                offsets = list_offsets(client, topic)
                return offsets[LATEST_TIERED] == active - 1 and offsets[EARLIEST_LOCAL] == active

            wait_for(caught_up, 60, "uploads to go on after the lost answers", interval=0.05)
            assert proxy.injected["reset"] == 4 and len(creates) > 3
            view = read_manifest(reader, prefix)
            check_manifest_shape(view, prefix)
            assert view.finished[0]["base_offset"] == 0
            assert_nothing_lost(acked, reader, prefix, directory)
            assert set(reader.list(prefix + "segments/")) == view.named_keys()
            wait_for(lambda: not _pending_multipart(s3_bucket), 10, "no multipart upload left",
                     describe=lambda: _pending_multipart(s3_bucket))
    finally:
        broker.kill()
        proxy.stop()


def test_restart_with_the_bucket_down_still_knows_the_remote_range(tmp_path, s3_bucket):
    metrics_port = free_port()
    overrides = tiering_overrides(metrics_port) | s3_overrides(s3_bucket.name, s3_bucket.server.url)
    broker = BrokerProcess(tmp_path / "broker", overrides).start()
    topic = "restart-down"
    try:
        with RawClient(broker.bootstrap) as client:
            create_topic(client, topic, TOPIC_CONFIGS)
            _produce(client, topic, random.Random(15), 20, "before")
            directory = partition_dir(broker.data_dir, topic)
            before = wait_for(lambda: (o := list_offsets(client, topic))[EARLIEST_LOCAL] == max(
                local_segment_files(directory)) > 0 and o, 30, "uploads and local retention")
            assert before[EARLIEST] == 0
        broker.kill()
        broker.overrides["remote.storage.s3.endpoint.url"] = f"http://127.0.0.1:{free_port()}"
        broker.start()
        with RawClient(broker.bootstrap) as client:
            wait_for(lambda: scrape(metrics_port).get("tierbroker_remote_store_unavailable") == 1, 30,
                     "the broker to notice the bucket is down")
            assert list_offsets(client, topic) == before
            # Reads below the local log get a retriable error while the bucket is away,
            # never OFFSET_OUT_OF_RANGE (which would make consumers reset past the data).
            reply = client.request("Fetch", 11, {
                "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
                "session_id": 0, "session_epoch": -1, "rack_id": "", "forgotten_topics_data": [],
                "topics": [{"topic": topic, "partitions": [
                    {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "log_start_offset": -1,
                     "partition_max_bytes": 1 << 20}]}]})
            assert reply.responses[0].partitions[0].error_code == 56  # KAFKA_STORAGE_ERROR
    finally:
        broker.kill()
