"""Topic administration through real admin clients (kafka-python, aiokafka,
confluent-kafka) against a real broker process: create with configs, describe
(values and sources), alter (whole and incremental), add partitions, delete
records, delete topics, the error answers, ListOffsets, topics surviving a
restart, and auto-creation.
"""

from __future__ import annotations

import asyncio

import pytest

from broker.protocol import errors
from tests.e2e.test_clients import (
    BASE_TS,
    CLIENTS,
    DEADLINE_S,
    NULL_HEADERS,
    Record,
    assert_round_trip,
    by_partition,
    consume,
    create_topic,
    end_offsets,
    expected_by_partition,
    list_offsets,
    produce,
    sample_records,
    unique_topic,
)
from tests.support.broker import BrokerProcess
from tests.support.raw_client import RawClient

# The admin broker is started with these: a static broker value shows up as the
# source of every topic that does not override it.
STATIC_SEGMENT_BYTES = "536870912"
ADMIN_BROKER_OVERRIDES = {"auto.create.topics.enable": "false", "log.segment.bytes": STATIC_SEGMENT_BYTES}
DEFAULT_RETENTION_MS = "604800000"
DEFAULT_MAX_MESSAGE_BYTES = "1048588"
SOURCES = {1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG", 3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
           4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG", 6: "DYNAMIC_BROKER_LOGGER_CONFIG"}


class AdminError(Exception):
    """A Kafka error an admin call answered with: its code and the broker's message."""

    def __init__(self, code: int, message: str | None):
        super().__init__(f"error {code}: {message}")
        self.code = code
        self.message = message or ""


def _code_of(exc: BaseException) -> int:
    return getattr(exc, "errno", -1)


# -- admin client adapters: one small interface over three libraries -----------------


class KafkaPythonAdmin:
    name = "kafka-python"

    def __init__(self, bootstrap: str):
        from kafka.admin import KafkaAdminClient

        self.client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)

    def close(self):
        self.client.close()

    def create_topic(self, name, partitions, configs=None, replication_factor=1):
        from kafka.admin import NewTopic

        resp = self.client.create_topics([NewTopic(name, partitions, replication_factor,
                                                   topic_configs=configs or {})], raise_errors=False)
        [topic] = resp["topics"]
        if topic["error_code"]:
            raise AdminError(topic["error_code"], topic["error_message"])

    def describe(self, name) -> dict[str, tuple[str, str]]:
        from kafka.admin import ConfigResource, ConfigResourceType

        found = self.client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)],
                                             config_filter="all")
        configs = found["topic"][name]
        if not configs:
            # kafka-python drops the resource's error code: an unknown topic is just empty.
            raise AdminError(-1, "kafka-python answered no configs")
        return {k: (v["value"], v["config_source"]) for k, v in configs.items()}

    def describe_synonyms(self, name, key) -> list[tuple[str, str | None, str]]:
        from kafka.admin import ConfigResource, ConfigResourceType

        found = self.client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name, [key])],
                                             include_synonyms=True, config_filter="all")
        return [(s["name"], s["value"], s["source"]) for s in found["topic"][name][key]["synonyms"]]

    def _alter(self, name, configs, incremental):
        from kafka.admin import ConfigResource, ConfigResourceType

        resp = self.client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=configs)],
                                         incremental=incremental, raise_on_unknown=False)
        result = resp["topic"][name]
        if result != "OK":
            raise AdminError(-1, result)

    def alter_configs(self, name, configs):
        self._alter(name, dict(configs), incremental=False)

    def incremental_alter(self, name, sets, deletes=()):
        from kafka.admin import AlterConfigOp

        ops = {k: (AlterConfigOp.SET, v) for k, v in sets.items()}
        ops.update({k: (AlterConfigOp.DELETE, None) for k in deletes})
        self._alter(name, ops, incremental=True)

    def create_partitions(self, name, total):
        from kafka.admin import NewPartitions

        resp = self.client.create_partitions({name: NewPartitions(total)}, raise_errors=False)
        [result] = resp.results
        if result.error_code:
            raise AdminError(result.error_code, result.error_message)

    def delete_records(self, name, offsets: dict[int, int]) -> dict[int, int]:
        from kafka import TopicPartition

        try:
            resp = self.client.delete_records({TopicPartition(name, p): o for p, o in offsets.items()})
        except Exception as exc:  # noqa: BLE001
            raise AdminError(_code_of(exc), str(exc)) from None
        out = {}
        for tp, result in resp.items():
            if result["error_code"]:
                raise AdminError(result["error_code"], None)
            out[tp.partition] = result["low_watermark"]
        return out

    def delete_topic(self, name):
        resp = self.client.delete_topics([name], raise_errors=False)
        [result] = resp["topics"]
        if result["error_code"]:
            raise AdminError(result["error_code"], result.get("error_message"))

    def topics(self) -> set[str]:
        return set(self.client.list_topics())

    def partition_count(self, name) -> int:
        [topic] = self.client.describe_topics([name])
        return len(topic["partitions"])

    def list_offsets(self, name, specs: dict[int, int]) -> dict[int, tuple[int, int]]:
        from kafka import TopicPartition

        found = self.client.list_partition_offsets({TopicPartition(name, p): s for p, s in specs.items()})
        return {tp.partition: (o.offset, o.timestamp) for tp, o in found.items()}


