"""An idempotent producer (confluent-kafka, enable.idempotence=true) writes
through a proxy that loses produce responses, and through a broker SIGKILL and
restart: the log holds every record exactly once, in produce order."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support.broker import BrokerProcess, free_port
from tests.support.flaky_proxy import FlakyProxy
from tests.support.raw_client import RawClient

TOPIC = "exactly-once"
PARTITIONS = 3
RECORDS = 3000
PRODUCE_API = 0


def _consume_all(bootstrap: str) -> dict[int, list[bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "verify", "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    by_partition: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 3:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert not msg.error(), msg.error()
        by_partition[msg.partition()].append(msg.value())
        idle_since = time.monotonic()
    consumer.close()
    return by_partition


def test_idempotent_producer_through_lost_responses_and_a_broker_crash(tmp_path):
    proxy_port = free_port()
    broker = BrokerProcess(tmp_path, {"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy_port}"}).start()
    proxy = FlakyProxy(proxy_port, broker.port, PRODUCE_API, drop_rate=0.15).start()
    try:
        with RawClient(broker.bootstrap) as admin:
            admin.request("CreateTopics", 5, {"topics": [
                {"name": TOPIC, "num_partitions": PARTITIONS, "replication_factor": 1}], "timeout_ms": 5000})
        failures = []
        producer = Producer({
            "bootstrap.servers": f"127.0.0.1:{proxy_port}", "enable.idempotence": True, "acks": "all",
            "linger.ms": 2, "batch.num.messages": 50, "retry.backoff.ms": 20, "message.timeout.ms": 120_000,
            "socket.timeout.ms": 5000,
        })

        def delivered(err, msg):
            if err is not None:
                failures.append(err)

        sent = {p: [] for p in range(PARTITIONS)}
        for i in range(RECORDS):
            value = b"record-%05d" % i
            partition = i % PARTITIONS
            producer.produce(TOPIC, value, partition=partition, on_delivery=delivered)
            sent[partition].append(value)
            producer.poll(0)
            if i == RECORDS // 2:
                broker.kill()  # with requests in flight
            if i == RECORDS // 2 + 200:
                broker.start()
        assert producer.flush(120) == 0
        assert failures == []
        assert proxy.dropped > 0, "the proxy never lost a response: the test proved nothing"
        stored = _consume_all(broker.bootstrap)
        for partition in range(PARTITIONS):
            assert stored[partition] == sent[partition]
    finally:
        proxy.stop()
        broker.kill()
