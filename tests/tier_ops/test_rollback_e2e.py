"""Rolling a tiered topic back to local-only, against moto's S3 server:

- while a producer and a consumer run, with SIGKILLs at random points of the
  rollback and restarts, every record inside total retention ends up local
  exactly once, the remote objects are deleted (or kept, per policy) and reads
  work;
- a rollback that cannot fit on disk is refused before it starts, saying the
  bytes needed and free.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.support.broker import BrokerProcess, free_port
from tests.support.polling import wait_for
from tests.support.raw_client import RawClient
from tests.tiering.harness import (
    create_topic,
    fetch_records,
    iter_records,
    list_offsets,
    produce,
    s3_overrides,
)

TOPIC = "rollme"
PARTITIONS = 2
EARLIEST, EARLIEST_LOCAL, LATEST_TIERED, LATEST = -2, -4, -5, -1
TOPIC_CONFIGS = {
    "remote.storage.enable": "true",
    "segment.bytes": "8000",
    "local.retention.bytes": "9000",
    "remote.storage.chunk.bytes": "3000",
    "remote.storage.chunk.compression": "zstd",
}


def _admin(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _broker(tmp_path, s3_bucket, **extra) -> BrokerProcess:
    overrides = {
        **s3_overrides(s3_bucket.name, s3_bucket.server.url),
        "remote.log.manager.task.interval.ms": "200",
        "admin.http.port": str(free_port()),
        **extra,
    }
    return BrokerProcess(tmp_path, overrides)


def _all_local(client: RawClient, partition: int) -> list[tuple[int, bytes]]:
    """Every record of a partition read from the local log (no remote range left)."""
    records, offset = [], 0
    end = list_offsets(client, TOPIC, partition)[LATEST]
    while offset < end:
        batch = fetch_records(client, TOPIC, partition, offset)
        assert batch, f"no progress reading partition {partition} at {offset}"
        records.extend(batch)
        offset = batch[-1][0] + 1
    return records


class _Producer(threading.Thread):
    """Keeps producing to both partitions through the rollback and the crashes; records
    every acknowledged value."""

    def __init__(self, bootstrap: str):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.acked: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        self.stop = threading.Event()
        self.seq = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with RawClient(self.bootstrap, timeout=5) as client:
                    while not self.stop.is_set():
                        partition = self.seq % PARTITIONS
                        value = b"live-%06d" % self.seq
                        # A value is sent once: if its ack is lost it is not retried, so it
                        # may be stored or not, but never twice.
                        self.seq += 1
                        produce(client, TOPIC, partition, [value])
                        self.acked[partition].append(value)
                        time.sleep(0.002)
            except (ConnectionError, OSError, AssertionError):
                time.sleep(0.1)  # the broker is down or restarting: try again


@pytest.mark.parametrize("delete_remote", [True, False], ids=["delete-remote", "keep-remote"])
def test_rollback_with_traffic_and_crashes(tmp_path, s3_bucket, delete_remote):
    rng = random.Random(11 if delete_remote else 12)
    broker = _broker(tmp_path, s3_bucket).start()
    admin_port = int(broker.overrides["admin.http.port"])
    produced = {p: [] for p in range(PARTITIONS)}
    try:
        with RawClient(broker.bootstrap) as client:
            create_topic(client, TOPIC, TOPIC_CONFIGS, PARTITIONS)
            for i in range(600):
                value = b"old-%06d-" % i + b"x" * 120
                produce(client, TOPIC, i % PARTITIONS, [value])
                produced[i % PARTITIONS].append(value)
            for p in range(PARTITIONS):
                wait_for(lambda p=p: list_offsets(client, TOPIC, p)[EARLIEST_LOCAL] > 200, 60,
                         f"partition {p}'s early data to be remote-only")
        live = _Producer(broker.bootstrap)
        live.start()
        # A slow rollback leaves room to crash it in the middle.
        status, reply = _admin(admin_port, "POST", "/v1/tier/rollback",
                               {"topic": TOPIC, "delete_remote": delete_remote, "rate_bytes_per_s": 3000})
        assert status == 202, reply
        for _ in range(3):
            time.sleep(rng.uniform(0.2, 1.5))
            broker.kill()
            broker.start()
        admin_port = int(broker.overrides["admin.http.port"])
        wait_for(lambda: (_admin(admin_port, "GET", f"/v1/tier/rollback?topic={TOPIC}")[1].get("state") == "done"),
                 120, "the rollback to finish after the crashes")
        resumed = broker.log_path.read_text().count("resuming the rollback")
        assert resumed >= 2, f"the crashes should interrupt the rollback; it resumed {resumed} times"
        live.stop.set()
        live.join(10)
        with RawClient(broker.bootstrap) as client:
            for p in range(PARTITIONS):
                offsets = list_offsets(client, TOPIC, p)
                assert offsets[EARLIEST] == offsets[EARLIEST_LOCAL] == 0, offsets
                assert offsets[LATEST_TIERED] == -1, "a local-only topic has no tiered range"
                stored = _all_local(client, p)
                assert [o for o, _ in stored] == list(range(len(stored))), "offsets not contiguous"
                values = [v for _, v in stored]
                assert len(values) == len(set(values)), "a record is stored twice"
                assert values[:len(produced[p])] == produced[p]
                live_values = [v for v in values if v.startswith(b"live-")]
                for value in live.acked[p]:
                    assert value in live_values, f"acknowledged {value!r} is gone"
            described = client.request("DescribeConfigs", 4, {"resources": [
                {"resource_type": 2, "resource_name": TOPIC, "configuration_keys": ["remote.storage.enable"]}],
                "include_synonyms": False, "include_documentation": False})
            assert described.results[0].configs[0].value == "false"
        remaining = [k for k in s3_bucket.keys() if not k.startswith("topics/")]
        if delete_remote:
            assert remaining == [], remaining
            assert not any(k.startswith("topics/") for k in s3_bucket.keys())
        else:
            assert any(k.endswith(".log") for k in remaining), "kept remote objects are gone"
        _, status_reply = _admin(admin_port, "GET", f"/v1/tier/status?topic={TOPIC}")
        assert all(not row["tiered"] and row["remote_end"] is None for row in status_reply["partitions"])
    finally:
        broker.kill()


def test_rollback_without_disk_room_is_refused_up_front(tmp_path, s3_bucket):
    broker = _broker(tmp_path, s3_bucket, **{"remote.log.rollback.headroom.bytes": str(1 << 60)}).start()
    admin_port = int(broker.overrides["admin.http.port"])
    try:
        with RawClient(broker.bootstrap) as client:
            create_topic(client, TOPIC, TOPIC_CONFIGS, 1)
            for i in range(200):
                produce(client, TOPIC, 0, [b"v%05d" % i + b"y" * 120])
            wait_for(lambda: list_offsets(client, TOPIC, 0)[EARLIEST_LOCAL] > 0, 60, "remote-only data")
            before = list_offsets(client, TOPIC, 0)
            status, reply = _admin(admin_port, "POST", "/v1/tier/rollback", {"topic": TOPIC, "delete_remote": True})
            assert status == 409, reply
            message = reply["error"]
            assert "needs" in message and "bytes are free" in message, message
            assert any(ch.isdigit() for ch in message.split("needs")[1].split("bytes")[0])
            # Through the Kafka admin API the same refusal is a POLICY_VIOLATION, and nothing changed.
            reply = client.request("IncrementalAlterConfigs", 1, {"resources": [
                {"resource_type": 2, "resource_name": TOPIC,
                 "configs": [{"name": "remote.storage.enable", "config_operation": 0, "value": "false"}]}],
                "validate_only": False})
            assert reply.responses[0].error_code == 44
            assert "bytes are free" in reply.responses[0].error_message
            # Nothing was restored: no rollback ran, the remote start is where it was, and the
            # local start has not moved back (tiering may still move it forward meanwhile).
            status, _ = _admin(admin_port, "GET", f"/v1/tier/rollback?topic={TOPIC}")
            assert status == 404
            after = list_offsets(client, TOPIC, 0)
            assert after[EARLIEST] == before[EARLIEST]
            assert after[EARLIEST_LOCAL] >= before[EARLIEST_LOCAL]
            described = client.request("DescribeConfigs", 4, {"resources": [
                {"resource_type": 2, "resource_name": TOPIC, "configuration_keys": ["remote.storage.enable"]}],
                "include_synonyms": False, "include_documentation": False})
            assert described.results[0].configs[0].value == "true"
    finally:
        broker.kill()


@pytest.mark.parametrize("delete_remote", [True, False], ids=["after-delete-remote", "after-keep-remote"])
def test_tiering_turned_back_on_uploads_again(tmp_path, s3_bucket, delete_remote):
    """A rolled-back topic, and a never-tiered one, upload their closed segments normally
    once remote.storage.enable is true again."""
    broker = _broker(tmp_path, s3_bucket).start()
    admin_port = int(broker.overrides["admin.http.port"])
    never = "never-tiered"
    try:
        with RawClient(broker.bootstrap) as client:
            create_topic(client, TOPIC, TOPIC_CONFIGS, 1)
            create_topic(client, never, {"segment.bytes": "8000"}, 1)
            for i in range(300):
                produce(client, TOPIC, 0, [b"a-%05d-" % i + b"x" * 120])
                produce(client, never, 0, [b"n-%05d-" % i + b"x" * 120])
            wait_for(lambda: list_offsets(client, TOPIC, 0)[EARLIEST_LOCAL] > 0, 60, "remote-only data")
            assert list_offsets(client, never, 0)[LATEST_TIERED] == -1
            status, reply = _admin(admin_port, "POST", "/v1/tier/rollback",
                                   {"topic": TOPIC, "delete_remote": delete_remote})
            assert status == 202, reply
            wait_for(lambda: _admin(admin_port, "GET", f"/v1/tier/rollback?topic={TOPIC}")[1].get("state") == "done",
                     60, "the rollback")
            assert list_offsets(client, TOPIC, 0)[LATEST_TIERED] == -1
            for name in (TOPIC, never):
                reply = client.request("IncrementalAlterConfigs", 1, {"resources": [
                    {"resource_type": 2, "resource_name": name, "configs": [
                        {"name": "remote.storage.enable", "config_operation": 0, "value": "true"},
                        {"name": "local.retention.bytes", "config_operation": 0, "value": "9000"}]}],
                    "validate_only": False})
                assert reply.responses[0].error_code == 0, reply.responses[0].error_message
            for i in range(300, 400):
                produce(client, TOPIC, 0, [b"a-%05d-" % i + b"x" * 120])
            end = list_offsets(client, TOPIC, 0)[LATEST]
            for name in (TOPIC, never):
                wait_for(lambda n=name: list_offsets(client, n, 0)[LATEST_TIERED] > 250, 60,
                         f"{name}'s closed segments to be uploaded again")
                wait_for(lambda n=name: list_offsets(client, n, 0)[EARLIEST_LOCAL] > 0, 60,
                         f"local retention to apply to {name} again")
                assert list_offsets(client, name, 0)[EARLIEST] == 0, "nothing is lost on the way"
            # Everything is still readable across both tiers, in order.
            seen, offset = [], 0
            while offset < end:
                reply = client.request("Fetch", 11, {
                    "replica_id": -1, "max_wait_ms": 2000, "min_bytes": 1, "max_bytes": 1 << 20,
                    "isolation_level": 0, "session_id": 0, "session_epoch": -1, "rack_id": "",
                    "forgotten_topics_data": [], "topics": [{"topic": TOPIC, "partitions": [
                        {"partition": 0, "current_leader_epoch": -1, "fetch_offset": offset,
                         "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}]})
                part = reply.responses[0].partitions[0]
                assert part.error_code == 0, part.error_code
                batch = [(o, v) for o, _, v in iter_records(bytes(part.records or b""), allow_partial=True)
                         if o >= offset]
                assert batch, f"no progress at {offset}"
                seen.extend(batch)
                offset = batch[-1][0] + 1
            assert [o for o, _ in seen] == list(range(end))
            assert [v[:7] for _, v in seen] == [b"a-%05d" % i for i in range(end)]
    finally:
        broker.kill()