class ConfluentAdmin:
    name = "confluent"

    def __init__(self, bootstrap: str):
        from confluent_kafka.admin import AdminClient

        self.client = AdminClient({"bootstrap.servers": bootstrap})

    def close(self):
        pass

    @staticmethod
    def _one(futures):
        [future] = futures.values()
        try:
            return future.result(DEADLINE_S)
        except Exception as exc:
            err = exc.args[0] if exc.args else None
            if hasattr(err, "code"):
                raise AdminError(err.code(), err.str()) from None
            raise

    def create_topic(self, name, partitions, configs=None, replication_factor=1):
        from confluent_kafka.admin import NewTopic

        self._one(self.client.create_topics([NewTopic(name, partitions, replication_factor,
                                                      config=configs or {})]))

    def describe(self, name):
        from confluent_kafka.admin import ConfigResource, ResourceType

        configs = self._one(self.client.describe_configs([ConfigResource(ResourceType.TOPIC, name)]))
        return {k: (e.value, SOURCES[int(e.source)]) for k, e in configs.items()}

    def alter_configs(self, name, configs):
        from confluent_kafka.admin import ConfigResource, ResourceType

        self._one(self.client.alter_configs([ConfigResource(ResourceType.TOPIC, name, set_config=configs)]))

    def incremental_alter(self, name, sets, deletes=()):
        from confluent_kafka.admin import (
            AlterConfigOpType,
            ConfigEntry,
            ConfigResource,
            ResourceType,
        )

        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in sets.items()]
        entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in deletes]
        self._one(self.client.incremental_alter_configs(
            [ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)]))

    def create_partitions(self, name, total):
        from confluent_kafka.admin import NewPartitions

        self._one(self.client.create_partitions([NewPartitions(name, total)]))

    def delete_records(self, name, offsets):
        from confluent_kafka import TopicPartition

        futures = self.client.delete_records([TopicPartition(name, p, o) for p, o in offsets.items()])
        out = {}
        for tp, future in futures.items():
            try:
                out[tp.partition] = future.result(DEADLINE_S).low_watermark
            except Exception as exc:  # noqa: BLE001
                err = exc.args[0]
                raise AdminError(err.code(), err.str()) from None
        return out

    def delete_topic(self, name):
        self._one(self.client.delete_topics([name]))

    def topics(self):
        return set(self.client.list_topics(timeout=DEADLINE_S).topics)

    def partition_count(self, name):
        from confluent_kafka import TopicCollection

        futures = self.client.describe_topics(TopicCollection([name]))
        return len(self._one(futures).partitions)

    def list_offsets(self, name, specs):
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        def spec(s):
            return {-1: OffsetSpec.latest(), -2: OffsetSpec.earliest(),
                    -3: OffsetSpec.max_timestamp()}.get(s) or OffsetSpec.for_timestamp(s)

        futures = self.client.list_offsets({TopicPartition(name, p): spec(s) for p, s in specs.items()})
        out = {}
        for tp, future in futures.items():
            info = future.result(DEADLINE_S)
            out[tp.partition] = (info.offset, info.timestamp)
        return out


class AiokafkaAdmin:
    """Runs aiokafka's admin client on a private event loop, call by call."""

    name = "aiokafka"

    def __init__(self, bootstrap: str):
        from aiokafka.admin import AIOKafkaAdminClient

        self.loop = asyncio.new_event_loop()

        async def start():
            client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
            await client.start()
            return client

        self.client = self.loop.run_until_complete(start())

    def _run(self, coro):
        try:
            return self.loop.run_until_complete(coro)
        except Exception as exc:
            if isinstance(getattr(exc, "errno", None), int):
                raise AdminError(exc.errno, str(exc)) from None
            raise

    def close(self):
        self._run(self.client.close())
        self.loop.close()

    def create_topic(self, name, partitions, configs=None, replication_factor=1):
        from aiokafka.admin import NewTopic

        resp = self._run(self.client.create_topics([NewTopic(name, partitions, replication_factor,
                                                             topic_configs=configs or {})]))
        [(_, code, *rest)] = resp.topic_errors
        if code:
            raise AdminError(code, rest[0] if rest else None)

    def describe(self, name):
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        [resp] = self._run(self.client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)]))
        [(code, message, _, _, entries)] = resp.resources
        if code:
            raise AdminError(code, message)
        return {e[0]: (e[1], SOURCES[e[3]]) for e in entries}

    def alter_configs(self, name, configs):
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        [resp] = self._run(self.client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs)]))
        [(code, message, *_)] = resp.resources
        if code:
            raise AdminError(code, message)

    def incremental_alter(self, name, sets, deletes=()):
        pytest.skip("aiokafka's admin client has no IncrementalAlterConfigs")

    def create_partitions(self, name, total):
        from aiokafka.admin import NewPartitions

        resp = self._run(self.client.create_partitions({name: NewPartitions(total)}))
        [(_, code, message)] = resp.topic_errors
        if code:
            raise AdminError(code, message)

    def delete_records(self, name, offsets):
        from aiokafka import TopicPartition
        from aiokafka.admin.records_to_delete import RecordsToDelete

        found = self._run(self.client.delete_records(
            {TopicPartition(name, p): RecordsToDelete(o) for p, o in offsets.items()}))
        return {tp.partition: low for tp, low in found.items()}

    def delete_topic(self, name):
        resp = self._run(self.client.delete_topics([name]))
        [(_, code, *_)] = resp.topic_error_codes
        if code:
            raise AdminError(code, None)

    def topics(self):
        return set(self._run(self.client.list_topics()))

    def partition_count(self, name):
        [topic] = self._run(self.client.describe_topics([name]))
        assert topic["error_code"] == 0, topic
        return len(topic["partitions"])

    def list_offsets(self, name, specs):
        pytest.skip("aiokafka's admin client has no ListOffsets (its consumer is covered separately)")


ADMINS = {"kafka-python": KafkaPythonAdmin, "confluent": ConfluentAdmin, "aiokafka": AiokafkaAdmin}


