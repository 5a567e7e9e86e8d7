"""Idempotent-producer state of one partition: who wrote what, in which sequence.

For every producer id that wrote to the partition the table keeps its epoch and
the metadata of its last `BATCHES_KEPT` batches (first/last sequence, first/last
offset), which is what duplicate detection needs: a producer has at most five
requests in flight per partition, so a retried batch is always among them.

Rules (Kafka's, for batches that carry a producer id):
- a batch equal to a cached one (same epoch and sequence range) is a duplicate:
  it is answered with the original offsets and not appended again;
- an epoch older than the producer's current one is INVALID_PRODUCER_EPOCH;
- a newer epoch must start at sequence 0;
- within an epoch, a batch must start right after the last sequence (with
  wrap-around at 2^31-1), else OUT_OF_ORDER_SEQUENCE_NUMBER;
- a producer the table does not know (new, or expired) may start anywhere.

Snapshot format (`producer-state.snapshot`, JSON, written atomically): the offset
it is valid up to (exclusive) and the entries. After a crash the snapshot may be
older than the log; `PartitionLog.open` replays batch headers from its offset
to the log end, so the table always matches the log.

Not thread-safe: owned by the partition's log, on the event loop.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from broker.protocol import errors
from broker.protocol.records import BatchHeader

BATCHES_KEPT = 5
NO_PRODUCER_ID = -1
MAX_SEQUENCE = (1 << 31) - 1


@dataclass(frozen=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int


@dataclass
class ProducerEntry:
    producer_id: int
    epoch: int
    last_timestamp_ms: int
    batches: deque = field(default_factory=lambda: deque(maxlen=BATCHES_KEPT))

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    def find_duplicate(self, header: BatchHeader) -> BatchMetadata | None:
        if header.producer_epoch != self.epoch:
            return None
        last_seq = _last_seq(header)
        for meta in self.batches:
            if meta.first_seq == header.base_sequence and meta.last_seq == last_seq:
                return meta
        return None


def _last_seq(header: BatchHeader) -> int:
    return (header.base_sequence + header.last_offset_delta) % (MAX_SEQUENCE + 1)


def _in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == MAX_SEQUENCE)


class ProducerStateTable:
    def __init__(self) -> None:
        self.entries: dict[int, ProducerEntry] = {}

    def check(self, headers: list[BatchHeader], where: str) -> BatchMetadata | None:
        """Validate a request's batches before they are appended.

        Returns the cached metadata when the (first) idempotent batch is a retry
        of one already in the log; raises the Kafka error for a fencing or a gap.
        `where` names the partition in error messages.
        """
        pending: dict[int, tuple[int, int]] = {}  # producer id -> (epoch, last seq) within this request
        for header in headers:
            pid = header.producer_id
            if pid == NO_PRODUCER_ID:
                continue
            entry = self.entries.get(pid)
            if pid not in pending and entry is not None:
                duplicate = entry.find_duplicate(header)
                if duplicate is not None:
                    return duplicate
            epoch, last_seq = pending.get(pid) or ((entry.epoch, entry.last_seq) if entry else (None, -1))
            if epoch is not None and header.producer_epoch < epoch:
                raise errors.InvalidProducerEpoch(
                    f"{where}: producer {pid} epoch {header.producer_epoch} is older than its "
                    f"current epoch {epoch}")
            if epoch is not None and header.producer_epoch > epoch:
                if header.base_sequence != 0:
                    raise errors.OutOfOrderSequenceNumber(
                        f"{where}: producer {pid} started epoch {header.producer_epoch} at sequence "
                        f"{header.base_sequence}; a new epoch starts at 0")
            elif epoch is not None and last_seq >= 0 and not _in_sequence(last_seq, header.base_sequence):
                raise errors.OutOfOrderSequenceNumber(
                    f"{where}: producer {pid} epoch {epoch} sent sequence {header.base_sequence} "
                    f"after {last_seq}; expected {(last_seq + 1) % (MAX_SEQUENCE + 1)}")
            pending[pid] = (header.producer_epoch, _last_seq(header))
        return None

    def record(self, header: BatchHeader, timestamp_ms: int) -> None:
        """Remember an appended batch (its offsets are assigned)."""
        pid = header.producer_id
        if pid == NO_PRODUCER_ID:
            return
        entry = self.entries.get(pid)
        if entry is None or header.producer_epoch != entry.epoch:
            entry = ProducerEntry(pid, header.producer_epoch, timestamp_ms)
            self.entries[pid] = entry
        entry.last_timestamp_ms = max(entry.last_timestamp_ms, timestamp_ms)
        entry.batches.append(BatchMetadata(header.base_sequence, _last_seq(header),
                                           header.base_offset, header.last_offset))

    def expire(self, now_ms: int, max_age_ms: int) -> int:
        """Forget producers idle for longer than `max_age_ms` (producer.id.expiration.ms)."""
        stale = [pid for pid, e in self.entries.items() if now_ms - e.last_timestamp_ms > max_age_ms]
        for pid in stale:
            del self.entries[pid]
        return len(stale)

    def to_snapshot(self, offset: int) -> bytes:
        return json.dumps({
            "version": 1,
            "offset": offset,
            "producers": [
                {"id": e.producer_id, "epoch": e.epoch, "ts": e.last_timestamp_ms,
                 "batches": [[m.first_seq, m.last_seq, m.first_offset, m.last_offset] for m in e.batches]}
                for e in self.entries.values()
            ],
        }).encode()

    @classmethod
    def from_snapshot(cls, data: bytes) -> tuple["ProducerStateTable", int]:
        """The table and the offset the snapshot is valid up to; ValueError if unreadable."""
        try:
            doc = json.loads(data)
            table = cls()
            for p in doc["producers"]:
                entry = ProducerEntry(int(p["id"]), int(p["epoch"]), int(p["ts"]))
                entry.batches.extend(BatchMetadata(*map(int, b)) for b in p["batches"])
                table.entries[entry.producer_id] = entry
            return table, int(doc["offset"])
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"unreadable producer state snapshot: {exc}") from None
