"""`tierbroker topics ...`: create, list, describe and alter topics of a running broker.

    tierbroker topics create NAME [--partitions N] [--replication-factor R] [--config KEY=VALUE ...]
                                  [--if-not-exists]
    tierbroker topics list
    tierbroker topics describe NAME
    tierbroker topics alter NAME [--set KEY=VALUE ...] [--delete KEY ...]

each with [--bootstrap-server HOST:PORT] [--json]. `describe` shows, per
partition, the leader and four offsets (ListOffsets): earliest (across both
tiers), earliest-local, latest-tiered (the last offset in the bucket) and
latest (the high watermark); and the configs that differ from the defaults,
with where each comes from (a topic override or the broker's settings). `alter`
uses IncrementalAlterConfigs, so keys it does not name keep their values.

It talks the Kafka protocol only (broker.admin_client): CreateTopics,
Metadata, ListOffsets, DescribeConfigs, IncrementalAlterConfigs.

Exit status: 0 on success, 1 when the broker cannot be reached or refuses
(the broker's message is printed), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .admin_client import AdminClient, AdminClientError
from .cli_support import add_common_options, dash, table
from .protocol import errors

TOPIC_RESOURCE = 2
SET, DELETE = 0, 1  # IncrementalAlterConfigs operations
# ListOffsets special timestamps, in the order `describe` prints them.
OFFSET_KINDS = (("earliest", -2), ("earliest_local", -4), ("latest_tiered", -5), ("latest", -1))
# DescribeConfigs ConfigSource ids (broker/config/describe.py) as `describe` names them.
SOURCE_NAMES = {1: "topic", 2: "broker (dynamic)", 3: "broker default (dynamic)", 4: "broker", 5: "default"}
DEFAULT_SOURCE = 5


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def add_subcommand(commands) -> None:
    topics = commands.add_parser("topics", help="create, list, describe and alter topics of a running broker")
    actions = topics.add_subparsers(dest="topics_command", required=True)

    common = add_common_options

    create = actions.add_parser("create", help="create a topic")
    create.add_argument("topic")
    create.add_argument("--partitions", type=int, default=-1, metavar="N",
                        help="number of partitions (default: the broker's num.partitions)")
    create.add_argument("--replication-factor", type=int, default=-1, metavar="R",
                        help="replication factor (tierbroker is one broker: 1)")
    create.add_argument("--config", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                        help="a topic config override (repeatable), e.g. remote.storage.enable=true")
    create.add_argument("--if-not-exists", action="store_true", help="succeed if the topic already exists")
    common(create)
    listing = actions.add_parser("list", help="list the topics")
    common(listing)
    describe = actions.add_parser("describe", help="partitions, offsets in each tier, non-default configs")
    describe.add_argument("topic")
    common(describe)
    alter = actions.add_parser("alter", help="set or delete topic config overrides")
    alter.add_argument("topic")
    alter.add_argument("--set", dest="set_configs", action="append", default=[], type=_key_value,
                       metavar="KEY=VALUE", help="set a topic config override (repeatable)")
    alter.add_argument("--delete", dest="delete_configs", action="append", default=[], metavar="KEY",
                       help="remove a topic config override, back to the broker default (repeatable)")
    common(alter)


def main(args) -> int:
    try:
        with AdminClient(args.bootstrap_server) as client:
            return {"create": _create, "list": _list, "describe": _describe,
                    "alter": _alter}[args.topics_command](client, args)
    except (AdminClientError, errors.KafkaError) as exc:
        print(f"tierbroker topics: {exc}", file=sys.stderr)
        return 1


def _raise(code: int, message: str | None, context: str) -> None:
    """Raise the Kafka error for `code`, with the broker's message when it sent one."""
    if code:
        cls = errors.BY_CODE.get(code, errors.UnknownServerError)
        raise cls(f"{context}: {message or cls.name} ({cls.name})")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


# -- create ------------------------------------------------------------------------