@pytest.fixture(scope="module")
def admin_broker(tmp_path_factory):
    proc = BrokerProcess(tmp_path_factory.mktemp("admin"), ADMIN_BROKER_OVERRIDES).start()
    yield proc
    proc.kill()


@pytest.fixture(params=CLIENTS)
def admin(request, admin_broker):
    client = ADMINS[request.param](admin_broker.bootstrap)
    yield client
    client.close()


def raw_error_code(exc_info) -> int:
    return exc_info.value.code


# -- create, describe, alter, grow, trim, delete ----------------------------------------


def test_create_and_describe_configs(admin):
    topic = unique_topic(f"cfg-{admin.name}")
    admin.create_topic(topic, 2, {"retention.ms": "3600000", "segment.bytes": "1048576"})
    assert admin.partition_count(topic) == 2
    configs = admin.describe(topic)
    assert configs["retention.ms"] == ("3600000", "DYNAMIC_TOPIC_CONFIG")
    assert configs["segment.bytes"] == ("1048576", "DYNAMIC_TOPIC_CONFIG")
    assert configs["max.message.bytes"] == (DEFAULT_MAX_MESSAGE_BYTES, "DEFAULT_CONFIG")
    assert configs["cleanup.policy"] == ("delete", "DEFAULT_CONFIG")

    # A topic without overrides inherits the broker's static log.segment.bytes.
    plain = unique_topic(f"plain-{admin.name}")
    admin.create_topic(plain, 1)
    assert admin.describe(plain)["segment.bytes"] == (STATIC_SEGMENT_BYTES, "STATIC_BROKER_CONFIG")
    assert admin.describe(plain)["retention.ms"] == (DEFAULT_RETENTION_MS, "DEFAULT_CONFIG")


def test_config_synonyms(admin_broker):
    """Kafka's order: the topic override, then the broker key set at startup, then its default."""
    admin = KafkaPythonAdmin(admin_broker.bootstrap)
    try:
        topic = unique_topic("syn")
        admin.create_topic(topic, 1, {"segment.bytes": "1048576"})
        assert admin.describe_synonyms(topic, "segment.bytes") == [
            ("segment.bytes", "1048576", "DYNAMIC_TOPIC_CONFIG"),
            ("log.segment.bytes", STATIC_SEGMENT_BYTES, "STATIC_BROKER_CONFIG"),
            ("log.segment.bytes", "1073741824", "DEFAULT_CONFIG"),
        ]
    finally:
        admin.close()


def test_alter_configs_replaces_all_overrides(admin):
    """AlterConfigs sets the topic's overrides to exactly what it names; a key it
    leaves out goes back to the inherited value. kafka-python re-sends the other
    overrides itself (it reads them first), so with it they stay."""
    topic = unique_topic(f"alter-{admin.name}")
    admin.create_topic(topic, 1, {"retention.ms": "3600000", "segment.bytes": "1048576"})
    admin.alter_configs(topic, {"retention.ms": "7200000"})
    configs = admin.describe(topic)
    assert configs["retention.ms"] == ("7200000", "DYNAMIC_TOPIC_CONFIG")
    if admin.name == "kafka-python":
        assert configs["segment.bytes"] == ("1048576", "DYNAMIC_TOPIC_CONFIG")
    else:
        assert configs["segment.bytes"] == (STATIC_SEGMENT_BYTES, "STATIC_BROKER_CONFIG")


def test_incremental_alter_configs(admin):
    topic = unique_topic(f"incr-{admin.name}")
    admin.create_topic(topic, 1, {"retention.ms": "3600000", "segment.bytes": "1048576"})
    admin.incremental_alter(topic, {"segment.bytes": "2097152", "max.message.bytes": "500000"},
                            deletes=["retention.ms"])
    configs = admin.describe(topic)
    assert configs["segment.bytes"] == ("2097152", "DYNAMIC_TOPIC_CONFIG")
    assert configs["max.message.bytes"] == ("500000", "DYNAMIC_TOPIC_CONFIG")
    assert configs["retention.ms"] == (DEFAULT_RETENTION_MS, "DEFAULT_CONFIG")
    # Deleting a key that is not overridden is a no-op, not an error.
    admin.incremental_alter(topic, {}, deletes=["retention.ms"])
    assert admin.describe(topic)["segment.bytes"] == ("2097152", "DYNAMIC_TOPIC_CONFIG")


def test_altered_config_takes_effect(admin_broker):
    """A lowered max.message.bytes refuses a batch the old limit accepted."""
    admin = ConfluentAdmin(admin_broker.bootstrap)
    topic = unique_topic("effect")
    admin.create_topic(topic, 1)
    value = b"v" * 20_000
    [ok] = produce("confluent", admin_broker.bootstrap, topic, [Record(b"k", value, (), BASE_TS, 0)])
    assert (ok.error_code, ok.offset) == (0, 0)
    admin.incremental_alter(topic, {"max.message.bytes": "10000"})
    [refused] = produce("confluent", admin_broker.bootstrap, topic, [Record(b"k", value, (), BASE_TS, 0)])
    assert refused.error_code == errors.MessageTooLarge.code
    assert end_offsets(admin_broker.bootstrap, topic, [0]) == {0: 1}


