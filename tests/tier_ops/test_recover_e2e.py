"""Recovery from the bucket: a broker with an empty data directory rebuilds a topic
(id, configs, partitions, log start offsets) from the manifests another data
directory wrote, and a real client reads all of it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from kafka import KafkaConsumer, TopicPartition

from tests.support.broker import BrokerProcess, free_port
from tests.support.polling import wait_for
from tests.support.raw_client import RawClient
from tests.tiering.harness import create_topic, list_offsets, produce, s3_overrides

TOPIC = "rebuilt"
PARTITIONS = 2
LATEST_TIERED, LATEST, EARLIEST = -5, -1, -2


def _post(port: int, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _consume_all(bootstrap: str, ends: dict[int, int]) -> dict[int, list[bytes]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + 60
    while any(len(got[p]) < ends[p] for p in got) and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=1000).items():
            got[tp.partition].extend(r.value for r in records)
    consumer.close()
    return got


def test_recover_topic_from_a_bucket_written_by_another_data_dir(tmp_path, s3_bucket):
    bucket = s3_overrides(s3_bucket.name, s3_bucket.server.url, prefix="cluster-a")
    first = BrokerProcess(tmp_path / "a", {**bucket, "remote.log.manager.task.interval.ms": "200"}).start()
    produced: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    try:
        with RawClient(first.bootstrap) as client:
            topic_id = create_topic(client, TOPIC, {"remote.storage.enable": "true", "segment.bytes": "6000",
                                                    "retention.ms": "604800000",
                                                    "remote.storage.chunk.compression": "lz4"}, PARTITIONS)
            for i in range(500):
                value = b"record-%05d-" % i + b"z" * 80
                produce(client, TOPIC, i % PARTITIONS, [value])
                produced[i % PARTITIONS].append(value)
            for p in range(PARTITIONS):
                wait_for(lambda p=p: list_offsets(client, TOPIC, p)[LATEST_TIERED] >= 150, 60,
                         f"partition {p} to be uploaded")
            tiered_ends = {p: list_offsets(client, TOPIC, p)[LATEST_TIERED] + 1 for p in range(PARTITIONS)}
    finally:
        first.stop()

    admin_port = free_port()
    second = BrokerProcess(tmp_path / "b", {**bucket, "remote.log.manager.task.interval.ms": "200",
                                            "admin.http.port": str(admin_port)}).start()
    try:
        status, reply = _post(admin_port, "/v1/tier/recover", {"from": f"s3://{s3_bucket.name}/other"})
        assert status == 409 and "remote.storage.url" in reply["error"], reply
        status, reply = _post(admin_port, "/v1/tier/recover", {"from": f"s3://{s3_bucket.name}/cluster-a"})
        assert status == 200, reply
        assert reply["topics"] == [TOPIC]
        with RawClient(second.bootstrap) as client:
            meta = client.request("Metadata", 12, {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": False})
            assert str(meta.topics[0].topic_id) == topic_id, "the topic keeps its id"
            assert len(meta.topics[0].partitions) == PARTITIONS
            for p in range(PARTITIONS):
                # Uploads went on until the first broker stopped: the bucket holds at least
                # what it last reported as tiered, and the new log continues where it ends.
                offsets = list_offsets(client, TOPIC, p)
                assert offsets[EARLIEST] == 0 and offsets[LATEST] >= tiered_ends[p], offsets
                assert offsets[LATEST] == offsets[LATEST_TIERED] + 1, offsets
                tiered_ends[p] = offsets[LATEST]
            described = client.request("DescribeConfigs", 4, {"resources": [
                {"resource_type": 2, "resource_name": TOPIC, "configuration_keys": ["remote.storage.chunk.compression"]}],
                "include_synonyms": False, "include_documentation": False})
            assert described.results[0].configs[0].value == "lz4", "configs come back from the bucket"
        got = _consume_all(second.bootstrap, tiered_ends)
        for p in range(PARTITIONS):
            assert got[p] == produced[p][:tiered_ends[p]]
        with RawClient(second.bootstrap) as client:
            assert produce(client, TOPIC, 0, [b"after-recovery"]) == tiered_ends[0]
    finally:
        second.kill()
