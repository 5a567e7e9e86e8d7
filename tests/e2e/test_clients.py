"""Real Kafka clients against a real broker process: what one client produces,
every client consumes back exactly (key, value, headers, partition, per-partition
order, producer timestamps), with every compression codec, every acks level,
across clients, across many fetches, at the max.message.bytes boundary, with
LogAppendTime topics, idempotent and concurrent producers, and from positions
inside a batch or out of range.

Consumption is by manual assignment only (no consumer groups, no commits).
The client adapters at the top (`produce`, `consume`, `create_topic`, ...) are
shared with `test_admin.py`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import itertools
import random
import time
import uuid

import pytest

from broker.protocol import errors
from tests.helpers.record_batches import build_batch
from tests.support.broker import BrokerProcess
from tests.support.raw_client import RawClient

CLIENTS = ("kafka-python", "aiokafka", "confluent")
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
# kafka-python refuses a header whose value is None (TypeError); the others send it.
NULL_HEADERS = {"kafka-python": False, "aiokafka": True, "confluent": True}
BASE_TS = 1_700_000_000_000
DEFAULT_MAX_MESSAGE_BYTES = 1048588
# Client-side request size caps, raised so that the broker, not the client,
# decides at the max.message.bytes boundary.
CLIENT_MAX_REQUEST = 4 * 1024 * 1024
DEADLINE_S = 30.0


# -- the records ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp_ms: int | None = None
    partition: int | None = None  # None: the client's partitioner decides


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What the producer was told: where the record went, or the Kafka error code."""

    partition: int
    offset: int  # -1 when unknown (acks=0)
    error_code: int = 0
    error: str = ""
    timestamp_ms: int | None = None  # as the client reports it (the broker's with LogAppendTime)


@dataclasses.dataclass(frozen=True)
class Consumed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int
    timestamp_type: str  # "create" or "append"


def sample_records(n: int, *, null_headers: bool, timestamps: bool = True, seed: int = 0) -> list[Record]:
    """Keyed records covering binary keys and values, tombstones, empty values,
    compressible and incompressible values, duplicate, empty and null headers."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        key = b"key-%04d-\x00\xff" % i
        if i % 23 == 11:
            key = b""  # an empty key is a key (hashed), not a null one
        elif i % 23 == 17 and i % 6 != 1:
            key = None  # the partitioner picks; clients refuse a null key with a null value
        value = {
            0: rng.randbytes(rng.randint(1, 64)),
            1: None,  # tombstone
            2: b"",
            3: b"compressible text %d " % i * 100,
            4: bytes(range(256)),
            5: "ünïcödé ✓ %d".encode() % i,
        }[i % 6]
        headers = {
            0: (),
            1: (("trace-id", b"abc-%d" % i), ("bin", b"\x00\x01\xfe\xff"), ("empty", b"")),
            2: (("dup", b"1"), ("dup", b"2"), ("null", None) if null_headers else ("ünï", b"x")),
            3: (("null", None),) if null_headers else (("k", b"v"),),
        }[i % 4]
        records.append(Record(key, value, headers, BASE_TS + 7 * i if timestamps else None))
    return records


def expected_by_partition(records: list[Record], deliveries: list[Delivery]) -> dict[int, list[Record]]:
    out: dict[int, list[Record]] = {}
    for record, delivery in zip(records, deliveries):
        partition = delivery.partition if delivery.partition >= 0 else record.partition
        out.setdefault(partition, []).append(record)
    return out


# -- topics and offsets over the project's own raw client ---------------------------


def create_topic(bootstrap: str, name: str, partitions: int = 3, configs: dict[str, str] | None = None) -> None:
    with RawClient(bootstrap) as raw:
        resp = raw.request("CreateTopics", 5, {"topics": [{
            "name": name, "num_partitions": partitions, "replication_factor": 1, "assignments": [],
            "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()]}],
            "timeout_ms": 10000, "validate_only": False})
    result = resp.topics[0]
    assert result.error_code == 0, result.error_message
    assert result.num_partitions == partitions


def list_offsets(bootstrap: str, topic: str, partitions, timestamp: int) -> dict[int, int]:
    with RawClient(bootstrap) as raw:
        resp = raw.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [{
            "name": topic, "partitions": [{"partition_index": p, "timestamp": timestamp} for p in partitions]}]})
    out = {}
    for p in resp.topics[0].partitions:
        assert p.error_code == 0, (topic, p)
        out[p.partition_index] = p.offset
    return out


def end_offsets(bootstrap: str, topic: str, partitions) -> dict[int, int]:
    return list_offsets(bootstrap, topic, partitions, -1)


def wait_for_end_offsets(bootstrap: str, topic: str, partitions, total: int) -> dict[int, int]:
    """Poll the high watermarks until they add up to at least `total` (acks=0 has no ack to wait for)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        ends = end_offsets(bootstrap, topic, partitions)
        if sum(ends.values()) >= total or time.monotonic() > deadline:
            return ends
        time.sleep(0.05)


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- producing -------------------------------------------------------------------


