"""Unit tests of the write side's pure parts: retention decisions (tiering/retention.py),
the shared token bucket on a fake clock (remote_index/rate_limit.py), retries with
backoff and jitter (tiering/retry.py), and the uploader's spare streams
(tiering/uploader.py)."""

from __future__ import annotations

import asyncio
import io
import random
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.log import SegmentInfo
from remote_index import rate_limit
from remote_index.rate_limit import UNLIMITED, TokenBucket
from remote_index.store import StoreError, TransientStoreError
from tiering import retry as retry_module
from tiering.retention import local_segments_to_delete, remote_segments_to_delete
from tiering.retry import Backoff, retrying
from tiering.uploader import SpareStreams

NOW = 1_800_000_000_000
HOUR = 3_600_000


# ---------------------------------------------------------------------------
# Retention


def _local(sizes_and_ages, active_size=100) -> list[SegmentInfo]:
    """Local segments of 10 offsets each with (size, age in ms); the active one last."""
    segments, base = [], 0
    for size, age in sizes_and_ages:
        segments.append(SegmentInfo(base, base + 10, size, NOW - age, Path(f"{base:020d}.log"), False))
        base += 10
    segments.append(SegmentInfo(base, base + 5, active_size, NOW, Path(f"{base:020d}.log"), True))
    return segments


@dataclass(frozen=True)
class Remote:
    size_bytes: int
    max_timestamp: int


class TestLocalRetention:
    def test_nothing_goes_before_anything_is_uploaded(self):
        segments = _local([(1000, 10 * HOUR)] * 4)
        assert local_segments_to_delete(segments, None, HOUR, 0, NOW).count == 0

    def test_only_segments_below_the_remote_end_go_whatever_their_age(self):
        segments = _local([(1000, 10 * HOUR)] * 4)
        # Offsets [0, 25) uploaded: segments [0,10) and [10,20) are covered, [20,30) is not.
        decision = local_segments_to_delete(segments, 25, HOUR, -1, NOW)
        assert decision.count == 2 and decision.reason == f"local.retention.ms={HOUR}"
        assert local_segments_to_delete(segments, 30, HOUR, -1, NOW).count == 3

    def test_never_the_active_segment(self):
        segments = _local([(1000, 10 * HOUR)] * 2)
        assert local_segments_to_delete(segments, 10_000, 0, 0, NOW + 10 * HOUR).count == 2

    def test_by_time_stops_at_the_first_young_segment(self):
        segments = _local([(1000, 10 * HOUR), (1000, 10), (1000, 10 * HOUR)])
        assert local_segments_to_delete(segments, 30, HOUR, -1, NOW).count == 1

    def test_by_size_keeps_the_log_at_least_the_limit(self):
        segments = _local([(1000, 0)] * 4, active_size=100)  # 4100 bytes locally
        # Delete while what is left stays >= 2000: two segments go (4100 -> 3100 -> 2100).
        decision = local_segments_to_delete(segments, 40, -1, 2000, NOW)
        assert decision.count == 2 and decision.reason == "local.retention.bytes=2000"
        assert local_segments_to_delete(segments, 40, -1, 2100, NOW).count == 2
        assert local_segments_to_delete(segments, 40, -1, 2101, NOW).count == 1

    def test_unlimited_and_missing_timestamps_keep_everything(self):
        segments = _local([(1000, 10 * HOUR)] * 3)
        assert local_segments_to_delete(segments, 30, -1, -1, NOW).count == 0
        no_ts = [SegmentInfo(0, 10, 1000, -1, Path("a"), False), SegmentInfo(10, 11, 10, -1, Path("b"), True)]
        assert local_segments_to_delete(no_ts, 10, 1, -1, NOW).count == 0

    def test_either_rule_suffices(self):
        # 7100 bytes: the first (young) segment goes by size (-> 2100), the second by age
        # (-> 1100), the third is young and the log would drop below the limit.
        segments = _local([(5000, 10), (1000, 10 * HOUR), (1000, 10)])
        decision = local_segments_to_delete(segments, 30, HOUR, 2000, NOW)
        assert decision.count == 2 and decision.reason == "local.retention.bytes=2000"


