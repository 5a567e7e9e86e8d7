"""The finish committer's batching (tiering/upload_run.py): sent segments wait for
company only while the next one is due before the linger ends.

The linger is set to a minute here, so a committer that waited when it should
not would time these tests out rather than pass slowly.
"""

from __future__ import annotations

import asyncio

import pytest

from tiering import upload_run
from tiering.upload_run import FinishCommitter

LINGER_S = 60.0
FAST_S = 0.001  # a segment sent this long after the previous one: a backlog
SLOW_S = 2 * LINGER_S  # one that took longer than the whole linger


class RecordingUploader:
    """Stands in for SegmentUploader.commit_finished: records each write's batch."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.wrote = asyncio.Event()

    async def commit_finished(self, ctx, manifests, finished) -> None:
        self.writes.append([attempt for attempt, _ in finished])
        self.wrote.set()


@pytest.fixture(autouse=True)
def long_linger(monkeypatch):
    monkeypatch.setattr(upload_run, "FINISH_LINGER_S", LINGER_S)
    monkeypatch.setattr(upload_run, "FINISH_BATCH", 3)


async def _next_write(uploader: RecordingUploader) -> list[str]:
    await asyncio.wait_for(uploader.wrote.wait(), 10)
    uploader.wrote.clear()
    return uploader.writes[-1]


def _committer(uploader: RecordingUploader) -> FinishCommitter:
    return FinishCommitter(uploader, ctx=None, manifests=None, on_committed=lambda: None)


def test_segments_of_a_backlog_share_a_write_up_to_the_batch():
    async def scenario():
        uploader = RecordingUploader()
        committer = _committer(uploader)
        for name in ("s1", "s2", "s3"):
            committer.add(name, None, took_s=FAST_S)
            await asyncio.sleep(0)
        assert await _next_write(uploader) == ["s1", "s2", "s3"]
        committer.add("s4", None, took_s=FAST_S)
        await committer.close()  # the run's end commits what lingers, at once
        return uploader.writes

    assert asyncio.run(scenario()) == [["s1", "s2", "s3"], ["s4"]]


def test_a_segment_that_came_slowly_is_committed_at_once():
    # Under a rate limit or a slow bucket the next segment is further off than the
    # linger: waiting for it would only delay this one.
    async def scenario():
        uploader = RecordingUploader()
        committer = _committer(uploader)
        committer.add("s1", None, took_s=SLOW_S)
        first = await _next_write(uploader)
        committer.add("s2", None, took_s=SLOW_S)
        second = await _next_write(uploader)
        await committer.close()
        return first, second, uploader.writes

    first, second, writes = asyncio.run(scenario())
    assert first == ["s1"] and second == ["s2"] and len(writes) == 2


def test_lingering_stops_when_a_slow_segment_arrives():
    async def scenario():
        uploader = RecordingUploader()
        committer = _committer(uploader)
        committer.add("s1", None, took_s=FAST_S)
        await asyncio.sleep(0.05)
        assert uploader.writes == []  # lingering: s2 is due soon
        committer.add("s2", None, took_s=SLOW_S)
        written = await _next_write(uploader)
        await committer.close()
        return written

    assert asyncio.run(scenario()) == ["s1", "s2"]
