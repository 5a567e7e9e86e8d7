"""Stateful property test: the log against a plain in-memory model.

Random sequences of appends, rolls, flushes, DeleteRecords, retention, clean
restarts, crashes (with garbage or a torn last batch) must leave the log serving
exactly the model's batches from its log start offset on.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from log_helpers import NOW, batch_of_size, crash, read_all, region_bytes

from broker.log import LogConfig, PartitionLog
from broker.protocol.records import validate_batches


class LogModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        self.directory = self.root / "model-0"
        self.config = LogConfig(segment_bytes=3_000, index_interval_bytes=400, retention_ms=-1, file_delete_delay_ms=0)
        self.log = PartitionLog.open(self.directory, self.config, now_ms=NOW)
        self.batches: list[tuple[int, int, int, bytes]] = []  # (base offset, next offset, max ts, bytes after baseOffset)
        self.log_start = 0
        self.now = NOW

    def teardown(self):
        try:
            self.log.close()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def log_end(self) -> int:
        return self.batches[-1][1] if self.batches else self.log_start

    def _reopen(self):
        self.log = PartitionLog.open(self.directory, self.config, now_ms=self.now)

    @rule(size=st.integers(80, 1_500), count=st.integers(1, 4), ts=st.integers(0, 10_000), batches=st.integers(1, 3))
    def append(self, size, count, ts, batches):
        size += 10 * count
        raw = b"".join(batch_of_size(size + 20 * i, timestamp=NOW + ts + i, count=count) for i in range(batches))
        buf = bytearray(raw)
        headers = validate_batches(buf)
        self.now += 1
        result = self.log.append(buf, headers, self.now)
        assert result.base_offset == self.log_end
        for header in headers:
            self.batches.append(
                (header.base_offset, header.next_offset, header.max_timestamp,
                 bytes(buf[header.position + 8 : header.position + header.size]))
            )
        assert result.last_offset == self.log_end - 1

    @rule()
    def roll(self):
        self.now += self.config.segment_ms + 1
        self.log.maybe_roll(self.now)

    @rule()
    def flush(self):
        asyncio.run(self.log.flush(self.log.log_end_offset - 1))
        assert self.log.flushed_offset == self.log.log_end_offset

    @rule(data=st.data())
    def delete_records(self, data):
        offset = data.draw(st.integers(self.log_start, self.log_end))
        assert self.log.delete_records_before(offset) == offset
        self.log_start = offset

    @rule(keep=st.integers(0, 6_000))
    def retention_by_size(self, keep):
        self.log.update_config(LogConfig(**{**self.config.__dict__, "retention_bytes": keep}))
        deleted = self.log.apply_retention(self.now)
        self.log.update_config(self.config)
        if deleted:
            assert self.log.log_start_offset >= self.log_start
            self.log_start = self.log.log_start_offset
        assert self.log.size_bytes() >= min(keep, self.log.size_bytes())

    @rule()
    def clean_restart(self):
        self.log.close()
        self._reopen()

    @rule(garbage=st.binary(min_size=1, max_size=200))
    def crash_with_garbage(self, garbage):
        path = self.log.segments[-1].path
        crash(self.log)
        with open(path, "ab") as f:
            f.write(garbage)
        self._reopen()

    # A crash tears the tail of the active segment, where writes happen.
    @precondition(lambda self: self.batches and self.batches[-1][0] >= self.log_start and self.log.segments[-1].size_bytes)
    @rule(data=st.data())
    def crash_tearing_the_last_batch(self, data):
        body = self.batches[-1][3]
        segment = self.log.segments[-1]
        crash(self.log)
        keep = data.draw(st.integers(1, len(body) + 7))
        with open(segment.path, "r+b") as f:
            f.truncate(os.path.getsize(segment.path) - (len(body) + 8) + keep)
        self.batches.pop()
        self._reopen()

    @invariant()
    def serves_the_model(self):
        log = self.log
        assert (log.log_start_offset, log.log_end_offset) == (self.log_start, self.log_end)
        expected = [b for b in self.batches if b[1] > self.log_start]
        actual = read_all(log)
        assert [h.base_offset for h in actual] == [b[0] for b in expected]
        segments = log.segments
        for before, after in zip(segments, segments[1:]):
            assert before.next_offset <= after.base_offset
        assert segments[-1].is_active and segments[-1].next_offset == self.log_end

    @invariant()
    def bytes_and_timestamps_match(self):
        expected = [b for b in self.batches if b[1] > self.log_start]
        if not expected:
            assert self.log.offset_for_timestamp(0) is None
            return
        middle = expected[len(expected) // 2]
        data = region_bytes(self.log.read(max(middle[0], self.log_start), 1).records)
        assert data[8 : 8 + len(middle[3])] == middle[3]
        for target in (NOW, NOW + 5_000, NOW + 10_003):
            match = next((b for b in expected if b[2] >= target), None)
            want = None if match is None else (max(match[0], self.log_start), match[2])
            assert self.log.offset_for_timestamp(target) == want


LogModel.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestLogModel = LogModel.TestCase