def produce(client: str, bootstrap: str, topic: str, records: list[Record], *, codec: str = "none",
            acks: int = -1, linger_ms: int = 5, client_config: dict | None = None) -> list[Delivery]:
    """Send `records` in order with one producer of `client`; one Delivery per
    record. `client_config` adds or overrides that client's own settings."""
    fn = {"kafka-python": _produce_kafka_python, "aiokafka": _produce_aiokafka,
          "confluent": _produce_confluent}[client]
    deliveries = fn(bootstrap, topic, records, codec, acks, linger_ms, client_config or {})
    assert len(deliveries) == len(records)
    return deliveries


def _error_code(exc: BaseException) -> int:
    code = getattr(exc, "errno", None)
    return code if isinstance(code, int) and code > 0 else -1


def _produce_kafka_python(bootstrap, topic, records, codec, acks, linger_ms, client_config):
    from kafka import KafkaProducer

    # kafka-python 3 enables idempotence by default; this producer is the plain
    # one (test_kafka_python_default_producer covers the default).
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all" if acks == -1 else acks,
        compression_type=None if codec == "none" else codec, linger_ms=linger_ms,
        **{"enable_idempotence": False, "max_request_size": CLIENT_MAX_REQUEST, "request_timeout_ms": 15000,
           "max_block_ms": 15000, "retries": 0, **client_config})
    try:
        futures = []
        for r in records:
            try:  # send() itself raises when it cannot get the topic's metadata in time
                futures.append(producer.send(topic, key=r.key, value=r.value, headers=list(r.headers),
                                             timestamp_ms=r.timestamp_ms, partition=r.partition))
            except Exception as exc:  # noqa: BLE001 - a delivery failure is a result here
                futures.append(exc)
        producer.flush(DEADLINE_S)
        out = []
        for f in futures:
            try:
                if isinstance(f, Exception):
                    raise f
                md = f.get(DEADLINE_S)
            except Exception as exc:  # noqa: BLE001
                out.append(Delivery(-1, -1, _error_code(exc), repr(exc)))
            else:
                out.append(Delivery(md.partition, md.offset if md.offset >= 0 else -1,
                                    timestamp_ms=md.timestamp))
        return out
    finally:
        producer.close(timeout=5)


def _produce_aiokafka(bootstrap, topic, records, codec, acks, linger_ms, client_config):
    from aiokafka import AIOKafkaProducer

    async def run():
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all" if acks == -1 else acks,
            compression_type=None if codec == "none" else codec, linger_ms=linger_ms,
            **{"max_request_size": CLIENT_MAX_REQUEST, "request_timeout_ms": 15000, **client_config})
        await producer.start()
        try:
            futures = []
            for r in records:
                try:  # send() itself raises when it cannot get the topic's metadata in time
                    futures.append(await producer.send(topic, key=r.key, value=r.value, headers=list(r.headers),
                                                       timestamp_ms=r.timestamp_ms, partition=r.partition))
                except Exception as exc:  # noqa: BLE001
                    futures.append(asyncio.get_running_loop().create_future())
                    futures[-1].set_exception(exc)
            results = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            await producer.stop()
        out = []
        for md in results:
            if isinstance(md, BaseException):
                out.append(Delivery(-1, -1, _error_code(md), repr(md)))
            elif md is None:  # acks=0: aiokafka reports nothing, the partition was explicit
                out.append(Delivery(-1, -1))
            else:
                out.append(Delivery(md.partition, md.offset if md.offset >= 0 else -1,
                                    timestamp_ms=md.timestamp))
        return out

    return asyncio.run(run())