def test_create_partitions_then_produce_to_new_one(admin, admin_broker):
    topic = unique_topic(f"grow-{admin.name}")
    admin.create_topic(topic, 2)
    admin.create_partitions(topic, 4)
    assert admin.partition_count(topic) == 4
    records = [Record(b"k%d" % i, b"v%d" % i, (("i", b"%d" % i),), BASE_TS + i, partition=3) for i in range(5)]
    deliveries = produce("kafka-python", admin_broker.bootstrap, topic, records)
    assert [(d.partition, d.offset) for d in deliveries] == [(3, i) for i in range(5)]
    consumed = consume("confluent", admin_broker.bootstrap, topic, {3: 5})
    assert_round_trip(records, deliveries, consumed)
    with pytest.raises(AdminError) as exc:
        admin.create_partitions(topic, 3)
    assert raw_error_code(exc) == errors.InvalidPartitions.code
    assert admin.partition_count(topic) == 4


def test_assignments_validate_only_and_delete_everything(admin_broker):
    """Replica assignments may only name this broker; a validate-only
    CreatePartitions changes nothing; DeleteRecords to -1 (OFFSET_END) empties
    a partition up to its high watermark."""
    from confluent_kafka import OFFSET_END, TopicPartition
    from confluent_kafka.admin import NewPartitions, NewTopic

    admin = ConfluentAdmin(admin_broker.bootstrap)
    topic = unique_topic("assigned")
    admin._one(admin.client.create_topics([NewTopic(topic, 2, -1, replica_assignment=[[0], [0]])]))
    assert admin.partition_count(topic) == 2
    with pytest.raises(AdminError) as exc:
        admin._one(admin.client.create_topics([NewTopic(unique_topic("misassigned"), 2, -1,
                                                        replica_assignment=[[0], [1]])]))
    assert exc.value.code == errors.InvalidReplicaAssignment.code
    with pytest.raises(AdminError) as exc:
        admin._one(admin.client.create_partitions([NewPartitions(topic, 3, replica_assignment=[[1]])]))
    assert exc.value.code == errors.InvalidReplicaAssignment.code
    admin._one(admin.client.create_partitions([NewPartitions(topic, 3, replica_assignment=[[0]])]))
    admin._one(admin.client.create_partitions([NewPartitions(topic, 10)], validate_only=True))
    assert admin.partition_count(topic) == 3

    produce("confluent", admin_broker.bootstrap, topic, [Record(b"k", b"v%d" % i, (), BASE_TS, 2) for i in range(5)])
    [future] = admin.client.delete_records([TopicPartition(topic, 2, OFFSET_END)]).values()
    assert future.result(DEADLINE_S).low_watermark == 5
    assert list_offsets(admin_broker.bootstrap, topic, [2], -2) == {2: 5}
    assert end_offsets(admin_broker.bootstrap, topic, [2]) == {2: 5}


def test_delete_records(admin, admin_broker):
    topic = unique_topic(f"trim-{admin.name}")
    admin.create_topic(topic, 2)
    records = [Record(b"k%d" % i, b"v%d" % i, (), BASE_TS + i, partition=i % 2) for i in range(10)]
    produce("confluent", admin_broker.bootstrap, topic, records)
    assert admin.delete_records(topic, {0: 3}) == {0: 3}
    assert list_offsets(admin_broker.bootstrap, topic, [0, 1], -2) == {0: 3, 1: 0}
    # Consuming "from the beginning" now starts at the new log start offset.
    consumed = consume("kafka-python", admin_broker.bootstrap, topic, {0: 5})
    assert [(c.offset, c.value) for c in consumed] == [(3, b"v6"), (4, b"v8")]
    # Moving backwards keeps the log start offset; past the high watermark is refused.
    assert admin.delete_records(topic, {0: 1}) == {0: 3}
    with pytest.raises(AdminError) as exc:
        admin.delete_records(topic, {1: 6})
    assert raw_error_code(exc) == errors.OffsetOutOfRange.code
    assert list_offsets(admin_broker.bootstrap, topic, [1], -2) == {1: 0}


def test_delete_topic(admin, admin_broker):
    topic = unique_topic(f"del-{admin.name}")
    admin.create_topic(topic, 2)
    produce("confluent", admin_broker.bootstrap, topic, [Record(b"k", b"v", (), BASE_TS, 1)])
    assert topic in admin.topics()
    admin.delete_topic(topic)
    assert topic not in admin.topics()
    with RawClient(admin_broker.bootstrap) as raw:
        meta = raw.request("Metadata", 9, {"topics": [{"name": topic}], "allow_auto_topic_creation": True})
        assert meta.topics[0].error_code == errors.UnknownTopicOrPartition.code
        produced = raw.request("Produce", 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
            {"name": topic, "partition_data": [{"index": 1, "records": _one_batch()}]}]})
        assert produced.responses[0].partition_responses[0].error_code == errors.UnknownTopicOrPartition.code
    [refused] = produce("confluent", admin_broker.bootstrap, topic, [Record(b"k", b"v", (), BASE_TS)],
                        client_config={"topic.metadata.propagation.max.ms": 200, "message.timeout.ms": 10000})
    assert refused.error_code == errors.UnknownTopicOrPartition.code
    with pytest.raises(AdminError) as exc:
        admin.delete_topic(topic)
    assert raw_error_code(exc) == errors.UnknownTopicOrPartition.code
    # The name is free again, and the new topic starts empty.
    admin.create_topic(topic, 1)
    assert end_offsets(admin_broker.bootstrap, topic, [0]) == {0: 0}
    [again] = produce("confluent", admin_broker.bootstrap, topic, [Record(b"k2", b"v2", (), BASE_TS, 0)])
    assert (again.partition, again.offset) == (0, 0)
    [got] = consume("aiokafka", admin_broker.bootstrap, topic, {0: 1})
    assert (got.key, got.value) == (b"k2", b"v2")


def _one_batch() -> bytes:
    from tests.helpers.record_batches import build_batch

    return build_batch([(b"k", b"v")])


# -- error answers -------------------------------------------------------------------------


