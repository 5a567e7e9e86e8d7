"""The topic configuration keys, with Kafka's names, defaults and broker
synonyms, plus two tierbroker-only keys for the shape of uploaded chunks.

A topic key's `synonym` is the broker key (or the leader of a broker synonym
group) whose effective value applies when the topic has no override; the
`default` here is used only when that broker value is itself unset.
"""

from __future__ import annotations

from collections.abc import Mapping

from .broker_keys import (CHUNK_COMPRESSION_TYPES, CLEANUP_POLICIES, COMPRESSION_TYPES, LONG_MAX,
                          MIN_INDEX_BYTES, TIMESTAMP_TYPES)
from .keys import ConfigDef, ConfigType, key_table
from .validators import AtLeast

B, S, I, L, LIST = ConfigType.BOOLEAN, ConfigType.STRING, ConfigType.INT, ConfigType.LONG, ConfigType.LIST

WEEK_MS = 7 * 24 * 3_600_000

TOPIC_KEYS: Mapping[str, ConfigDef] = key_table(
    ConfigDef("cleanup.policy", LIST, ("delete",), "What happens to old segments: `delete` removes "
              "them past retention. `compact` is not supported.", validator=CLEANUP_POLICIES,
              synonym="log.cleanup.policy"),
    ConfigDef("retention.ms", L, WEEK_MS, "How long the topic's log, local and remote together, "
              "keeps a segment after its newest record; -1 keeps it forever.",
              validator=AtLeast(-1), synonym="log.retention.ms"),
    ConfigDef("retention.bytes", L, -1, "Largest size of one partition's whole log, local and "
              "remote together, before its oldest segments are deleted; -1 for no limit.",
              validator=AtLeast(-1), synonym="log.retention.bytes"),
    ConfigDef("local.retention.ms", L, -2, "How long a segment stays on local disk once it has "
              "been uploaded; -2 means the same as `retention.ms`. Must not exceed "
              "`retention.ms`.", validator=AtLeast(-2), synonym="log.local.retention.ms"),
    ConfigDef("local.retention.bytes", L, -2, "How many bytes of uploaded segments a partition "
              "keeps on local disk; -2 means the same as `retention.bytes`. Must not exceed "
              "`retention.bytes`.", validator=AtLeast(-2), synonym="log.local.retention.bytes"),
    ConfigDef("segment.bytes", I, 1073741824, "Largest size of one segment file.",
              validator=AtLeast(14), synonym="log.segment.bytes"),
    ConfigDef("segment.ms", L, WEEK_MS, "Roll the active segment once it is this old, even if it "
              "is not full, so that retention and upload can act on it.",
              validator=AtLeast(1), synonym="log.roll.ms"),
    ConfigDef("segment.jitter.ms", L, 0, "Up to this much is subtracted at random from "
              "`segment.ms` per segment, so partitions do not all roll together.",
              validator=AtLeast(0), synonym="log.roll.jitter.ms"),
    ConfigDef("segment.index.bytes", I, 10485760, "Largest size of a segment's offset or time "
              "index; a full index rolls the segment.", validator=AtLeast(MIN_INDEX_BYTES),
              synonym="log.index.size.max.bytes"),
    ConfigDef("index.interval.bytes", I, 4096, "Bytes of log between two offset index entries: "
              "smaller means faster lookups and bigger indexes.", validator=AtLeast(0),
              synonym="log.index.interval.bytes"),
    ConfigDef("max.message.bytes", I, 1048588, "Largest record batch the topic accepts, after "
              "compression.", validator=AtLeast(0), synonym="message.max.bytes"),
    ConfigDef("message.timestamp.type", S, "CreateTime", "Which timestamp a batch carries: "
              "`CreateTime` keeps the producer's, `LogAppendTime` stamps the broker's clock.",
              validator=TIMESTAMP_TYPES, synonym="log.message.timestamp.type"),
    ConfigDef("message.timestamp.before.max.ms", L, LONG_MAX, "With `CreateTime`, how far in the "
              "past a batch's timestamp may be; accepted for compatibility.",
              validator=AtLeast(0), synonym="log.message.timestamp.before.max.ms"),
    ConfigDef("message.timestamp.after.max.ms", L, LONG_MAX, "With `CreateTime`, how far in the "
              "future a batch's timestamp may be; accepted for compatibility.",
              validator=AtLeast(0), synonym="log.message.timestamp.after.max.ms"),
    ConfigDef("file.delete.delay.ms", L, 60000, "How long a segment removed from the log waits "
              "before its files are deleted.", validator=AtLeast(0),
              synonym="log.segment.delete.delay.ms"),
    ConfigDef("min.insync.replicas", I, 1, "Replicas that must have a write for acks=all to "
              "succeed; a single broker always has one.", validator=AtLeast(1),
              synonym="min.insync.replicas"),
    ConfigDef("flush.messages", L, LONG_MAX, "Force an fsync after this many messages; accepted "
              "for compatibility (acks=all writes are always synced).", validator=AtLeast(1),
              synonym="log.flush.interval.messages"),
    ConfigDef("flush.ms", L, LONG_MAX, "Force an fsync after this long; accepted for "
              "compatibility (acks=all writes are always synced).", validator=AtLeast(0),
              synonym="log.flush.interval.ms"),
    ConfigDef("compression.type", S, "producer", "Compression of stored batches. tierbroker "
              "stores batches as produced; values other than `producer` are accepted for "
              "compatibility.", validator=COMPRESSION_TYPES, synonym="compression.type"),
    ConfigDef("unclean.leader.election.enable", B, False, "Accepted for compatibility; a "
              "single broker always leads its partitions.",
              synonym="unclean.leader.election.enable"),
    ConfigDef("preallocate", B, False, "Accepted for compatibility; segment files are not "
              "preallocated.", synonym="log.preallocate"),
    ConfigDef("remote.storage.enable", B, False, "Upload closed segments to the remote tier and "
              "serve old offsets from it. Needs `remote.log.storage.system.enable` on the "
              "broker.", synonym="remote.storage.enable"),
    ConfigDef("remote.log.copy.disable", B, False, "Stop uploading new segments but keep "
              "serving, and retaining, those already in the remote tier (read-only remote)."),
    ConfigDef("remote.log.delete.on.disable", B, False, "When `remote.storage.enable` is turned "
              "off, delete the topic's remote segments instead of keeping them."),
    ConfigDef("remote.storage.chunk.bytes", I, 4194304, "Uploaded segments are cut into chunks "
              "of this many bytes (before compression); a cold read fetches whole chunks. Small "
              "values suit tests, not production.", validator=AtLeast(1),
              synonym="remote.storage.chunk.bytes"),
    ConfigDef("remote.storage.chunk.compression", S, "none", "Compression of uploaded chunks: "
              "`none`, `zstd` or `lz4`. Batches are already compressed if the producer did so.",
              validator=CHUNK_COMPRESSION_TYPES, synonym="remote.storage.chunk.compression"),
)