def _create(client: AdminClient, args) -> int:
    configs = dict(args.config)
    body = {"topics": [{"name": args.topic, "num_partitions": args.partitions,
                        "replication_factor": args.replication_factor, "assignments": [],
                        "configs": [{"name": k, "value": v} for k, v in configs.items()]}],
            "timeout_ms": 30000, "validate_only": False}
    (result,) = client.request("CreateTopics", body).topics
    existed = result.error_code == errors.TopicAlreadyExists.code and args.if_not_exists
    if not existed:
        _raise(result.error_code, result.error_message, f"cannot create topic {args.topic!r}")
    partitions = len(_metadata(client, [args.topic])[0]["partitions"])
    out = {"topic": args.topic, "created": not existed, "partitions": partitions, "configs": configs}
    if args.json:
        _print_json(out)
    elif existed:
        print(f"topic {args.topic} already exists ({partitions} partitions)")
    else:
        settings = "".join(f" {k}={v}" for k, v in configs.items())
        print(f"created topic {args.topic} with {partitions} partitions{settings}")
    return 0


# -- list --------------------------------------------------------------------------


def _list(client: AdminClient, args) -> int:
    topics = sorted(_metadata(client, None), key=lambda t: t["topic"])
    tiered = _configs(client, [t["topic"] for t in topics], ["remote.storage.enable"])
    rows = [{"topic": t["topic"], "topic_id": t["topic_id"], "partitions": len(t["partitions"]),
             "tiered": tiered.get(t["topic"], {}).get("remote.storage.enable", {}).get("value") == "true"}
            for t in topics]
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no topics")
    else:
        print(table(["TOPIC", "PARTITIONS", "TIERED", "TOPIC-ID"],
                     [[r["topic"], r["partitions"], "yes" if r["tiered"] else "no", r["topic_id"]] for r in rows]))
    return 0


# -- describe ----------------------------------------------------------------------


def describe_topic(client: AdminClient, topic: str) -> dict[str, Any]:
    """Everything `describe` prints, as a dict."""
    (meta,) = _metadata(client, [topic])
    indexes = [p["partition"] for p in meta["partitions"]]
    offsets = {kind: _offsets(client, topic, indexes, timestamp) for kind, timestamp in OFFSET_KINDS}
    entries = _configs(client, [topic], None)[topic]
    configs = {name: e for name, e in sorted(entries.items()) if e["source"] != "default"}
    partitions = [{**p, **{kind: offsets[kind].get(p["partition"]) for kind, _ in OFFSET_KINDS}}
                  for p in meta["partitions"]]
    tiered = entries.get("remote.storage.enable", {}).get("value") == "true"
    return {"topic": topic, "topic_id": meta["topic_id"], "tiered": tiered, "partitions": partitions,
            "configs": configs}


def _describe(client: AdminClient, args) -> int:
    d = describe_topic(client, args.topic)
    if args.json:
        _print_json(d)
        return 0
    replication = max((len(p["replicas"]) for p in d["partitions"]), default=0)
    print(f"TOPIC {d['topic']}  ID {d['topic_id']}  PARTITIONS {len(d['partitions'])}  "
          f"REPLICATION-FACTOR {replication}  TIERED {'yes' if d['tiered'] else 'no'}")
    print()
    print(table(["PARTITION", "LEADER", "REPLICAS", "ISR", "EARLIEST", "EARLIEST-LOCAL", "LATEST-TIERED",
                  "LATEST"], [
        [p["partition"], p["leader"], ",".join(map(str, p["replicas"])), ",".join(map(str, p["isr"])),
         dash(p["earliest"]), dash(p["earliest_local"]), dash(p["latest_tiered"]), dash(p["latest"])]
        for p in d["partitions"]]))
    print()
    if d["configs"]:
        print(table(["CONFIG", "VALUE", "SOURCE"], [
            [name, "(sensitive)" if e["sensitive"] else dash(e["value"]), e["source"]]
            for name, e in d["configs"].items()]))
    else:
        print("every config has its default value")
    return 0


