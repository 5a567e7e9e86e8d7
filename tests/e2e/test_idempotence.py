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


def _init_producer_id(client: RawClient, producer_id: int = -1, epoch: int = -1, transactional_id=None):
    return client.request("InitProducerId", 4, {"transactional_id": transactional_id,
                                                "transaction_timeout_ms": 60000,
                                                "producer_id": producer_id, "producer_epoch": epoch})


def _produce(client: RawClient, batch: bytes):
    reply = client.request("Produce", 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
        {"name": TOPIC, "partition_data": [{"index": 0, "records": batch}]}]})
    return reply.responses[0].partition_responses[0]


def test_producer_ids_are_never_reused_and_epochs_bump(tmp_path):
    from broker.protocol import errors

    with BrokerProcess(tmp_path) as broker:
        with RawClient(broker.bootstrap) as client:
            first, second = _init_producer_id(client), _init_producer_id(client)
            assert (first.error_code, second.error_code) == (0, 0)
            assert first.producer_id != second.producer_id and first.producer_epoch == 0
            bumped = _init_producer_id(client, first.producer_id, 0)
            assert (bumped.producer_id, bumped.producer_epoch) == (first.producer_id, 1)
            refused = _init_producer_id(client, transactional_id="txn-1")
            assert refused.error_code == errors.TransactionalIdAuthorizationFailed.code
        broker.kill()
        broker.start()
        with RawClient(broker.bootstrap) as client:
            after_crash = _init_producer_id(client)
            assert after_crash.producer_id > second.producer_id


def test_sequence_rules_on_the_wire(broker):
    from broker.protocol import errors
    from tests.helpers.record_batches import build_batch

    with RawClient(broker.bootstrap) as client:
        client.request("Metadata", 9, {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": True})
        pid = _init_producer_id(client).producer_id

        def batch(seq, epoch=0, n=2):
            return build_batch([(b"k", b"v%d" % (seq + i)) for i in range(n)], producer_id=pid,
                               producer_epoch=epoch, base_sequence=seq)

        assert _produce(client, batch(0)).base_offset == 0
        assert _produce(client, batch(2)).base_offset == 2
        retried = _produce(client, batch(0))
        assert (retried.error_code, retried.base_offset) == (0, 0)
        gap = _produce(client, batch(7))
        assert gap.error_code == errors.OutOfOrderSequenceNumber.code
        assert "expected 4" in gap.error_message
        assert _produce(client, batch(0, epoch=1)).base_offset == 4
        stale = _produce(client, batch(4, epoch=0))
        assert stale.error_code == errors.InvalidProducerEpoch.code
        end = client.request("ListOffsets", 5, {"replica_id": -1, "topics": [
            {"name": TOPIC, "partitions": [{"partition_index": 0, "timestamp": -1}]}]})
        assert end.topics[0].partitions[0].offset == 6
