"""SIGKILL the broker at seeded random moments while it uploads (single PUT and
multipart), garbage-collects and applies local and total retention; after every
kill, and again after the last restart, the bucket and the local log must agree:

- the manifest loads: sealed, its COPY_FINISHED segments contiguous and
  non-overlapping, every object it names for them present and verifying chunk by
  chunk (read independently through minio);
- no acknowledged record is lost: every acked offset at or above the log start
  offset is in a live local segment or in a COPY_FINISHED remote segment, with
  the value it was acknowledged with;
- after a restart, once the first passes have run, nothing is left over: every
  object under the partition's segments/ prefix is named by a COPY_FINISHED
  entry, no entry is half-way, and no multipart upload is unfinished.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from remote_index.manifest import PartitionManifest
from tests.support.broker import BrokerProcess, free_port
from tests.support.polling import wait_for
from tests.support.raw_client import RawClient
from tests.tiering.harness import (
    EARLIEST,
    EARLIEST_LOCAL,
    LATEST,
    LATEST_TIERED,
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
    tiering_overrides,
)

SEED = 20240611
TRIALS = 16
SEGMENT_BYTES = 20_000
MULTIPART_THRESHOLD = 16_000  # segments roll at ~14-20 KB: both single PUT and multipart
COPY_BYTES_PER_S = 150_000
RETENTION_BYTES = 140_000
LOCAL_RETENTION_BYTES = 30_000
SETTLED_FOR_S = 2.0  # ten tiering passes (remote.log.manager.task.interval.ms=200)
TOPICS = {
    "keep": {"retention.ms": "-1"},  # nothing may ever be missing
    "trim": {"retention.bytes": str(RETENTION_BYTES)},  # total retention deletes in the bucket
}


class Producer(threading.Thread):
    """acks=-1 batches to both topics until the broker dies; remembers what was acknowledged."""

    def __init__(self, bootstrap: str, rng: random.Random, acked: dict[str, dict[int, bytes]], trial: int):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.rng = random.Random(rng.random())
        self.acked = acked
        self.trial = trial
        self.stop = threading.Event()

    def run(self) -> None:
        seq = 0
        try:
            with RawClient(self.bootstrap, timeout=10) as client:
                while not self.stop.is_set():
                    for topic in TOPICS:
                        values = [f"{topic}/{self.trial}/{seq}/{r}|".encode()
                                  + self.rng.randbytes(self.rng.randint(500, 2500)) for r in range(2)]
                        base = produce(client, topic, 0, values)
                        for r, value in enumerate(values):
                            assert base + r not in self.acked[topic], f"{topic}: offset {base + r} acked twice"
                            self.acked[topic][base + r] = value
                    seq += 1
                    time.sleep(0.06)
        except (ConnectionError, OSError):
            return  # killed under us: what was not acknowledged is not promised


def _check_bucket_and_log(reader, prefixes, directories, acked, cache, debris: Counter) -> None:
    """The invariants that hold at any instant the broker is dead."""
    for topic, prefix in prefixes.items():
        view = read_manifest(reader, prefix)
        if view is None:
            continue
        PartitionManifest.from_bytes(reader.get(f"{prefix}manifest/{view.version:020d}.json"))  # ours agrees
        check_manifest_shape(view, prefix)
        if topic == "keep" and view.finished:
            assert view.finished[0]["base_offset"] == 0 and view.log_start_offset == 0
        # Every acked record at or above the remote log start offset survives (the
        # manifest's log start moves first when total retention deletes).
        assert_nothing_lost(acked[topic], reader, prefix, directories[topic], earliest=view.log_start_offset,
                            cache=cache)
        listing = set(reader.list(prefix + "segments/"))
        debris["unfinished entries"] += sum(s["state"] != "COPY_FINISHED" for s in view.segments)
        debris["orphan objects"] += len(listing - view.named_keys(("COPY_FINISHED", "COPY_STARTED", "DELETE_STARTED")))
        debris["objects of unfinished entries"] += len(listing & (view.named_keys(
            ("COPY_STARTED", "DELETE_STARTED"))))


def test_sigkill_during_uploads_and_retention_loses_nothing_and_leaves_nothing(tmp_path, s3_bucket):
    rng = random.Random(SEED)
    metrics_port = free_port()
    overrides = tiering_overrides(metrics_port, **{
        "remote.storage.multipart.threshold.bytes": str(MULTIPART_THRESHOLD),
        # Throttled uploads wait for tokens between CreateMultipartUpload and the part,
        # which widens the window in which a kill leaves an unfinished multipart upload.
        "remote.log.manager.copy.max.bytes.per.second": str(COPY_BYTES_PER_S),
    }) | s3_overrides(s3_bucket.name, s3_bucket.server.url)
    broker = BrokerProcess(tmp_path / "broker", overrides)
    reader = MinioReader(s3_bucket.server.host, s3_bucket.server.port, s3_bucket.name)
    acked: dict[str, dict[int, bytes]] = {topic: {} for topic in TOPICS}
    prefixes, directories = {}, {}
    cache: dict = {}
    debris: Counter = Counter()
    pending_multipart_at_kill = 0
    try:
        for trial in range(TRIALS):
            broker.start()
            if trial == 0:
                with RawClient(broker.bootstrap) as client:
                    for topic, configs in TOPICS.items():
                        topic_id = create_topic(client, topic, {
                            "remote.storage.enable": "true", "segment.bytes": str(SEGMENT_BYTES),
                            "local.retention.bytes": str(LOCAL_RETENTION_BYTES), "file.delete.delay.ms": "0",
                            **configs})
                        prefixes[topic] = partition_prefix(topic, topic_id)
                        directories[topic] = partition_dir(broker.data_dir, topic)
            producer = Producer(broker.bootstrap, rng, acked, trial)
            producer.start()
            # Mostly mid-stream kills; now and then one right after startup, during the
            # first pass (manifest load, garbage collection).
            time.sleep(rng.uniform(0.05, 0.4) if rng.random() < 0.25 else rng.uniform(0.5, 2.0))
            broker.kill()
            producer.stop.set()
            producer.join(15)
            assert not producer.is_alive()
            pending_multipart_at_kill += len(_pending_multipart(s3_bucket))
            _check_bucket_and_log(reader, prefixes, directories, acked, cache, debris)

        # The last restart: no producer. Passes catch up, garbage-collect, settle.
        broker.start()
        with RawClient(broker.bootstrap) as client:
            for topic in TOPICS:
                _wait_settled(client, reader, s3_bucket, topic, prefixes[topic], directories[topic])
            for topic in TOPICS:
                _final_checks(client, reader, topic, prefixes[topic], directories[topic], acked[topic], cache)
        # The kills did land mid-work (otherwise this test proves little).
        print(f"half-done work found after the kills: {dict(debris)}, "
              f"unfinished multipart uploads: {pending_multipart_at_kill}")
        assert sum(debris.values()) + pending_multipart_at_kill > 0, "no kill left any half-done work"
        assert all(acked.values())
    finally:
        broker.kill()


def _pending_multipart(s3_bucket) -> list:
    client = s3_bucket.server.sync_client()
    return client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", [])


def _wait_settled(client, reader, s3_bucket, topic, prefix, directory) -> None:
    """Until uploads have caught up, nothing is left over, and the tiers have stopped
    changing for SETTLED_FOR_S: a pass commits its uploads before it applies
    retention, so the moment the last upload lands, a retention delete may still be
    due (and the final checks would read the log start before it and the manifest
    after it)."""
    seen = {"state": None, "since": 0.0}

    def problems() -> list[str]:
        found = []
        active = max(local_segment_files(directory))
        offsets = list_offsets(client, topic)
        if offsets[LATEST_TIERED] != active - 1:
            found.append(f"uploaded through {offsets[LATEST_TIERED]}, active segment at {active}")
        view = read_manifest(reader, prefix)
        if offsets[EARLIEST] != view.log_start_offset:
            found.append(f"ListOffsets earliest {offsets[EARLIEST]}, manifest log start {view.log_start_offset}")
        state = (offsets[EARLIEST], offsets[EARLIEST_LOCAL], offsets[LATEST_TIERED],
                 tuple((s["base_offset"], s["state"]) for s in view.segments))
        now = time.monotonic()
        if state != seen["state"]:
            seen.update(state=state, since=now)
        if now - seen["since"] < SETTLED_FOR_S:
            found.append(f"tiers changed {now - seen['since']:.1f} s ago")
        unfinished = [(s["base_offset"], s["state"]) for s in view.segments if s["state"] != "COPY_FINISHED"]
        if unfinished:
            found.append(f"unfinished entries {unfinished}")
        strays = set(reader.list(prefix + "segments/")) - view.named_keys()
        if strays:
            found.append(f"objects no COPY_FINISHED entry names {sorted(strays)}")
        uploads = [u["Key"] for u in _pending_multipart(s3_bucket) if u["Key"].startswith(prefix)]
        if uploads:
            found.append(f"unfinished multipart uploads of {uploads}")
        return found

    wait_for(lambda: not problems(), 60, f"{topic}: uploads caught up and no leftovers", interval=0.2,
             describe=lambda: "; ".join(problems()))


def _final_checks(client, reader, topic, prefix, directory, acked, cache) -> None:
    view = read_manifest(reader, prefix)
    check_manifest_shape(view, prefix)
    offsets = list_offsets(client, topic)
    found = assert_nothing_lost(acked, reader, prefix, directory, earliest=offsets[EARLIEST], cache=cache)
    assert found["remote"] > 0
    finished = view.finished
    # The tiers meet: the remote tier ends where the local one (or its active segment) goes on.
    assert offsets[LATEST_TIERED] == finished[-1]["last_offset"]
    assert offsets[EARLIEST_LOCAL] <= offsets[LATEST_TIERED] + 1
    assert offsets[LATEST] >= max(acked) + 1
    if topic == "keep":
        assert offsets[EARLIEST] == 0 == finished[0]["base_offset"] == view.log_start_offset
    else:
        assert offsets[EARLIEST] == view.log_start_offset > 0
        kept = sum(s["size_bytes"] for s in finished) + sum(
            p.stat().st_size for b, p in local_segment_files(directory).items() if b > finished[-1]["last_offset"])
        assert kept >= RETENTION_BYTES, "total retention deleted more than retention.bytes asks"
    # Local fetch from the local log start returns the acknowledged values.
    fetched = fetch_records(client, topic, 0, offsets[EARLIEST_LOCAL])
    assert fetched and all(acked[o] == v for o, v in fetched if o in acked)