def test_create_errors(admin):
    topic = unique_topic(f"err-{admin.name}")
    admin.create_topic(topic, 1)
    cases = [
        ((topic, 1), errors.TopicAlreadyExists.code, "already exists"),
        (("bad name!", 1), errors.InvalidTopicException.code, "bad name!"),
        (("a" * 250, 1), errors.InvalidTopicException.code, ""),
        ((unique_topic("badcfg"), 1, {"retention.ms": "soon"}), errors.InvalidConfig.code, "retention.ms"),
        ((unique_topic("unknowncfg"), 1, {"no.such.config": "1"}), errors.InvalidConfig.code, "no.such.config"),
        ((unique_topic("zero"), 0), errors.InvalidPartitions.code, ""),
    ]
    for args, code, in_message in cases:
        with pytest.raises(AdminError) as exc:
            admin.create_topic(*args)
        assert exc.value.code == code, (args, exc.value)
        assert in_message in exc.value.message, (args, exc.value)
    with pytest.raises(AdminError) as exc:
        admin.create_topic(unique_topic("rf3"), 1, replication_factor=3)
    assert exc.value.code == errors.InvalidReplicationFactor.code
    # None of the refused topics exists.
    assert {t for t in admin.topics() if t.startswith(("badcfg", "unknowncfg", "zero", "rf3"))} == set()


def test_config_errors(admin):
    topic = unique_topic(f"cfgerr-{admin.name}")
    admin.create_topic(topic, 1, {"retention.ms": "3600000"})
    with pytest.raises(AdminError) as exc:
        admin.alter_configs(topic, {"segment.bytes": "tiny"})
    if admin.name != "kafka-python":  # kafka-python folds the answer into a string
        assert exc.value.code == errors.InvalidConfig.code
    assert "segment.bytes" in exc.value.message
    # The refused alter changed nothing.
    assert admin.describe(topic)["retention.ms"] == ("3600000", "DYNAMIC_TOPIC_CONFIG")
    with pytest.raises(AdminError) as exc:
        admin.describe(unique_topic("nope"))
    if admin.name != "kafka-python":  # kafka-python drops the code (checked raw below)
        assert exc.value.code == errors.UnknownTopicOrPartition.code


def test_alter_unknown_topic(admin):
    name = unique_topic("nope")
    with pytest.raises(AdminError) as exc:
        admin.alter_configs(name, {"retention.ms": "1000"})
    if admin.name != "kafka-python":  # kafka-python folds the answer into a string
        assert exc.value.code == errors.UnknownTopicOrPartition.code
    assert name in exc.value.message


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_validate_only_create_creates_nothing(admin_broker, client):
    topic = unique_topic(f"dry-{client}")
    if client == "kafka-python":
        from kafka.admin import KafkaAdminClient, NewTopic

        kp = KafkaAdminClient(bootstrap_servers=admin_broker.bootstrap)
        try:
            ok = kp.create_topics([NewTopic(topic, 2, 1, topic_configs={"retention.ms": "1000"})],
                                  validate_only=True, raise_errors=False)["topics"][0]
            bad = kp.create_topics([NewTopic(topic, 2, 1, topic_configs={"retention.ms": "x"})],
                                   validate_only=True, raise_errors=False)["topics"][0]
        finally:
            kp.close()
        codes = (ok["error_code"], bad["error_code"])
    else:
        from confluent_kafka.admin import AdminClient, NewTopic

        ck = AdminClient({"bootstrap.servers": admin_broker.bootstrap})
        [f] = ck.create_topics([NewTopic(topic, 2, 1, config={"retention.ms": "1000"})],
                               validate_only=True).values()
        f.result(DEADLINE_S)
        [f] = ck.create_topics([NewTopic(topic, 2, 1, config={"retention.ms": "x"})],
                               validate_only=True).values()
        codes = (0, f.exception(DEADLINE_S).args[0].code())
    assert codes == (0, errors.InvalidConfig.code)
    assert topic not in ConfluentAdmin(admin_broker.bootstrap).topics()


@pytest.mark.parametrize("client", CLIENTS)
def test_describe_cluster(admin_broker, client):
    host, port = admin_broker.bootstrap.split(":")
    if client == "kafka-python":
        from kafka.admin import KafkaAdminClient

        kp = KafkaAdminClient(bootstrap_servers=admin_broker.bootstrap)
        try:
            found = kp.describe_cluster()
        finally:
            kp.close()
        brokers = [(b["broker_id"], b["host"], b["port"]) for b in found["brokers"]]
        cluster_id, controller = found["cluster_id"], found["controller_id"]
    elif client == "aiokafka":
        admin = AiokafkaAdmin(admin_broker.bootstrap)
        try:
            found = admin._run(admin.client.describe_cluster())
        finally:
            admin.close()
        brokers = [(b["node_id"], b["host"], b["port"]) for b in found["brokers"]]
        cluster_id, controller = found["cluster_id"], found["controller_id"]
    else:
        from confluent_kafka.admin import AdminClient

        ck = AdminClient({"bootstrap.servers": admin_broker.bootstrap})
        found = ck.describe_cluster().result(DEADLINE_S)
        brokers = [(n.id, n.host, n.port) for n in found.nodes]
        cluster_id, controller = found.cluster_id, found.controller.id
    assert brokers == [(0, host, int(port))]
    assert controller == 0
    assert cluster_id and cluster_id in admin_broker.log_since_start()


