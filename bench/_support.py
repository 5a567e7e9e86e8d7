"""Shared pieces of the benchmarks: a broker process, a raw TCP baseline, a table."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.broker import BrokerProcess, free_port  # noqa: E402

CHUNK = 1 << 20


def start_broker(overrides: dict[str, str] | None = None, data_dir: Path | None = None,
                 event_loop: str | None = None) -> BrokerProcess:
    data = Path(tempfile.mkdtemp(prefix="tierbroker-bench-", dir=data_dir))
    return BrokerProcess(data, overrides, event_loop=event_loop).start()


def warm_memory(directory: Path, nbytes: int) -> None:
    """Write and delete `nbytes` of file data in `directory`.

    On virtual machines the first touch of guest memory is slow (here ~250 MB/s,
    against ~3.5 GB/s once touched), and a guest with free page reporting
    (virtio-balloon) hands freed memory back to the host within 1-2 s, after
    which it is slow again. A broker that has run for a while writes into
    recycled page-cache pages, so a benchmark warms up the same way right
    before each phase that writes new data.
    """
    path = directory / "warm-up.tmp"
    chunk = b"w" * CHUNK
    with open(path, "wb", buffering=0) as f:
        for _ in range(nbytes // CHUNK):
            f.write(chunk)
    path.unlink()


def raw_tcp_mb_per_s(total_bytes: int) -> float:
    """Bulk transfer over loopback between two plain blocking sockets (1 MiB writes,
    recv_into a reused 1 MiB buffer): the ceiling any broker on this host works under."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received = [0]

    def receive() -> None:
        conn, _ = listener.accept()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        with conn:
            while True:
                n = conn.recv_into(view)
                if not n:
                    return
                received[0] += n

    thread = threading.Thread(target=receive)
    thread.start()
    payload = b"x" * CHUNK
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        sent = 0
        while sent < total_bytes:
            s.sendall(payload)
            sent += CHUNK
    thread.join()
    elapsed = time.perf_counter() - started
    listener.close()
    return received[0] / elapsed / 1e6


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))


# -- S3 (moto) in its own process --------------------------------------------------

S3_ACCESS_KEY = "testing"
S3_REGION = "us-east-1"


