"""The broker's configuration keys: Kafka's names and defaults, except where
tierbroker's embedded defaults differ on purpose (loopback listener, `./data`,
local-directory remote store), plus a few tierbroker-only keys (`metrics.*`,
`remote.storage.url`, `remote.storage.s3.*`, `remote.storage.chunk.*`).

Every broker key is read-only: tierbroker has no dynamic broker configuration,
so a change takes a restart.

Some values are set by more than one key (`SYNONYM_GROUPS`), resolved as Kafka
does: the first key in the group the operator set wins; if they set none, the
first key with a non-None default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .keys import ConfigDef, ConfigType, key_table
from .listeners import advertised_listener_list, listener_list
from .storage_url import storage_url
from .validators import AtLeast, Between, ListOf, OneOf

B, S, I, L, LIST, P = (ConfigType.BOOLEAN, ConfigType.STRING, ConfigType.INT,
                       ConfigType.LONG, ConfigType.LIST, ConfigType.PASSWORD)

LONG_MAX = (1 << 63) - 1
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
# Kafka allows 4, which holds no index entry; one time index entry is 12 bytes.
MIN_INDEX_BYTES = 12

TIMESTAMP_TYPES = OneOf(("CreateTime", "LogAppendTime"))
COMPRESSION_TYPES = OneOf(("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"))
CHUNK_COMPRESSION_TYPES = OneOf(("none", "zstd", "lz4"))
CLEANUP_POLICIES = ListOf(OneOf(
    ("delete",),
    unsupported={"compact": "log compaction is not implemented; "
                            "tierbroker supports only cleanup.policy=delete"},
), allow_empty=False)


def _key(name: str, type_: ConfigType, default: Any, doc: str, **kw: Any) -> ConfigDef:
    return ConfigDef(name, type_, default, doc, read_only=True, **kw)


BROKER_KEYS: Mapping[str, ConfigDef] = key_table(
    # --- identity and network
    _key("node.id", I, 0, "This broker's id, unique in the cluster and returned to clients in "
         "Metadata. `broker.id` is the older name for the same thing.", validator=AtLeast(0)),
    _key("broker.id", I, None, "Older name for `node.id`, used when `node.id` is not set. If both "
         "are set they must be equal.", validator=AtLeast(0)),
    _key("listeners", LIST, ("PLAINTEXT://127.0.0.1:9092",), "Where the broker accepts Kafka "
         "connections: comma-separated `NAME://host:port` (or bare `host:port`). An empty host "
         "binds every interface; port 0 picks a free port. The default binds loopback only.",
         validator=listener_list),
    _key("advertised.listeners", LIST, None, "The addresses given to clients in Metadata, one per "
         "listener name. Unset: the same as `listeners`.", validator=advertised_listener_list),
    # Kafka defaults both to 102400; a fixed size switches off the kernel's buffer
    # auto-tuning, which measured 1.5-4x slower produce and consume on loopback.
    _key("socket.send.buffer.bytes", I, -1, "SO_SNDBUF for client sockets; -1 (the default, "
         "unlike Kafka's 102400) keeps the kernel's auto-tuning.", validator=AtLeast(-1)),
    _key("socket.receive.buffer.bytes", I, -1, "SO_RCVBUF for client sockets; -1 (the default, "
         "unlike Kafka's 102400) keeps the kernel's auto-tuning.", validator=AtLeast(-1)),
    _key("socket.request.max.bytes", I, 104857600, "The largest request frame the broker reads; a "
         "bigger one closes the connection.", validator=AtLeast(1)),
    _key("num.network.threads", I, 3, "Accepted for Kafka compatibility; tierbroker serves "
         "connections from one event loop.", validator=AtLeast(1)),
    _key("num.io.threads", I, 8, "Accepted for Kafka compatibility; tierbroker sizes its own "
         "worker pools.", validator=AtLeast(1)),
    _key("metrics.host", S, "127.0.0.1", "Interface of the HTTP endpoint serving Prometheus "
         "metrics; empty for all interfaces."),
    _key("metrics.port", I, 9464, "Port of the Prometheus metrics endpoint: -1 disables it, 0 "
         "picks a free port.", validator=Between(-1, 65535)),
    _key("admin.http.host", S, "127.0.0.1", "Interface of the HTTP admin endpoint (tier status, "
         "rollback, recover; used by `tierbroker tier`); empty for all interfaces. It has no "
         "authentication: keep it on loopback or a private network."),
    _key("admin.http.port", I, 9465, "Port of the HTTP admin endpoint: -1 disables it, 0 picks a "
         "free port.", validator=Between(-1, 65535)),
    _key("controlled.shutdown.enable", B, True, "Accepted for Kafka compatibility (a single "
         "broker has no leadership to hand over)."),
    # --- topics
    _key("num.partitions", I, 1, "Partitions of a topic created without a partition count, "
         "including auto-created topics.", validator=AtLeast(1)),
    _key("default.replication.factor", I, 1, "Replication factor of a topic created without one.",
         validator=AtLeast(1)),
    _key("min.insync.replicas", I, 1, "Broker default for the topic key `min.insync.replicas`.",
         validator=AtLeast(1)),
    _key("auto.create.topics.enable", B, True, "Create a topic when a client asks for "
         "metadata of, or produces to, a topic that does not exist."),
    _key("delete.topic.enable", B, True, "Allow DeleteTopics; when false the request is "
         "refused."),
    _key("unclean.leader.election.enable", B, False, "Broker default for the topic key "
         "`unclean.leader.election.enable`; accepted for compatibility."),
    # --- local log
    _key("log.dirs", LIST, None, "Directories holding the local log, comma-separated. Unset: "
         "`log.dir`.", validator=ListOf(allow_empty=False)),
    _key("log.dir", LIST, ("./data",), "The log directory used when `log.dirs` is not set.",
         validator=ListOf(allow_empty=False)),
    _key("log.segment.bytes", I, 1073741824, "Largest size of one segment file; the active "
         "segment rolls before it would grow past this.", validator=AtLeast(14)),
    _key("log.roll.ms", L, None, "Roll the active segment once its first record is this old. "
         "Unset: `log.roll.hours`.", validator=AtLeast(1)),
    _key("log.roll.hours", I, 168, "As `log.roll.ms`, in hours; used when `log.roll.ms` is not "
         "set.", validator=AtLeast(1)),
    _key("log.roll.jitter.ms", L, None, "Up to this much is subtracted at random from the roll "
         "time per segment, so partitions do not all roll together. Unset: "
         "`log.roll.jitter.hours`.", validator=AtLeast(0)),
    _key("log.roll.jitter.hours", I, 0, "As `log.roll.jitter.ms`, in hours.",
         validator=AtLeast(0)),
    _key("log.index.interval.bytes", I, 4096, "Bytes of log between two entries of the sparse "
         "offset index.", validator=AtLeast(0)),
    _key("log.index.size.max.bytes", I, 10485760, "Largest size of an offset or time index file; "
         "a full index rolls the segment.", validator=AtLeast(MIN_INDEX_BYTES)),
    _key("log.retention.ms", L, None, "How long the log (local and remote together) keeps a "
         "segment after its newest record; -1 keeps it forever. Unset: "
         "`log.retention.minutes`, then `log.retention.hours`.", validator=AtLeast(-1)),
    _key("log.retention.minutes", I, None, "As `log.retention.ms`, in minutes; used when "
         "`log.retention.ms` is not set.", validator=AtLeast(-1)),
    _key("log.retention.hours", I, 168, "As `log.retention.ms`, in hours; used when neither "
         "`log.retention.ms` nor `log.retention.minutes` is set.", validator=AtLeast(-1)),
    _key("log.retention.bytes", L, -1, "Largest size of a partition's whole log (local and "
         "remote together) before its oldest segments are deleted; -1 for no limit.",
         validator=AtLeast(-1)),
    _key("log.retention.check.interval.ms", L, 300000, "How often retention looks for segments "
         "to delete.", validator=AtLeast(1)),
    _key("log.segment.delete.delay.ms", L, 60000, "How long a segment removed from the log "
         "waits before its files are deleted, so reads already in it can finish.", validator=AtLeast(0)),
    _key("log.cleanup.policy", LIST, ("delete",), "Broker default for the topic key "
         "`cleanup.policy`. Only `delete` is supported.", validator=CLEANUP_POLICIES),
    _key("log.message.timestamp.type", S, "CreateTime", "Broker default for the topic key "
         "`message.timestamp.type`: `CreateTime` keeps the producer's timestamps, "
         "`LogAppendTime` stamps batches with the broker's clock.", validator=TIMESTAMP_TYPES),
    _key("log.message.timestamp.before.max.ms", L, LONG_MAX, "Broker default for the topic key "
         "`message.timestamp.before.max.ms`.", validator=AtLeast(0)),
    _key("log.message.timestamp.after.max.ms", L, LONG_MAX, "Broker default for the topic key "
         "`message.timestamp.after.max.ms`.", validator=AtLeast(0)),
    _key("log.flush.interval.messages", L, LONG_MAX, "Broker default for the topic key "
         "`flush.messages`.", validator=AtLeast(1)),
    _key("log.flush.interval.ms", L, None, "Broker default for the topic key `flush.ms`. Unset: "
         "`log.flush.scheduler.interval.ms`.", validator=AtLeast(0)),
    _key("log.flush.scheduler.interval.ms", L, LONG_MAX, "The flush interval used when "
         "`log.flush.interval.ms` is not set.", validator=AtLeast(0)),
    _key("log.preallocate", B, False, "Broker default for the topic key `preallocate`."),
    _key("message.max.bytes", I, 1048588, "Largest record batch the broker accepts, after "
         "compression; broker default for the topic key `max.message.bytes`.",
         validator=AtLeast(0)),
    _key("compression.type", S, "producer", "Broker default for the topic key "
         "`compression.type`.", validator=COMPRESSION_TYPES),
    # --- consumer groups, offsets, producers
    _key("group.initial.rebalance.delay.ms", I, 3000, "How long a new, empty group waits for "
         "more members before its first rebalance.", validator=AtLeast(0)),
    _key("group.min.session.timeout.ms", I, 6000, "Smallest session timeout a group member may "
         "ask for.", validator=AtLeast(0)),
    _key("group.max.session.timeout.ms", I, 1800000, "Largest session timeout a group member may "
         "ask for.", validator=AtLeast(0)),
    _key("offsets.retention.minutes", I, 10080, "How long committed offsets of an empty group "
         "are kept.", validator=AtLeast(1)),
    _key("offsets.retention.check.interval.ms", L, 600000, "How often expired committed offsets "
         "are removed.", validator=AtLeast(1)),
    _key("offsets.topic.num.partitions", I, 50, "Partitions of the internal __consumer_offsets "
         "topic; fixed once the topic exists.", validator=AtLeast(1)),
    _key("transactional.id.expiration.ms", I, 604800000, "How long a transactional id with no "
         "activity is remembered.", validator=AtLeast(1)),
    _key("producer.id.expiration.ms", I, 86400000, "How long an idle producer id's state "
         "(sequence numbers) is kept after its last write.", validator=AtLeast(1)),
    # --- tiered storage
    _key("remote.log.storage.system.enable", B, True, "Master switch for tiered storage on this "
         "broker. When false no topic may enable `remote.storage.enable`."),
    _key("remote.storage.enable", B, False, "Broker default for the topic key "
         "`remote.storage.enable`: whether topics upload closed segments to the remote tier."),
    _key("remote.storage.url", S, None, "Where the remote tier lives: "
         "`file:///path` (or `file://./relative/path`) for a local directory, "
         "`s3://bucket/prefix` for an S3-compatible object store. Unset: the directory "
         "`remote-tier` inside the first log directory (so `./data/remote-tier` by default).",
         validator=storage_url),
    _key("remote.storage.s3.endpoint.url", S, None, "Endpoint of the S3-compatible service, "
         "e.g. `http://127.0.0.1:9000` for MinIO. Unset: AWS S3."),
    _key("remote.storage.s3.region", S, None, "Region of the bucket. Unset: from the AWS "
         "environment or configuration."),
    _key("remote.storage.s3.path.style.access", B, False, "Address the bucket in the URL path "
         "(`endpoint/bucket/key`) instead of as a host name; MinIO usually needs this."),
    _key("remote.storage.s3.access.key.id", P, None, "Access key id. Unset: the AWS credential "
         "chain (environment, shared credentials file, instance role).", sensitive=True),
    _key("remote.storage.s3.secret.access.key", P, None, "Secret access key paired with "
         "`remote.storage.s3.access.key.id`. Unset: the AWS credential chain.", sensitive=True),
    _key("remote.storage.chunk.bytes", I, 4194304, "Broker default for the topic key "
         "`remote.storage.chunk.bytes`.", validator=AtLeast(1)),
    _key("remote.storage.chunk.compression", S, "none", "Broker default for the topic key "
         "`remote.storage.chunk.compression`.", validator=CHUNK_COMPRESSION_TYPES),
    _key("remote.storage.key.hashed.prefix", B, False, "Start every partition's object keys "
         "with a short hash of the topic id and partition, spreading request load across the "
         "store's key-range partitions (worth it above a few thousand requests per second)."),
    _key("remote.storage.multipart.threshold.bytes", L, 33554432, "Segments whose stored size "
         "may exceed this are uploaded as multipart uploads; smaller ones in one PUT.",
         validator=AtLeast(1)),
    _key("remote.storage.multipart.part.bytes", I, 8388608, "Size of each multipart part but "
         "the last. S3 requires at least 5 MiB.", validator=AtLeast(1)),
    _key("remote.log.manager.copy.max.bytes.per.second", L, LONG_MAX, "Upload rate limit "
         "shared by all partitions, in bytes per second.", validator=AtLeast(1)),
    _key("remote.log.manager.fetch.max.bytes.per.second", L, LONG_MAX, "Rate limit on bytes "
         "read from the remote tier, shared by all cold reads and restores.",
         validator=AtLeast(1)),
    _key("remote.log.manager.task.interval.ms", L, 30000, "How often each partition looks for "
         "segments to upload and remote segments past retention.", validator=AtLeast(1)),
    _key("remote.log.manager.thread.pool.size", I, 10, "Most uploads and remote deletions in "
         "flight at once.", validator=AtLeast(1)),
    _key("remote.log.rollback.headroom.bytes", L, 64 << 20, "Disk space a rollback to local-only "
         "must leave free in each log directory beyond the restored segments; a rollback that "
         "would not is refused before it starts.", validator=AtLeast(0)),
    _key("remote.log.reader.buffer.pool.bytes", L, 64 << 20, "Hard cap on the memory cold reads "
         "hold: every chunk hydrated from the remote tier (and its decompressed form) is "
         "reserved from this pool before its GET starts.", validator=AtLeast(1 << 20)),
    _key("remote.log.reader.buffer.slab.bytes", I, 1 << 20, "Size of the reusable buffers the "
         "cold-read pool is made of.", validator=AtLeast(4096)),
    _key("remote.log.reader.prefetch.enable", B, True, "Hydrate the next chunks ahead of a "
         "partition that is read sequentially from the remote tier."),
    _key("remote.log.reader.prefetch.chunks", I, 4, "Most chunks kept hydrating ahead of one "
         "sequential reader (the window starts at one and doubles).", validator=AtLeast(1)),
    _key("remote.log.reader.prefetch.max.bytes", L, 32 << 20, "Most bytes of prefetched, not yet "
         "read chunks held broker-wide (within the pool).", validator=AtLeast(0)),
    _key("remote.fetch.max.wait.ms", I, 500, "Longest a Fetch waits for its cold (remote) "
         "partitions, whatever its own max wait: a consumer fetching with a zero max wait still "
         "gets remote data. A Fetch with cold partitions answers within the larger of its own max "
         "wait and this.",
         validator=AtLeast(1)),
    _key("remote.log.reader.threads", I, 10, "Most remote reads (cold fetches) in flight at "
         "once.", validator=AtLeast(1)),
    _key("log.local.retention.ms", L, -2, "Broker default for the topic key "
         "`local.retention.ms`: how long an uploaded segment stays on local disk; -2 means the "
         "same as the total retention.", validator=AtLeast(-2)),
    _key("log.local.retention.bytes", L, -2, "Broker default for the topic key "
         "`local.retention.bytes`: how many bytes of uploaded segments stay on local disk; -2 "
         "means the same as the total retention.", validator=AtLeast(-2)),
)


@dataclass(frozen=True)
class SynonymGroup:
    """Broker keys that set one value, highest precedence first.

    Each member carries its factor to the leader's unit (hours -> ms is
    3600000). With `negative_is_unlimited`, any negative result becomes -1, as
    Kafka does for retention ("-1 hours" is unlimited, not -3600000 ms).
    """

    members: tuple[tuple[str, int], ...]
    negative_is_unlimited: bool = False

    @property
    def leader(self) -> str:
        return self.members[0][0]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.members)


SYNONYM_GROUPS: Mapping[str, SynonymGroup] = MappingProxyType({g.leader: g for g in (
    SynonymGroup((("node.id", 1), ("broker.id", 1))),
    SynonymGroup((("log.dirs", 1), ("log.dir", 1))),
    SynonymGroup((("log.roll.ms", 1), ("log.roll.hours", HOUR_MS))),
    SynonymGroup((("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", HOUR_MS))),
    SynonymGroup((("log.retention.ms", 1), ("log.retention.minutes", MINUTE_MS),
                  ("log.retention.hours", HOUR_MS)), negative_is_unlimited=True),
    SynonymGroup((("log.flush.interval.ms", 1), ("log.flush.scheduler.interval.ms", 1))),
)})


def synonym_group(name: str) -> SynonymGroup:
    """The group `name` belongs to; a key in no group is a group of one."""
    for group in SYNONYM_GROUPS.values():
        if name in group.names:
            return group
    return SynonymGroup(((name, 1),))