def test_broker_configs(admin_broker):
    """The broker resource describes its static settings; altering them is refused
    with a Kafka error saying why (they are static in tierbroker)."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    ck = AdminClient({"bootstrap.servers": admin_broker.bootstrap})
    [f] = ck.describe_configs([ConfigResource(ResourceType.BROKER, "0")]).values()
    configs = f.result(DEADLINE_S)
    assert (configs["log.segment.bytes"].value, SOURCES[int(configs["log.segment.bytes"].source)]) == (
        STATIC_SEGMENT_BYTES, "STATIC_BROKER_CONFIG")
    assert (configs["auto.create.topics.enable"].value,
            SOURCES[int(configs["auto.create.topics.enable"].source)]) == ("false", "STATIC_BROKER_CONFIG")
    assert SOURCES[int(configs["num.partitions"].source)] == "DEFAULT_CONFIG"
    [f] = ck.alter_configs([ConfigResource(ResourceType.BROKER, "0", set_config={"num.partitions": "5"})]).values()
    err = f.exception(DEADLINE_S).args[0]
    assert err.code() == errors.InvalidRequest.code
    assert "static" in err.str()


def test_create_topics_answer_carries_effective_configs(admin_broker):
    """CreateTopics v5+ answers with the new topic's configs and their sources."""
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = unique_topic("answer")
    kp = KafkaAdminClient(bootstrap_servers=admin_broker.bootstrap)
    try:
        resp = kp.create_topics([NewTopic(topic, 2, 1, topic_configs={"retention.ms": "3600000"})],
                                raise_errors=False)
    finally:
        kp.close()
    [result] = resp["topics"]
    assert (result["error_code"], result["num_partitions"], result["replication_factor"]) == (0, 2, 1)
    configs = {k: (v["value"], v["config_source"]) for k, v in result["configs"].items()}
    assert configs["retention.ms"] == ("3600000", "DYNAMIC_TOPIC_CONFIG")
    assert configs["segment.bytes"] == (STATIC_SEGMENT_BYTES, "STATIC_BROKER_CONFIG")
    assert configs["max.message.bytes"] == (DEFAULT_MAX_MESSAGE_BYTES, "DEFAULT_CONFIG")


def test_incremental_alter_rules(admin_broker):
    """validate_only changes nothing; one bad key refuses the whole request;
    APPEND/SUBTRACT apply to list configs only; SET needs a value."""
    from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

    admin = KafkaPythonAdmin(admin_broker.bootstrap)
    try:
        topic = unique_topic("rules")
        admin.create_topic(topic, 1)

        def alter(configs, validate_only=False):
            resp = admin.client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)],
                                              incremental=True, raise_on_unknown=False,
                                              validate_only=validate_only)
            return resp["topic"][topic]

        assert alter({"retention.ms": (AlterConfigOp.SET, "5000")}, validate_only=True) == "OK"
        assert admin.describe(topic)["retention.ms"] == (DEFAULT_RETENTION_MS, "DEFAULT_CONFIG")
        refused = alter({"retention.ms": (AlterConfigOp.SET, "5000"), "segment.bytes": (AlterConfigOp.SET, "1")})
        assert "InvalidConfigurationError" in refused and "segment.bytes" in refused
        assert admin.describe(topic)["retention.ms"] == (DEFAULT_RETENTION_MS, "DEFAULT_CONFIG")
        refused = alter({"retention.ms": (AlterConfigOp.APPEND, "5")})
        assert "InvalidConfigurationError" in refused and "retention.ms" in refused
        assert alter({"cleanup.policy": (AlterConfigOp.APPEND, "delete")}) == "OK"
        assert admin.describe(topic)["cleanup.policy"] == ("delete", "DYNAMIC_TOPIC_CONFIG")
        refused = alter({"retention.ms": (AlterConfigOp.SET, None)})
        assert "InvalidConfigurationError" in refused
        refused = alter({"local.retention.ms": (AlterConfigOp.SET, "999999999999")})
        assert "InvalidConfigurationError" in refused and "retention.ms" in refused
    finally:
        admin.close()


def test_longest_legal_topic_name(admin_broker):
    topic = "t" * 249
    admin = ConfluentAdmin(admin_broker.bootstrap)
    admin.create_topic(topic, 1)
    [d] = produce("confluent", admin_broker.bootstrap, topic, [Record(b"k", b"v", (), BASE_TS, 0)])
    assert (d.error_code, d.offset) == (0, 0)
    [got] = consume("confluent", admin_broker.bootstrap, topic, {0: 1})
    assert (got.key, got.value) == (b"k", b"v")
    admin.delete_topic(topic)
    assert topic not in admin.topics()


def test_describe_unknown_topic_raw(admin_broker):
    name = unique_topic("nope")
    with RawClient(admin_broker.bootstrap) as raw:
        resp = raw.request("DescribeConfigs", 4, {"resources": [
            {"resource_type": 2, "resource_name": name, "configuration_keys": None}],
            "include_synonyms": False, "include_documentation": False})
    [result] = resp.results
    assert result.error_code == errors.UnknownTopicOrPartition.code
    assert name in result.error_message
    assert list(result.configs) == []


# -- ListOffsets ----------------------------------------------------------------------------


def _produce_one_batch_each(bootstrap, topic, records):
    """One produce (so one batch) per record: offsets by time are then exact."""
    return [produce("confluent", bootstrap, topic, [r])[0] for r in records]