# -- alter -------------------------------------------------------------------------


def _alter(client: AdminClient, args) -> int:
    if not args.set_configs and not args.delete_configs:
        print("tierbroker topics: alter needs at least one --set KEY=VALUE or --delete KEY", file=sys.stderr)
        return 2
    changes = [{"name": k, "config_operation": SET, "value": v} for k, v in args.set_configs]
    changes += [{"name": k, "config_operation": DELETE, "value": None} for k in args.delete_configs]
    body = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": args.topic, "configs": changes}],
            "validate_only": False}
    (result,) = client.request("IncrementalAlterConfigs", body).responses
    _raise(result.error_code, result.error_message, f"cannot alter topic {args.topic!r}")
    out = {"topic": args.topic, "set": dict(args.set_configs), "deleted": list(args.delete_configs)}
    if args.json:
        _print_json(out)
    else:
        done = [f"set {k}={v}" for k, v in args.set_configs] + [f"deleted {k}" for k in args.delete_configs]
        print(f"altered topic {args.topic}: {', '.join(done)}")
    return 0


# -- requests ------------------------------------------------------------------------


def _metadata(client: AdminClient, topics: list[str] | None) -> list[dict[str, Any]]:
    """Topics (all of them when `topics` is None) with their partitions; raises
    UnknownTopicOrPartition for a named topic that does not exist."""
    body = {"topics": None if topics is None else [{"name": t} for t in topics],
            "allow_auto_topic_creation": False}
    response = client.request("Metadata", body)
    out = []
    for t in response.topics:
        if t.error_code == errors.UnknownTopicOrPartition.code:
            raise errors.UnknownTopicOrPartition(f"topic {t.name!r} does not exist")
        _raise(t.error_code, None, f"Metadata for topic {t.name!r}")
        topic_id = getattr(t, "topic_id", None)
        out.append({"topic": t.name, "topic_id": str(topic_id) if topic_id is not None else None,
                    "partitions": [{"partition": p.partition_index, "leader": p.leader_id,
                                    "replicas": list(p.replica_nodes), "isr": list(p.isr_nodes)}
                                   for p in sorted(t.partitions, key=lambda p: p.partition_index)]})
    return out


def _offsets(client: AdminClient, topic: str, partitions: list[int], timestamp: int) -> dict[int, int | None]:
    """One special offset of each partition; None where the broker answered an error
    or has none (latest-tiered of a partition with nothing in the bucket)."""
    if not partitions:
        return {}
    body = {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": topic, "partitions": [{"partition_index": p, "timestamp": timestamp} for p in partitions]}]}
    response = client.request("ListOffsets", body)
    out: dict[int, int | None] = {p: None for p in partitions}
    for t in response.topics:
        for p in t.partitions:
            if not p.error_code and p.offset >= 0:
                out[p.partition_index] = p.offset
    return out


def _configs(client: AdminClient, topics: list[str],
             keys: list[str] | None) -> dict[str, dict[str, dict[str, Any]]]:
    """topic -> config name -> {value, source, sensitive, read_only}."""
    if not topics:
        return {}
    body = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": t, "configuration_keys": keys}
                          for t in topics],
            "include_synonyms": False, "include_documentation": False}
    response = client.request("DescribeConfigs", body)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in response.results:
        _raise(r.error_code, r.error_message, f"DescribeConfigs for topic {r.resource_name!r}")
        out[r.resource_name] = {
            c.name: {"value": c.value, "source": _source(c), "sensitive": c.is_sensitive,
                     "read_only": c.read_only}
            for c in r.configs}
    return out


def _source(entry) -> str:
    source = entry.config_source
    if source == -1:  # DescribeConfigs v0 has only is_default
        source = DEFAULT_SOURCE if entry.is_default else 0
    return SOURCE_NAMES.get(source, "unknown")