def _produce_confluent(bootstrap, topic, records, codec, acks, linger_ms, client_config):
    from confluent_kafka import Producer

    producer = Producer({
        "bootstrap.servers": bootstrap, "acks": "all" if acks == -1 else str(acks),
        "compression.type": codec, "linger.ms": linger_ms, "enable.idempotence": False,
        "message.max.bytes": CLIENT_MAX_REQUEST, "message.timeout.ms": int(DEADLINE_S * 1000),
        "retries": 0, **client_config})
    out: list[Delivery | None] = [None] * len(records)

    def on_delivery(index, err, msg):
        if err is not None:
            out[index] = Delivery(-1, -1, err.code(), str(err))
        else:
            offset = msg.offset()  # None with acks=0
            out[index] = Delivery(msg.partition(), offset if offset is not None and offset >= 0 else -1,
                                  timestamp_ms=msg.timestamp()[1])

    for i, r in enumerate(records):
        kwargs = {"key": r.key, "value": r.value, "headers": list(r.headers),
                  "on_delivery": lambda err, msg, i=i: on_delivery(i, err, msg)}
        if r.timestamp_ms is not None:
            kwargs["timestamp"] = r.timestamp_ms
        if r.partition is not None:
            kwargs["partition"] = r.partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(DEADLINE_S) == 0, "confluent producer did not deliver everything in time"
    assert all(d is not None for d in out)
    return out


# -- consuming -------------------------------------------------------------------


def consume(client: str, bootstrap: str, topic: str, until: dict[int, int], *,
            start: dict[int, int] | None = None, max_partition_fetch_bytes: int | None = None,
            fetch_max_bytes: int | None = None) -> list[Consumed]:
    """Everything from the start of each partition in `until` (or from the offset
    in `start`) up to, excluding, its offset in `until`, in the order the
    consumer returned it. An out-of-range start resets to the earliest offset.
    Gives up after DEADLINE_S and returns what it has (the caller's comparison
    then shows the gap)."""
    wanted = {p: end for p, end in until.items() if end > 0}
    if not wanted:
        return []
    fn = {"kafka-python": _consume_kafka_python, "aiokafka": _consume_aiokafka,
          "confluent": _consume_confluent}[client]
    return fn(bootstrap, topic, wanted, start or {}, max_partition_fetch_bytes, fetch_max_bytes)


def by_partition(consumed: list[Consumed]) -> dict[int, list[Consumed]]:
    out: dict[int, list[Consumed]] = {}
    for c in consumed:
        out.setdefault(c.partition, []).append(c)
    return out


def _headers(raw) -> tuple[tuple[str, bytes | None], ...]:
    return tuple((k, v) for k, v in (raw or ()))


def _track(out, remaining, record: Consumed) -> None:
    out.append(record)
    end = remaining.get(record.partition)
    if end is not None and record.offset + 1 >= end:
        del remaining[record.partition]


def _consume_kafka_python(bootstrap, topic, wanted, start, max_partition_fetch_bytes, fetch_max_bytes):
    from kafka import KafkaConsumer, TopicPartition

    settings = {"max_partition_fetch_bytes": max_partition_fetch_bytes, "fetch_max_bytes": fetch_max_bytes}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=100, request_timeout_ms=15000, auto_offset_reset="earliest",
                             **{k: v for k, v in settings.items() if v is not None})
    try:
        tps = [TopicPartition(topic, p) for p in sorted(wanted)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        for p, offset in start.items():
            consumer.seek(TopicPartition(topic, p), offset)
        out: list[Consumed] = []
        remaining = dict(wanted)
        deadline = time.monotonic() + DEADLINE_S
        while remaining and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=200).items():
                for m in messages:
                    _track(out, remaining, Consumed(
                        tp.partition, m.offset, m.key, m.value, _headers(m.headers), m.timestamp,
                        "append" if m.timestamp_type == 1 else "create"))
        return out
    finally:
        consumer.close(autocommit=False)


