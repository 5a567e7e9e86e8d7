"""Helpers for the end-to-end group tests: topics, producing, consumer processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from broker.admin_client import AdminClient
from broker.cli_groups import describe_group
from tests.support.broker import REPO
from tests.support.polling import wait_for

LIBRARIES = ["kafka-python", "aiokafka", "confluent"]
WAIT_S = 90.0


def wait_until(predicate, what: str, timeout: float = WAIT_S, interval: float = 0.2):
    """Poll until `predicate()` is truthy and return its value; the timeout only bounds a hang."""
    return wait_for(predicate, timeout, what, interval)


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, values: list[str], partitions: int) -> None:
    """Values go round-robin over the partitions, in order."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for i, value in enumerate(values):
        producer.produce(topic, value.encode(), partition=i % partitions,
                         on_delivery=lambda err, msg: errors.append(err) if err else None)
    remaining = producer.flush(60)
    assert remaining == 0 and not errors, (remaining, errors)


def group_view(bootstrap: str, group: str) -> dict | None:
    with AdminClient(bootstrap) as client:
        return describe_group(client, group)


def stable_with(bootstrap: str, group: str, members: int, partitions: int) -> bool:
    """The group is Stable with `members` members, each owning a partition, and
    `partitions` partitions assigned in total."""
    view = group_view(bootstrap, group)
    if view is None or view["state"] != "Stable" or len(view["members"]) != members:
        return False
    owned = [sum(len(ps) for ps in (m["assignment"] or {}).values()) for m in view["members"]]
    return all(owned) and sum(owned) == partitions


class ConsumerProcess:
    """tests/groups/consumer_script.py in a subprocess; collects what it reports."""

    def __init__(self, library: str, bootstrap: str, topic: str, group: str, session_ms: int,
                 log_dir: Path, **extra: str):
        self.values: list[str] = []
        self._lock = threading.Lock()
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"consumer-{library}-{time.monotonic_ns()}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.groups.consumer_script", library, bootstrap, topic, group,
                 str(session_ms), *(f"{k}={v}" for k, v in extra.items())],
                stdout=subprocess.PIPE, stderr=log, cwd=REPO)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                values = json.loads(line)["values"]
            except (ValueError, KeyError):
                continue
            with self._lock:
                self.values.extend(values)

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.values)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no LeaveGroup, no final commit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=5)
