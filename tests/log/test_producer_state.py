"""Idempotent producer bookkeeping: duplicates, gaps, fencing, snapshots."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from broker.log.producer_state import MAX_SEQUENCE, ProducerStateTable
from broker.protocol import errors
from broker.protocol.records import parse_batch_header
from tests.helpers.record_batches import build_batch

PID = 4000


def header(seq: int, count: int = 1, epoch: int = 0, pid: int = PID, offset: int = 0):
    batch = build_batch([(None, b"v")] * count, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    h = parse_batch_header(batch, 0)
    h.base_offset = offset
    return h


def appended(table: ProducerStateTable, h, offset: int):
    h.base_offset = offset
    assert table.check([h], "t-0") is None
    table.record(h, 1000)
    return h


def test_in_order_batches_are_accepted_and_retries_are_duplicates():
    table = ProducerStateTable()
    appended(table, header(0, 3), 0)
    appended(table, header(3, 2), 3)
    retry = header(0, 3)
    dup = table.check([retry], "t-0")
    assert (dup.first_offset, dup.last_offset) == (0, 2)
    assert table.check([header(3, 2)], "t-0").first_offset == 3


def test_gap_is_out_of_order():
    table = ProducerStateTable()
    appended(table, header(0, 2), 0)
    with pytest.raises(errors.OutOfOrderSequenceNumber, match="expected 2"):
        table.check([header(5)], "t-0")


def test_only_the_last_five_batches_are_remembered():
    table = ProducerStateTable()
    for i in range(7):
        appended(table, header(i), i)
    assert table.check([header(2)], "t-0").first_offset == 2
    # Batch 0 fell out of the window: it is neither a duplicate nor in sequence.
    with pytest.raises(errors.OutOfOrderSequenceNumber):
        table.check([header(0)], "t-0")


def test_stale_epoch_is_fenced_and_new_epoch_starts_at_zero():
    table = ProducerStateTable()
    appended(table, header(0, epoch=3), 0)
    with pytest.raises(errors.InvalidProducerEpoch):
        table.check([header(1, epoch=2)], "t-0")
    with pytest.raises(errors.OutOfOrderSequenceNumber, match="starts at 0"):
        table.check([header(7, epoch=4)], "t-0")
    appended(table, header(0, epoch=4), 1)


def test_unknown_producer_may_start_anywhere_and_sequences_wrap():
    table = ProducerStateTable()
    appended(table, header(MAX_SEQUENCE), 0)
    appended(table, header(0), 1)


def test_batches_of_one_request_are_checked_against_each_other():
    table = ProducerStateTable()
    assert table.check([header(0, 2), header(2, 2)], "t-0") is None
    with pytest.raises(errors.OutOfOrderSequenceNumber):
        table.check([header(0, 2), header(3, 2)], "t-0")


def test_snapshot_round_trip_and_expiry():
    table = ProducerStateTable()
    appended(table, header(0, 2), 0)
    appended(table, header(0, 1, pid=PID + 1), 2)
    restored, offset = ProducerStateTable.from_snapshot(table.to_snapshot(3))
    assert offset == 3
    assert restored.check([header(0, 2)], "t-0").first_offset == 0
    assert restored.expire(now_ms=1000 + 10, max_age_ms=5) == 2
    assert restored.entries == {}
    with pytest.raises(ValueError):
        ProducerStateTable.from_snapshot(b"{not json")


@given(st.lists(st.integers(1, 4), min_size=1, max_size=30), st.data())
def test_any_retry_of_a_recent_batch_is_a_duplicate(sizes, data):
    table = ProducerStateTable()
    seq = offset = 0
    sent = []
    for n in sizes:
        appended(table, header(seq, n), offset)
        sent.append((seq, n, offset))
        seq += n
        offset += n
    first_seq, n, first_offset = data.draw(st.sampled_from(sent[-5:]))
    assert table.check([header(first_seq, n)], "t-0").first_offset == first_offset