def _consume_aiokafka(bootstrap, topic, wanted, start, max_partition_fetch_bytes, fetch_max_bytes):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    settings = {"max_partition_fetch_bytes": max_partition_fetch_bytes, "fetch_max_bytes": fetch_max_bytes}

    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    fetch_max_wait_ms=100, request_timeout_ms=15000, auto_offset_reset="earliest",
                                    **{k: v for k, v in settings.items() if v is not None})
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in sorted(wanted)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            for p, offset in start.items():
                consumer.seek(TopicPartition(topic, p), offset)
            out: list[Consumed] = []
            remaining = dict(wanted)
            deadline = time.monotonic() + DEADLINE_S
            while remaining and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for tp, messages in batches.items():
                    for m in messages:
                        _track(out, remaining, Consumed(
                            tp.partition, m.offset, m.key, m.value, _headers(m.headers), m.timestamp,
                            "append" if m.timestamp_type == 1 else "create"))
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def _consume_confluent(bootstrap, topic, wanted, start, max_partition_fetch_bytes, fetch_max_bytes):
    from confluent_kafka import (
        OFFSET_BEGINNING,
        TIMESTAMP_LOG_APPEND_TIME,
        Consumer,
        KafkaError,
        TopicPartition,
    )

    config = {
        # Mandatory for a librdkafka consumer; with assign() and no commits it joins no group.
        "group.id": f"unused-{uuid.uuid4().hex[:8]}", "bootstrap.servers": bootstrap,
        "enable.auto.commit": False, "enable.auto.offset.store": False, "fetch.wait.max.ms": 100,
        "auto.offset.reset": "earliest",
    }
    if max_partition_fetch_bytes is not None:
        config["max.partition.fetch.bytes"] = max_partition_fetch_bytes
    if fetch_max_bytes is not None:
        # librdkafka insists on fetch.max.bytes >= message.max.bytes.
        config["fetch.max.bytes"] = config["message.max.bytes"] = fetch_max_bytes
    consumer = Consumer(config)
    try:
        consumer.assign([TopicPartition(topic, p, start.get(p, OFFSET_BEGINNING)) for p in sorted(wanted)])
        out: list[Consumed] = []
        remaining = dict(wanted)
        deadline = time.monotonic() + DEADLINE_S
        while remaining and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=0.2):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"confluent consumer error: {m.error()}")
                ts_type, ts = m.timestamp()
                _track(out, remaining, Consumed(
                    m.partition(), m.offset(), m.key(), m.value(), _headers(m.headers()), ts,
                    "append" if ts_type == TIMESTAMP_LOG_APPEND_TIME else "create"))
        return out
    finally:
        consumer.close()


# -- assertions ------------------------------------------------------------------


def assert_round_trip(records: list[Record], deliveries: list[Delivery], consumed: list[Consumed], *,
                      offsets_known: bool = True, created_between: tuple[int, int] | None = None) -> None:
    """Each partition holds exactly the records sent to it, in produce order, from offset 0."""
    failed = [d for d in deliveries if d.error_code]
    assert not failed, failed[:3]
    expected = expected_by_partition(records, deliveries)
    got = by_partition(consumed)
    assert sorted(got) == sorted(expected)
    for partition, sent in expected.items():
        read = got[partition]
        assert [c.offset for c in read] == list(range(len(sent))), partition
        if offsets_known:
            assert [d.offset for d in deliveries if d.partition == partition] == list(range(len(sent)))
        assert [(c.key, c.value, c.headers) for c in read] == [(r.key, r.value, r.headers) for r in sent]
        for c, r in zip(read, sent):
            assert c.timestamp_type == "create"
            if r.timestamp_ms is not None:
                assert c.timestamp_ms == r.timestamp_ms
            elif created_between is not None:
                assert created_between[0] <= c.timestamp_ms <= created_between[1]


# -- the broker --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory):
    """One broker for the whole module: every test works in its own topic."""
    proc = BrokerProcess(tmp_path_factory.mktemp("clients")).start()
    yield proc
    proc.kill()