class MotoProcess:
    """moto's S3 server as a separate process (`python -m moto.server`), so it never
    shares a GIL with the broker or the benchmark driver. Objects above ~5 MiB are
    spooled to temporary files, so a run's data lives in this process's page cache."""

    def __init__(self, first_byte_ms: float = 0) -> None:
        """`first_byte_ms` > 0: every request waits that long before its answer
        starts, as from a real bucket (see `_moto_latency.py`)."""
        self.port = free_port()
        self.first_byte_ms = first_byte_ms
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoProcess:
        server = (["-m", "moto.server"] if not self.first_byte_ms else
                  [str(Path(__file__).with_name("_moto_latency.py")), "--first-byte-ms", str(self.first_byte_ms)])
        self.proc = subprocess.Popen(
            [sys.executable, *server, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError("moto server did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def create_bucket(self, name: str) -> str:
        import botocore.session

        client = botocore.session.get_session().create_client(
            "s3", endpoint_url=self.url, region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY, aws_secret_access_key=S3_ACCESS_KEY)
        client.create_bucket(Bucket=name)
        return name

    def broker_overrides(self, bucket: str, prefix: str) -> dict[str, str]:
        """The broker keys that point its remote tier at `s3://bucket/prefix` here."""
        return {
            "remote.storage.url": f"s3://{bucket}/{prefix}",
            "remote.storage.s3.endpoint.url": self.url,
            "remote.storage.s3.region": S3_REGION,
            "remote.storage.s3.path.style.access": "true",
            "remote.storage.s3.access.key.id": S3_ACCESS_KEY,
            "remote.storage.s3.secret.access.key": S3_ACCESS_KEY,
        }

    def raw_client(self, max_pool_connections: int = 50):
        """An aiobotocore S3 client (async context manager) configured as the broker's
        S3Store configures its own: the raw GET/PUT baseline."""
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        config = AioConfig(max_pool_connections=max_pool_connections, s3={"addressing_style": "path"},
                           retries={"total_max_attempts": 2, "mode": "standard"},
                           request_checksum_calculation="when_required",
                           response_checksum_validation="when_required")
        return get_session().create_client(
            "s3", endpoint_url=self.url, region_name=S3_REGION, config=config,
            aws_access_key_id=S3_ACCESS_KEY, aws_secret_access_key=S3_ACCESS_KEY)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the broker's /metrics ---------------------------------------------------------


def scrape_metrics(port: int) -> list[tuple[str, dict[str, str], float]]:
    """Every sample the broker exposes, as (name, labels, value)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def metric_sum(samples, name: str, **labels: str) -> float:
    """The sum of `name` over the label sets that match `labels`."""
    return sum(value for n, lab, value in samples
               if n == name and all(lab.get(k) == v for k, v in labels.items()))


def histogram_buckets(samples, name: str, **labels: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of histogram `name`, summed over matching label sets."""
    counts: dict[float, float] = {}
    for n, lab, value in samples:
        if n == f"{name}_bucket" and all(lab.get(k) == v for k, v in labels.items()):
            le = float(lab["le"])
            counts[le] = counts.get(le, 0.0) + value
    return sorted(counts.items())


def bucket_delta(after: list[tuple[float, float]], before: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The observations made between two scrapes of one histogram."""
    was = dict(before)
    return [(le, count - was.get(le, 0.0)) for le, count in after]


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket that holds
    the q-quantile (so the answer is only as fine as the buckets). NaN when empty;
    the largest finite bound when the quantile falls in the +Inf bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


# -- topics and producing --------------------------------------------------------------


def create_topic(bootstrap: str, name: str, partitions: int, configs: dict[str, str]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=configs)])[name].result()


def set_topic_configs(bootstrap: str, name: str, configs: dict[str, str]) -> None:
    """IncrementalAlterConfigs SET of `configs` on topic `name`."""
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap})
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()]
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result()


def delete_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.delete_topics([name])[name].result()


def produce_bytes(bootstrap: str, topic: str, partitions: int, total_bytes: int,
                  record_size: int = 100 * 1024, acks: str = "1") -> float:
    """Produce `total_bytes` of random `record_size` records round-robin over the
    partitions; returns MB/s.

    The producer's queue is bounded at 64 MiB, so it recycles its buffers as a
    long-running producer does; with librdkafka's 1 GiB default it would buffer
    the whole run in fresh memory, and time page faults instead of the broker.
    The clock starts once the producer is connected and knows the partitions'
    leader (measured: the first record's round trip takes 6-12 ms from a cold
    start and 1-2 ms after), as the raw baseline's starts on a connected socket.
    """
    from confluent_kafka import Producer

    producer = Producer({
        "bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
        "batch.size": 1_000_000, "queue.buffering.max.kbytes": 65_536,
        "queue.buffering.max.messages": 1_000_000, "message.max.bytes": 16_000_000,
        "enable.idempotence": False,
    })
    value = os.urandom(record_size)
    count = max(1, total_bytes // record_size)
    producer.list_topics(topic, timeout=30)
    started = time.perf_counter()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(300)
    if remaining:
        raise RuntimeError(f"{remaining} records were not delivered to {topic}")
    return record_size * count / (time.perf_counter() - started) / 1e6


def list_offsets(bootstrap: str, topic: str, partitions: int, timestamp: int) -> list[int]:
    """ListOffsets v9 for every partition: -1 latest, -2 earliest, -4 earliest local
    (KIP-1005: where the local log starts, i.e. the end of what only the remote tier
    holds), -5 latest tiered."""
    from tests.support.raw_client import RawClient

    with RawClient(bootstrap) as client:
        response = client.request("ListOffsets", 9, {
            "replica_id": -1, "isolation_level": 0, "topics": [{
                "name": topic,
                "partitions": [{"partition_index": p, "timestamp": timestamp} for p in range(partitions)],
            }]})
    found = {p.partition_index: p for t in response.topics for p in t.partitions}
    for p in found.values():
        if p.error_code:
            raise RuntimeError(f"ListOffsets {timestamp} of {topic}-{p.partition_index}: error {p.error_code}")
    return [found[p].offset for p in range(partitions)]


def local_log_start_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    return list_offsets(bootstrap, topic, partitions, -4)


def wait_remote_only(topic: str, metrics_port: int, timeout: float = 300) -> None:
    """Until every closed segment of `topic` is uploaded and deleted locally (the
    upload, local-delete and copy-lag metrics agree and hold still)."""
    deadline = time.monotonic() + timeout
    stable, last = 0, None
    while time.monotonic() < deadline:
        samples = scrape_metrics(metrics_port)
        state = (metric_sum(samples, "tierbroker_remote_upload_segments_total", topic=topic),
                 metric_sum(samples, "tierbroker_remote_local_deleted_segments_total", topic=topic),
                 metric_sum(samples, "tierbroker_remote_copy_lag_bytes", topic=topic))
        uploaded, deleted, lag = state
        stable = stable + 1 if state == last and uploaded > 0 and uploaded == deleted and lag == 0 else 0
        last = state
        if stable >= 3:
            return
        time.sleep(0.3)
    raise RuntimeError(f"{topic} never became remote-only (uploaded, locally deleted, lag) = {last}")


def replay(bootstrap: str, topic: str, ends: list[int], timeout: float = 600) -> tuple[int, float]:
    """A confluent-kafka consumer (default fetch sizes) reads every partition of `topic`
    from offset 0 up to `ends` (exclusive), pausing each partition once it gets
    there; returns (records read, seconds from assignment to the last record)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-replay-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "error"})
    done = [end <= 0 for end in ends]
    records = 0
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, 0) for p in range(len(ends))])
    try:
        while not all(done):
            for msg in consumer.consume(500, timeout=5):
                if msg.error():
                    raise RuntimeError(f"consumer error: {msg.error()}")
                p = msg.partition()
                if done[p]:
                    continue
                records += 1
                if msg.offset() >= ends[p] - 1:
                    done[p] = True
                    consumer.pause([TopicPartition(topic, p)])
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"the replay of {topic} did not finish in {timeout:.0f} s")
        return records, time.perf_counter() - started
    finally:
        consumer.close()
