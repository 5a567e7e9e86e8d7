"""Produced data lands in the bucket as chunked objects under a manifest, and an
independent reader (minio against moto, plain file reads against the local
store; no project code) finds exactly the local segment files in it: every
chunk decompressed with its codec and checked against its CRC-32C."""

from __future__ import annotations

import json
import random

import pytest

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
    check_manifest_shape,
    create_topic,
    decode_remote_segment,
    list_offsets,
    local_segment_files,
    partition_dir,
    partition_prefix,
    produce,
    read_manifest,
    s3_overrides,
    scrape,
    tiering_overrides,
    unseal,
)

SEGMENT_BYTES = 20_000
CHUNK_BYTES = 4096
MULTIPART_THRESHOLD = 17_000  # segments roll between ~14 KB and 20 KB: some go each way
TOPICS = {"zstd-topic": ("zstd", 2), "lz4-topic": ("lz4", 1), "plain-topic": ("none", 1)}
BATCHES_PER_PARTITION = 40


def _value(rng: random.Random, tag: str, size: int) -> bytes:
    """Half random, half repetitive: compressible, but not to nothing."""
    head = f"{tag}|".encode()
    random_part = rng.randbytes(size // 2)
    return head + random_part + b"tiered-storage " * ((size - len(head) - len(random_part)) // 15)


def _produce_all(client: RawClient, rng: random.Random) -> None:
    for topic, (_, partitions) in TOPICS.items():
        for partition in range(partitions):
            for i in range(BATCHES_PER_PARTITION):
                # Every 7th batch is larger than a chunk: a chunk by itself.
                size = 6000 if i % 7 == 3 else rng.randint(300, 2500)
                produce(client, topic, partition, [_value(rng, f"{topic}/{partition}/{i}/{r}", size // 2)
                                                   for r in range(2)])


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_segments_land_chunked_under_a_manifest_and_verify_independently(backend, tmp_path, request):
    metrics_port = free_port()
    overrides = tiering_overrides(
        metrics_port, **{"remote.storage.multipart.threshold.bytes": str(MULTIPART_THRESHOLD)})
    if backend == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        store_prefix = "cluster-a/tier"
        hashed = True
        overrides |= s3_overrides(bucket.name, bucket.server.url, store_prefix)
        overrides["remote.storage.key.hashed.prefix"] = "true"
        reader = MinioReader(bucket.server.host, bucket.server.port, bucket.name, store_prefix)
    else:
        root = tmp_path / "remote-store"
        hashed = False
        overrides["remote.storage.url"] = f"file://{root}"
        reader = DirectoryReader(root)

    broker = BrokerProcess(tmp_path / "broker", overrides).start()
    try:
        with RawClient(broker.bootstrap) as client:
            topic_ids = {}
            for topic, (codec, partitions) in TOPICS.items():
                topic_ids[topic] = create_topic(client, topic, {
                    "remote.storage.enable": "true", "segment.bytes": str(SEGMENT_BYTES),
                    "remote.storage.chunk.bytes": str(CHUNK_BYTES),
                    "remote.storage.chunk.compression": codec}, partitions)
            _produce_all(client, random.Random(1))

            # Every closed segment uploaded: latest-tiered reaches the active segment.
            for topic, (_, partitions) in TOPICS.items():
                for partition in range(partitions):
                    active_base = max(local_segment_files(partition_dir(broker.data_dir, topic, partition)))
                    assert active_base > 3 * BATCHES_PER_PARTITION // 10, "expected several segments"
                    wait_for(lambda t=topic, p=partition, end=active_base - 1:
                             list_offsets(client, t, p)[LATEST_TIERED] == end,
                             60, f"{topic}-{partition} uploaded up to offset {active_base - 1}")

            uploaded = {}
            for topic, (codec, partitions) in TOPICS.items():
                for partition in range(partitions):
                    uploaded[(topic, partition)] = _verify_partition(
                        broker, client, reader, topic, topic_ids[topic], partition, codec, hashed,
                        bucket if backend == "s3" else None, store_prefix if backend == "s3" else "")
                description = unseal(reader.get(f"topics/{topic}-{topic_ids[topic]}.json"), "topic description")
                assert (description["name"], description["topic_id"], description["partitions"],
                        description["hashed_keys"]) == (topic, topic_ids[topic], partitions, hashed)
                assert description["configs"]["remote.storage.chunk.compression"] == codec

            metrics = scrape(metrics_port)
            for topic in TOPICS:
                segments = sum(n for (t, _), (n, _) in uploaded.items() if t == topic)
                size = sum(b for (t, _), (_, b) in uploaded.items() if t == topic)
                assert metrics.get("tierbroker_remote_upload_segments_total", topic=topic) == segments
                assert metrics.get("tierbroker_remote_upload_bytes_total", topic=topic) == size
            assert metrics.get("tierbroker_remote_store_unavailable") == 0
            assert metrics.total("tierbroker_remote_upload_errors_total") == 0
    finally:
        broker.kill()


def _verify_partition(broker, client, reader, topic, topic_id, partition, codec, hashed, s3_bucket,
                      store_prefix) -> tuple[int, int]:
    """Check one partition; returns (segments, bytes) uploaded."""
    prefix = partition_prefix(topic, topic_id, partition, hashed)
    listing = reader.list(prefix)
    view = read_manifest(reader, prefix)
    assert view is not None, f"no manifest under {prefix}"
    check_manifest_shape(view, prefix)
    local = local_segment_files(partition_dir(broker.data_dir, topic, partition))
    closed = sorted(local)[:-1]

    # One COPY_FINISHED entry per closed local segment, nothing else.
    assert [s["state"] for s in view.segments] == ["COPY_FINISHED"] * len(closed)
    assert [s["base_offset"] for s in view.finished] == closed
    assert [s["last_offset"] + 1 for s in view.finished] == closed[1:] + [max(local)]
    assert view.log_start_offset == 0

    # The bucket holds the manifest versions, the pointer and the named objects: no strays.
    segment_keys = {k for k in listing if k.startswith(prefix + "segments/")}
    assert segment_keys == view.named_keys()
    assert set(listing) - segment_keys <= {prefix + "manifest/latest"} | {
        f"{prefix}manifest/{v:020d}.json" for v in view.listed_versions}

    compressed_chunks = oversized_chunks = 0
    for entry in view.finished:
        remote = decode_remote_segment(reader, entry, listing)
        local_bytes = local[entry["base_offset"]].read_bytes()
        assert remote.data == local_bytes, f"{topic}-{partition} segment {entry['base_offset']} differs"
        assert entry["size_bytes"] == len(local_bytes)
        assert remote.meta["compression"] == entry["compression"] == codec
        assert remote.meta["chunk_bytes"] == CHUNK_BYTES
        compressed_chunks += sum(c["compressed"] for c in remote.chunks)
        oversized_chunks += sum(c["length"] > CHUNK_BYTES for c in remote.chunks)
        assert all(c["length"] <= CHUNK_BYTES or c["batch_count"] == 1 for c in remote.chunks)
        if s3_bucket is not None:
            # Multipart objects carry an ETag "<md5 of md5s>-<parts>".
            head = s3_bucket.server.sync_client().head_object(
                Bucket=s3_bucket.name, Key=f"{store_prefix}/{entry['data_key']}")
            multipart = "-" in json.loads(head["ETag"])
            assert multipart == (entry["size_bytes"] > MULTIPART_THRESHOLD), (entry["size_bytes"], head["ETag"])
    assert oversized_chunks > 0
    if codec == "none":
        assert compressed_chunks == 0
    else:
        assert compressed_chunks > 0, f"{codec}: no chunk was stored compressed"
    if s3_bucket is not None:
        sizes = [s["size_bytes"] for s in view.finished]
        assert min(sizes) <= MULTIPART_THRESHOLD < max(sizes), "want both single-PUT and multipart uploads"

    offsets = list_offsets(client, topic, partition)
    assert offsets[EARLIEST] == 0 and offsets[EARLIEST_LOCAL] == 0
    assert offsets[LATEST_TIERED] == view.finished[-1]["last_offset"]
    assert offsets[LATEST] > offsets[LATEST_TIERED]

    metrics = scrape(int(broker.overrides["metrics.port"]))
    labels = {"topic": topic, "partition": str(partition)}
    assert metrics.get("tierbroker_remote_copy_lag_segments", **labels) == 0
    uploaded_bytes = sum(s["size_bytes"] for s in view.finished)
    assert metrics.get("tierbroker_remote_log_size_bytes", **labels) == uploaded_bytes
    return len(view.finished), uploaded_bytes