# -- tests -------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", CLIENTS)
def test_round_trip_with_codec(shared_broker, client, codec):
    topic = unique_topic(f"rt-{client}-{codec}")
    create_topic(shared_broker.bootstrap, topic, 3)
    records = sample_records(60, null_headers=NULL_HEADERS[client], seed=CODECS.index(codec))
    deliveries = produce(client, shared_broker.bootstrap, topic, records, codec=codec)
    assert {d.partition for d in deliveries} == {0, 1, 2}, "the keys should spread over all partitions"
    ends = end_offsets(shared_broker.bootstrap, topic, range(3))
    assert ends == {p: len(rs) for p, rs in expected_by_partition(records, deliveries).items()}
    consumed = consume(client, shared_broker.bootstrap, topic, ends)
    assert_round_trip(records, deliveries, consumed)


CROSS_CASES = [
    (producer, consumer, codec)
    for (producer, consumer), codec in zip(itertools.permutations(CLIENTS, 2),
                                           ["zstd", "lz4", "snappy", "gzip", "none", "zstd"])
]


@pytest.mark.parametrize(("producer", "consumer", "codec"), CROSS_CASES)
def test_cross_client(shared_broker, producer, consumer, codec):
    topic = unique_topic(f"x-{producer}-{consumer}")
    create_topic(shared_broker.bootstrap, topic, 3)
    records = sample_records(40, null_headers=NULL_HEADERS[producer], seed=7)
    deliveries = produce(producer, shared_broker.bootstrap, topic, records, codec=codec)
    ends = end_offsets(shared_broker.bootstrap, topic, range(3))
    consumed = consume(consumer, shared_broker.bootstrap, topic, ends)
    assert_round_trip(records, deliveries, consumed)


@pytest.mark.parametrize("acks", [-1, 1, 0])
@pytest.mark.parametrize("client", CLIENTS)
def test_acks(shared_broker, client, acks):
    """acks=0 gets no answer at all: consuming proves the data arrived. The
    producer leaves timestamps to the client, which stamps its wall clock.
    Partitions are explicit: with acks=0 aiokafka does not report them."""
    topic = unique_topic(f"acks{acks}-{client}")
    create_topic(shared_broker.bootstrap, topic, 3)
    records = [dataclasses.replace(r, partition=i % 3) for i, r in enumerate(
        sample_records(30, null_headers=NULL_HEADERS[client], timestamps=False, seed=acks))]
    before = int(time.time() * 1000)
    deliveries = produce(client, shared_broker.bootstrap, topic, records, acks=acks)
    after = int(time.time() * 1000)
    ends = wait_for_end_offsets(shared_broker.bootstrap, topic, range(3), len(records))
    assert sum(ends.values()) == len(records)
    consumed = consume(client, shared_broker.bootstrap, topic, ends)
    assert_round_trip(records, deliveries, consumed, offsets_known=acks != 0,
                      created_between=(before - 1000, after + 1000))


@pytest.mark.parametrize("consumer", CLIENTS)
def test_consumption_spans_many_fetches(shared_broker, consumer):
    """Thousands of records read with small fetch limits: hundreds of fetches,
    each cut at the partition and request byte limits on batch boundaries."""
    topic = unique_topic(f"many-{consumer}")
    create_topic(shared_broker.bootstrap, topic, 3)
    rng = random.Random(99)
    records = [Record(b"k%05d" % i, rng.randbytes(200) + b"payload %d " % i * 40,
                      (("seq", str(i).encode()),), BASE_TS + i) for i in range(3000)]
    # Small producer batches: a few hundred of them, so a few hundred fetches.
    deliveries = produce("confluent", shared_broker.bootstrap, topic, records, codec="lz4",
                         client_config={"batch.size": 16384})
    ends = end_offsets(shared_broker.bootstrap, topic, range(3))
    assert sum(ends.values()) == 3000
    consumed = consume(consumer, shared_broker.bootstrap, topic, ends,
                       max_partition_fetch_bytes=8192, fetch_max_bytes=16384)
    assert_round_trip(records, deliveries, consumed)