class TestTotalRetention:
    def test_by_time(self):
        remote = [Remote(1000, NOW - 3 * HOUR), Remote(1000, NOW - 2 * HOUR), Remote(1000, NOW - 10)]
        decision = remote_segments_to_delete(remote, 0, HOUR, -1, NOW)
        assert decision.count == 2 and decision.reason == f"retention.ms={HOUR}"
        assert remote_segments_to_delete(remote, 0, -1, -1, NOW).count == 0

    def test_by_size_counts_local_data_not_yet_uploaded(self):
        remote = [Remote(1000, NOW)] * 4
        assert remote_segments_to_delete(remote, 0, -1, 2000, NOW).count == 2
        # 1500 local-only bytes: the whole log is 5500, so three remote segments go (-> 2500).
        assert remote_segments_to_delete(remote, 1500, -1, 2000, NOW).count == 3
        assert remote_segments_to_delete(remote, 1500, -1, 2500, NOW).count == 3
        assert remote_segments_to_delete(remote, 1500, -1, 2501, NOW).count == 2

    def test_never_below_the_limit_and_never_more_than_exists(self):
        remote = [Remote(1000, NOW)] * 3
        for limit in (0, 1, 999, 1000, 2999, 3000, 3001):
            count = remote_segments_to_delete(remote, 0, -1, limit, NOW).count
            assert 3000 - 1000 * count >= limit or count == 0
            assert 0 <= count <= 3
        assert remote_segments_to_delete(remote, 0, -1, 0, NOW).count == 3

    def test_segments_without_timestamps_never_expire_by_time(self):
        remote = [Remote(1000, -1), Remote(1000, NOW - 5 * HOUR)]
        assert remote_segments_to_delete(remote, 0, HOUR, -1, NOW).count == 0

    def test_nothing_remote_nothing_to_do(self):
        assert remote_segments_to_delete([], 10_000, 0, 0, NOW).count == 0


# ---------------------------------------------------------------------------
# Token bucket