@pytest.fixture(scope="module")
def timed_topic(admin_broker):
    """One partition, five single-record batches at BASE_TS + 0, 1000, ... 4000."""
    topic = unique_topic("timed")
    create_topic(admin_broker.bootstrap, topic, 1)
    records = [Record(b"k%d" % i, b"v%d" % i, (), BASE_TS + 1000 * i, 0) for i in range(5)]
    deliveries = _produce_one_batch_each(admin_broker.bootstrap, topic, records)
    assert [d.offset for d in deliveries] == list(range(5))
    return topic


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_list_offsets_admin(admin_broker, timed_topic, client):
    admin = ADMINS[client](admin_broker.bootstrap)
    try:
        assert admin.list_offsets(timed_topic, {0: -2})[0][0] == 0
        assert admin.list_offsets(timed_topic, {0: -1})[0][0] == 5
        assert admin.list_offsets(timed_topic, {0: -3})[0] == (4, BASE_TS + 4000)
        assert admin.list_offsets(timed_topic, {0: BASE_TS + 1500})[0] == (2, BASE_TS + 2000)
        assert admin.list_offsets(timed_topic, {0: BASE_TS})[0] == (0, BASE_TS)
        assert admin.list_offsets(timed_topic, {0: BASE_TS + 4000})[0] == (4, BASE_TS + 4000)
        assert admin.list_offsets(timed_topic, {0: BASE_TS + 4001})[0][0] == -1
    finally:
        admin.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_list_offsets_consumer(admin_broker, timed_topic, client):
    """beginning/end offsets and offsets_for_times, as each client's consumer asks them."""
    queries = [BASE_TS - 10, BASE_TS + 1500, BASE_TS + 4000, BASE_TS + 999_999]
    begin, end, by_time = {
        "kafka-python": _consumer_offsets_kafka_python, "aiokafka": _consumer_offsets_aiokafka,
        "confluent": _consumer_offsets_confluent}[client](admin_broker.bootstrap, timed_topic, queries)
    assert (begin, end) == (0, 5)
    assert by_time == [(0, BASE_TS), (2, BASE_TS + 2000), (4, BASE_TS + 4000), None]


def _consumer_offsets_kafka_python(bootstrap, topic, queries):
    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             request_timeout_ms=10000)
    try:
        begin = consumer.beginning_offsets([tp])[tp]
        end = consumer.end_offsets([tp])[tp]
        found = [consumer.offsets_for_times({tp: q})[tp] for q in queries]
    finally:
        consumer.close(autocommit=False)
    return begin, end, [None if f is None else (f.offset, f.timestamp) for f in found]


def _consumer_offsets_aiokafka(bootstrap, topic, queries):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run():
        tp = TopicPartition(topic, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    request_timeout_ms=10000)
        await consumer.start()
        try:
            begin = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            found = [(await consumer.offsets_for_times({tp: q}))[tp] for q in queries]
        finally:
            await consumer.stop()
        return begin, end, [None if f is None else (f.offset, f.timestamp) for f in found]

    return asyncio.run(run())


def _consumer_offsets_confluent(bootstrap, topic, queries):
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})
    try:
        begin, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=DEADLINE_S)
        found = []
        for q in queries:
            [tp] = consumer.offsets_for_times([TopicPartition(topic, 0, q)], timeout=DEADLINE_S)
            assert tp.error is None, tp.error
            # librdkafka gives the offset only (-1 when no record is that late).
            found.append(None if tp.offset < 0 else (tp.offset, BASE_TS + 1000 * tp.offset))
    finally:
        consumer.close()
    return begin, end, found


def test_list_offsets_after_delete_records(admin_broker):
    topic = unique_topic("timed-trim")
    create_topic(admin_broker.bootstrap, topic, 1)
    records = [Record(b"k%d" % i, b"v%d" % i, (), BASE_TS + 1000 * i, 0) for i in range(4)]
    _produce_one_batch_each(admin_broker.bootstrap, topic, records)
    admin = ConfluentAdmin(admin_broker.bootstrap)
    assert admin.delete_records(topic, {0: 2}) == {0: 2}
    assert admin.list_offsets(topic, {0: -2})[0][0] == 2
    assert admin.list_offsets(topic, {0: -1})[0][0] == 4
    # A time before the log start offset finds the first record still there.
    assert admin.list_offsets(topic, {0: BASE_TS})[0] == (2, BASE_TS + 2000)


def test_list_offsets_inside_one_batch(admin_broker):
    """Kafka finds the first *record* with timestamp >= the target, even inside a
    (compressed) batch, and answers that record's own offset and timestamp."""
    topic = unique_topic("timed-batch")
    create_topic(admin_broker.bootstrap, topic, 1)
    records = [Record(b"k%d" % i, b"v%d" % i, (), BASE_TS + 1000 * i, 0) for i in range(5)]
    produce("confluent", admin_broker.bootstrap, topic, records, codec="lz4", linger_ms=200)
    admin = ConfluentAdmin(admin_broker.bootstrap)
    assert admin.list_offsets(topic, {0: -1})[0][0] == 5
    assert admin.list_offsets(topic, {0: BASE_TS + 1500})[0] == (2, BASE_TS + 2000)
    assert admin.list_offsets(topic, {0: -3})[0] == (4, BASE_TS + 4000)