@pytest.mark.parametrize("client", CLIENTS)
def test_log_append_time_topic(shared_broker, client):
    """With message.timestamp.type=LogAppendTime the broker stamps each (still
    compressed) batch; every client then reports the broker's time, not the
    producer's, for every record in it."""
    topic = unique_topic(f"lat-{client}")
    create_topic(shared_broker.bootstrap, topic, 3, {"message.timestamp.type": "LogAppendTime"})
    records = sample_records(30, null_headers=NULL_HEADERS[client], seed=4)  # producer timestamps in 2023
    before = int(time.time() * 1000)
    deliveries = produce(client, shared_broker.bootstrap, topic, records, codec="gzip")
    after = int(time.time() * 1000)
    assert not [d for d in deliveries if d.error_code]
    ends = end_offsets(shared_broker.bootstrap, topic, range(3))
    consumed = consume(client, shared_broker.bootstrap, topic, ends)
    expected = expected_by_partition(records, deliveries)
    got = by_partition(consumed)
    assert {p: [(c.key, c.value, c.headers) for c in cs] for p, cs in got.items()} == {
        p: [(r.key, r.value, r.headers) for r in rs] for p, rs in expected.items()}
    for c in consumed:
        assert c.timestamp_type == "append", c
        assert before - 1000 <= c.timestamp_ms <= after + 1000, c
    # The produce answer carries the append time; each client reports it per record.
    appended = {(c.partition, c.offset): c.timestamp_ms for c in consumed}
    assert [d.timestamp_ms for d in deliveries] == [appended[(d.partition, d.offset)] for d in deliveries]


@pytest.mark.parametrize("client", CLIENTS)
def test_seek_into_a_batch_and_out_of_range(shared_broker, client):
    """A fetch from an offset inside a batch gets the whole batch and the client
    skips what is before its position; a position below the log start offset or
    past the end answers OFFSET_OUT_OF_RANGE, and the client resets to earliest."""
    topic = unique_topic(f"seek-{client}")
    create_topic(shared_broker.bootstrap, topic, 3)
    records = [Record(b"k%d" % i, b"v%d" % i, (), BASE_TS + i, partition=i % 3) for i in range(30)]
    # One batch per partition (one producer, generous linger), compressed.
    deliveries = produce("confluent", shared_broker.bootstrap, topic, records, codec="snappy", linger_ms=200)
    assert not [d for d in deliveries if d.error_code]
    with RawClient(shared_broker.bootstrap) as raw:
        trimmed = raw.request("DeleteRecords", 2, {"topics": [{"name": topic, "partitions": [
            {"partition_index": 2, "offset": 4}]}], "timeout_ms": 5000})
    assert trimmed.topics[0].partitions[0].low_watermark == 4
    consumed = consume(client, shared_broker.bootstrap, topic, {0: 10, 1: 10, 2: 10},
                       start={0: 7, 1: 1000, 2: 1})
    got = {p: [(c.offset, c.value) for c in cs] for p, cs in by_partition(consumed).items()}
    assert got == {
        0: [(o, b"v%d" % (3 * o)) for o in range(7, 10)],
        1: [(o, b"v%d" % (3 * o + 1)) for o in range(10)],
        2: [(o, b"v%d" % (3 * o + 2)) for o in range(4, 10)],
    }


@pytest.mark.parametrize("client", ["kafka-python", "aiokafka", "confluent"])
def test_idempotent_producer(shared_broker, client):
    """An idempotent producer (InitProducerId, then producer ids and sequences in
    every batch) round-trips like a plain one. kafka-python >= 3 enables
    idempotence by default, as the Java client does since 3.0."""
    topic = unique_topic(f"idem-{client}")
    create_topic(shared_broker.bootstrap, topic, 3)
    records = sample_records(60, null_headers=NULL_HEADERS[client], seed=8)
    config = {"kafka-python": {"enable_idempotence": True, "retries": 5},
              "aiokafka": {"enable_idempotence": True},
              "confluent": {"enable.idempotence": True, "retries": 5}}[client]
    deliveries = produce(client, shared_broker.bootstrap, topic, records, codec="lz4", client_config=config)
    ends = end_offsets(shared_broker.bootstrap, topic, range(3))
    consumed = consume(client, shared_broker.bootstrap, topic, ends)
    assert_round_trip(records, deliveries, consumed)