class FakeTime:
    """A clock that only moves when the bucket sleeps on it."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still yield, as a real sleep would


@pytest.fixture
def fake_time(monkeypatch) -> FakeTime:
    clock = FakeTime()
    monkeypatch.setattr(rate_limit, "asyncio", types.SimpleNamespace(Lock=asyncio.Lock, sleep=clock.sleep))
    return clock


def test_bucket_first_request_goes_at_once_and_later_ones_pay_the_debt(fake_time):
    async def scenario():
        bucket = TokenBucket(1000, clock=fake_time)
        assert await bucket.acquire(3000) == 0.0  # the balance was not negative
        waited = await bucket.acquire(500)  # waits for the 3000-byte debt: 3 s
        assert waited == pytest.approx(3.0)
        waited = await bucket.acquire(500)
        assert waited == pytest.approx(0.5)
        assert bucket.throttled_seconds == pytest.approx(3.5)

    asyncio.run(scenario())


def test_bucket_long_run_rate_is_the_rate(fake_time):
    async def scenario():
        bucket = TokenBucket(10_000, clock=fake_time)
        start = fake_time.now
        sizes = [random.Random(1).randint(1, 5000) for _ in range(200)]
        for size in sizes:
            await bucket.acquire(size)
        # Everything but the last request has been paid for by the time it goes.
        elapsed = fake_time.now - start
        assert elapsed == pytest.approx((sum(sizes) - sizes[-1]) / 10_000, rel=1e-9)

    asyncio.run(scenario())


def test_bucket_idle_credit_is_capped_at_the_burst(fake_time):
    async def scenario():
        bucket = TokenBucket(1000, burst_bytes=200, clock=fake_time)
        fake_time.now += 3600  # an hour idle earns only 200 bytes of credit
        assert await bucket.acquire(1200) == 0.0
        assert await bucket.acquire(1) == pytest.approx(1.0)  # debt 1000 at 1000 B/s
        assert TokenBucket(1000, clock=fake_time).burst == 100  # default: a tenth of a second

    asyncio.run(scenario())


def test_bucket_waiters_are_served_in_arrival_order(fake_time):
    async def scenario():
        bucket = TokenBucket(100, clock=fake_time)
        await bucket.acquire(100)  # debt: everyone after waits
        order = []

        async def take(name, n):
            await bucket.acquire(n)
            order.append((name, fake_time.now))

        await asyncio.gather(*(take(i, 100) for i in range(5)))
        assert [name for name, _ in order] == list(range(5))
        times = [t - 1000.0 for _, t in order]
        assert times == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])

    asyncio.run(scenario())


def test_unlimited_bucket_never_waits(fake_time):
    async def scenario():
        for rate in (UNLIMITED, 0, -1):
            bucket = TokenBucket(rate, clock=fake_time)
            for _ in range(100):
                assert await bucket.acquire(1 << 30) == 0.0
        assert fake_time.sleeps == []
        assert await TokenBucket(10, clock=fake_time).acquire(0) == 0.0

    asyncio.run(scenario())


# ---------------------------------------------------------------------------
# Retries


@pytest.fixture
def recorded_sleeps(monkeypatch) -> list[float]:
    sleeps: list[float] = []

    async def sleep(seconds):
        sleeps.append(seconds)

    monkeypatch.setattr(retry_module, "asyncio", types.SimpleNamespace(sleep=sleep))
    return sleeps


def test_backoff_delay_is_full_jitter_under_a_capped_exponential():
    backoff = Backoff(base_s=0.1, cap_s=2.0, attempts=10)
    rng = random.Random(5)
    for attempt in range(1, 10):
        ceiling = min(2.0, 0.1 * 2 ** attempt)
        delays = [backoff.delay(attempt, rng) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling and min(delays) < 0.2 * ceiling  # spread, not fixed


def test_retrying_retries_transient_errors_then_succeeds(recorded_sleeps):
    calls, retries = [], []

    async def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise TransientStoreError("503 SlowDown", "k")
        return "done"

    result = asyncio.run(retrying(flaky, Backoff(base_s=0.1, cap_s=1.0, attempts=6),
                                  on_retry=lambda attempt, exc: retries.append((attempt, str(exc)))))
    assert result == "done" and len(calls) == 4
    assert [a for a, _ in retries] == [1, 2, 3] and "SlowDown" in retries[0][1]
    assert len(recorded_sleeps) == 3
    assert all(0 <= s <= min(1.0, 0.1 * 2 ** (i + 1)) for i, s in enumerate(recorded_sleeps))


def test_retrying_gives_up_after_the_last_attempt(recorded_sleeps):
    calls = []

    async def down():
        calls.append(1)
        raise TransientStoreError("connection refused", "k")

    with pytest.raises(TransientStoreError, match="connection refused"):
        asyncio.run(retrying(down, Backoff(attempts=5)))
    assert len(calls) == 5 and len(recorded_sleeps) == 4


def test_retrying_does_not_retry_permanent_errors(recorded_sleeps):
    calls = []

    async def denied():
        calls.append(1)
        raise StoreError("AccessDenied", "k")

    async def broken():
        calls.append(1)
        raise ValueError("not a store error")

    with pytest.raises(StoreError, match="AccessDenied"):
        asyncio.run(retrying(denied, Backoff(attempts=5)))
    with pytest.raises(ValueError):
        asyncio.run(retrying(broken, Backoff(attempts=5)))
    assert len(calls) == 2 and recorded_sleeps == []


# ---------------------------------------------------------------------------
# Spare streams


def _sent(size: int = 1000) -> io.BytesIO:
    stream = io.BytesIO(bytes(size))
    stream.seek(size // 2)  # wherever the last reader left it
    return stream


def test_spare_streams_keep_up_to_their_limit_and_hand_them_back():
    spares = SpareStreams(limit=2)
    kept = [_sent(), _sent()]
    for stream in [*kept, _sent()]:
        spares.give(stream)
    assert len(spares) == 2
    taken = [spares.take(), spares.take()]
    assert sorted(map(id, taken)) == sorted(map(id, kept))
    assert all(s.getbuffer().nbytes == 1000 for s in taken)  # nothing cut off
    assert spares.take() is None


def test_spare_streams_refuse_one_still_lent_out_or_closed():
    spares = SpareStreams(limit=4)
    lent = _sent()
    view = lent.getbuffer()
    spares.give(lent)
    closed = _sent()
    closed.close()
    spares.give(closed)
    assert len(spares) == 0
    view.release()
    spares.give(lent)
    assert spares.take() is lent


def test_spare_streams_clear_drops_them_all():
    spares = SpareStreams(limit=4)
    spares.give(_sent())
    spares.give(_sent())
    spares.clear()
    assert len(spares) == 0 and spares.take() is None