# -- restart -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_topics_and_configs_survive_restart(tmp_path, how):
    """acks=all data, topics, partition counts, config overrides, topic ids and
    log start offsets come back after a graceful stop and after SIGKILL."""
    proc = BrokerProcess(tmp_path / "broker", {"log.segment.bytes": STATIC_SEGMENT_BYTES}).start()
    try:
        admin = ConfluentAdmin(proc.bootstrap)
        topic = unique_topic("durable")
        admin.create_topic(topic, 3, {"retention.ms": "3600000", "segment.bytes": "16384"})
        admin.incremental_alter(topic, {"max.message.bytes": "300000"})
        admin.create_partitions(topic, 4)
        records = sample_records(400, null_headers=True, seed=11)
        # Uncompressed and in small batches, so each partition spans several segments.
        deliveries = produce("confluent", proc.bootstrap, topic, records, client_config={"batch.size": 4096})
        expected = expected_by_partition(records, deliveries)
        assert sorted(expected) == [0, 1, 2, 3]
        assert admin.delete_records(topic, {0: 2}) == {0: 2}
        segments = {p: len(list((tmp_path / "broker" / "logs" / f"{topic}-{p}").glob("*.log"))) for p in range(4)}
        assert min(segments.values()) > 1, segments
        before = _topic_snapshot(proc.bootstrap, topic)
        configs_before = admin.describe(topic)
        if how == "sigterm":
            assert proc.stop() == 0
        else:
            proc.kill()

        proc.start()
        admin = ConfluentAdmin(proc.bootstrap)
        assert _topic_snapshot(proc.bootstrap, topic) == before
        configs = admin.describe(topic)
        assert configs == configs_before
        assert configs["retention.ms"] == ("3600000", "DYNAMIC_TOPIC_CONFIG")
        assert configs["segment.bytes"] == ("16384", "DYNAMIC_TOPIC_CONFIG")
        assert configs["max.message.bytes"] == ("300000", "DYNAMIC_TOPIC_CONFIG")
        ends = end_offsets(proc.bootstrap, topic, range(4))
        assert ends == {p: len(expected[p]) for p in range(4)}
        assert list_offsets(proc.bootstrap, topic, range(4), -2) == {0: 2, 1: 0, 2: 0, 3: 0}
        consumed = consume("aiokafka", proc.bootstrap, topic, ends)
        got = {p: [(c.offset, c.key, c.value, c.headers, c.timestamp_ms) for c in cs]
               for p, cs in by_partition(consumed).items()}
        assert got == {p: [(o, r.key, r.value, r.headers, r.timestamp_ms) for o, r in enumerate(rs)
                           if p != 0 or o >= 2]
                       for p, rs in expected.items()}
        # And it keeps appending after the old end.
        [more] = produce("kafka-python", proc.bootstrap, topic, [Record(b"after", b"restart", (), BASE_TS, 0)])
        assert (more.partition, more.offset) == (0, ends[0])
    finally:
        proc.kill()


def _topic_snapshot(bootstrap, topic):
    with RawClient(bootstrap) as raw:
        meta = raw.request("Metadata", 12, {"topics": [{"name": topic}], "allow_auto_topic_creation": False})
    [t] = meta.topics
    assert t.error_code == 0
    partitions = sorted(p.partition_index for p in t.partitions)
    return (t.topic_id, partitions, list_offsets(bootstrap, topic, partitions, -2),
            end_offsets(bootstrap, topic, partitions))


# -- auto-create ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def autocreate_broker(tmp_path_factory):
    proc = BrokerProcess(tmp_path_factory.mktemp("autocreate"), {"num.partitions": "3"}).start()
    yield proc
    proc.kill()


@pytest.mark.parametrize("client", CLIENTS)
def test_producer_auto_creates_topic(autocreate_broker, client):
    topic = unique_topic(f"auto-{client}")
    records = sample_records(30, null_headers=NULL_HEADERS[client], seed=5)
    deliveries = produce(client, autocreate_broker.bootstrap, topic, records, codec="gzip")
    with RawClient(autocreate_broker.bootstrap) as raw:
        meta = raw.request("Metadata", 12, {"topics": [{"name": topic}], "allow_auto_topic_creation": False})
    assert meta.topics[0].error_code == 0
    assert sorted(p.partition_index for p in meta.topics[0].partitions) == [0, 1, 2]
    assert {d.partition for d in deliveries} == {0, 1, 2}
    ends = end_offsets(autocreate_broker.bootstrap, topic, range(3))
    consumed = consume(client, autocreate_broker.bootstrap, topic, ends)
    assert_round_trip(records, deliveries, consumed)
    configs = ConfluentAdmin(autocreate_broker.bootstrap).describe(topic)
    assert configs["retention.ms"] == (DEFAULT_RETENTION_MS, "DEFAULT_CONFIG")


def test_metadata_without_auto_create_permission_does_not_create(autocreate_broker):
    topic = unique_topic("noauto-req")
    with RawClient(autocreate_broker.bootstrap) as raw:
        meta = raw.request("Metadata", 12, {"topics": [{"name": topic}], "allow_auto_topic_creation": False})
        assert meta.topics[0].error_code == errors.UnknownTopicOrPartition.code
        listed = raw.request("Metadata", 12, {"topics": None, "allow_auto_topic_creation": True})
    assert topic not in {t.name for t in listed.topics}


@pytest.mark.parametrize("client", CLIENTS)
def test_auto_create_disabled_refuses(admin_broker, client):
    """admin_broker runs with auto.create.topics.enable=false."""
    topic = unique_topic(f"noauto-{client}")
    quick = {"kafka-python": {"max_block_ms": 1500},
             "aiokafka": {"request_timeout_ms": 1500},
             "confluent": {"topic.metadata.propagation.max.ms": 200, "message.timeout.ms": 10000}}[client]
    [refused] = produce(client, admin_broker.bootstrap, topic, [Record(b"k", b"v", (), BASE_TS)],
                        client_config=quick)
    assert refused.error_code != 0
    if client != "kafka-python":  # kafka-python only times out waiting for metadata
        assert refused.error_code == errors.UnknownTopicOrPartition.code, refused
    with RawClient(admin_broker.bootstrap) as raw:
        meta = raw.request("Metadata", 12, {"topics": [{"name": topic}], "allow_auto_topic_creation": True})
    assert meta.topics[0].error_code == errors.UnknownTopicOrPartition.code
    assert topic not in ConfluentAdmin(admin_broker.bootstrap).topics()