def test_concurrent_producers(shared_broker):
    """The three clients produce to one topic at once (acks=all, so their fsyncs
    are grouped): every record lands exactly once, at the offset its producer was
    told, and each producer's records keep their order within a partition."""
    topic = unique_topic("concurrent")
    create_topic(shared_broker.bootstrap, topic, 3)
    sent = {}
    for n, client in enumerate(CLIENTS):
        sent[client] = [dataclasses.replace(r, key=None if r.key is None else client.encode() + b"/" + r.key)
                        for r in sample_records(300, null_headers=NULL_HEADERS[client], seed=20 + n)]
    with concurrent.futures.ThreadPoolExecutor(len(CLIENTS)) as pool:
        futures = {client: pool.submit(produce, client, shared_broker.bootstrap, topic, sent[client],
                                       codec=codec)
                   for client, codec in zip(CLIENTS, ["gzip", "zstd", "lz4"])}
        delivered = {client: f.result() for client, f in futures.items()}
    failed = {c: [d for d in ds if d.error_code] for c, ds in delivered.items()}
    assert failed == {c: [] for c in CLIENTS}
    ends = end_offsets(shared_broker.bootstrap, topic, range(3))
    assert sum(ends.values()) == sum(len(rs) for rs in sent.values())
    consumed = consume("confluent", shared_broker.bootstrap, topic, ends)
    at = {(c.partition, c.offset): c for c in consumed}
    assert len(at) == len(consumed) == sum(ends.values())
    for client in CLIENTS:
        offsets_seen = {}
        for record, delivery in zip(sent[client], delivered[client]):
            assert delivery.error_code == 0, delivery
            c = at[(delivery.partition, delivery.offset)]
            assert (c.key, c.value, c.headers, c.timestamp_ms) == (
                record.key, record.value, record.headers, record.timestamp_ms)
            # Produce order within a partition is offset order.
            assert delivery.offset > offsets_seen.get(delivery.partition, -1)
            offsets_seen[delivery.partition] = delivery.offset


def _single_record_batch_size(key: bytes, value_len: int) -> int:
    """Bytes of an uncompressed batch holding one header-less record: what a client sends."""
    return len(build_batch([(key, b"\x00" * value_len, (), BASE_TS)]))


@pytest.mark.parametrize("client", CLIENTS)
def test_record_at_max_message_bytes(shared_broker, client):
    """A batch of exactly max.message.bytes is stored and read back whole (larger
    than the clients' default 1 MiB partition fetch limit: KIP-74); one byte more
    is refused with MESSAGE_TOO_LARGE and leaves the log untouched."""
    topic = unique_topic(f"big-{client}")
    create_topic(shared_broker.bootstrap, topic, 1)
    key = b"big"
    value_len = DEFAULT_MAX_MESSAGE_BYTES - _single_record_batch_size(key, 0)
    while _single_record_batch_size(key, value_len) > DEFAULT_MAX_MESSAGE_BYTES:
        value_len -= 1  # the value's length varint grows with it
    assert _single_record_batch_size(key, value_len) == DEFAULT_MAX_MESSAGE_BYTES
    value = random.Random(5).randbytes(value_len)
    fits = Record(key, value, (), BASE_TS, partition=0)
    too_big = Record(key, value + b"!", (), BASE_TS, partition=0)

    [ok] = produce(client, shared_broker.bootstrap, topic, [fits])
    assert (ok.error_code, ok.partition, ok.offset) == (0, 0, 0), ok
    [refused] = produce(client, shared_broker.bootstrap, topic, [too_big])
    assert refused.error_code == errors.MessageTooLarge.code, refused
    assert end_offsets(shared_broker.bootstrap, topic, [0]) == {0: 1}

    [got] = consume(client, shared_broker.bootstrap, topic, {0: 1})
    assert (got.partition, got.offset, got.key, got.timestamp_ms) == (0, 0, key, BASE_TS)
    assert got.value == value
