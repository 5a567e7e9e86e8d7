"""One partition's run of uploads: its eligible segments, in offset order, with
the manifest writes off the data path.

    manifest:  start 1..k |            | finish 1 |     | finish 2, 3 | ...
    objects:              |   send 1   |   send 2   |   send 3   | ...

- One manifest write starts a batch of up to `START_BATCH` attempts
  (COPY_STARTED), so every attempt is recorded before any of its objects exist.
- Their objects go up one segment after another: one upload in flight per
  partition keeps the shared upload slots fair across partitions.
- A committer task behind the uploads writes COPY_FINISHED entries in offset
  order, each write carrying every attempt sent since the last one. In a
  backlog it lets sent segments wait for company (up to `FINISH_BATCH` of them,
  at most `FINISH_LINGER_S`), so the manifest is rewritten once per few
  segments rather than once per segment. It waits only while the next segment
  is expected in time (the last one took as long to arrive as it will): when
  segments come slowly (a rate limit, a slow bucket, a trickle of rolls) each
  is committed at once, as lingering would delay it and save no write. The
  run's end commits at once. A segment counts as uploaded (metrics, the log's
  remote range, local retention) only once that write lands.

When the run stops early (a failure, a rollback), what was sent is still
committed if the bucket allows, and attempts started but never finished stay
COPY_STARTED: the run reports them so the partition's next pass garbage-collects
them before uploading again under fresh segment ids.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from remote_index.manifest import ManifestStore, RemoteSegment

from .uploader import SegmentUploader, UploadAttempt, UploadContext

START_BATCH = 16
FINISH_BATCH = 4  # COPY_FINISHED entries that make a write at once
FINISH_LINGER_S = 0.75  # longest a sent segment waits for others to share its write

Finished = list[tuple[UploadAttempt, RemoteSegment]]
OnCommitted = Callable[[], None]


class FinishCommitter:
    """Commits COPY_FINISHED entries in the order they are added, batching those
    that queue up while a write is in flight or while the first of them lingers
    for the next (see the module docstring). A failed write stops it; `add` and
    `close` then raise that failure."""

    def __init__(self, uploader: SegmentUploader, ctx: UploadContext, manifests: ManifestStore,
                 on_committed: OnCommitted):
        self._uploader = uploader
        self._ctx = ctx
        self._manifests = manifests
        self._on_committed = on_committed
        self._ready: Finished = []
        self._next_expected = 0.0  # loop time the segment after the last added should arrive
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run())

    def add(self, attempt: UploadAttempt, finished: RemoteSegment, took_s: float) -> None:
        """`finished` was sent `took_s` after the run turned to it: the next one
        is expected as long after this."""
        self.raise_failure()
        self._ready.append((attempt, finished))
        self._next_expected = asyncio.get_running_loop().time() + took_s
        self._wakeup.set()

    def raise_failure(self) -> None:
        if self._task.done():
            self._task.result()  # raises the failed write's error
            raise RuntimeError("the finish committer stopped")  # closed: nothing may be added

    async def close(self) -> None:
        """Commit everything added, then stop; raises a failed write's error."""
        self._closing = True
        self._wakeup.set()
        await self._task

    def cancel(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._ready:
                # Linger while the next segment is due before the linger ends (a
                # backlog): one write then covers several.
                until = loop.time() + FINISH_LINGER_S
                while (not self._closing and len(self._ready) < FINISH_BATCH
                       and loop.time() < until and self._next_expected <= until):
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), until - loop.time())
                    self._wakeup.clear()
                batch, self._ready = self._ready, []
                await self._uploader.commit_finished(self._ctx, self._manifests, batch)
                self._on_committed()
            if self._closing:
                return


class UploadRun:
    """Uploads a partition's eligible segments until none is left or `should_stop()`.

    `next_eligible(after)` names the oldest closed segment not yet uploaded, at or
    after offset `after` (None: from the remote end offset), or None. After `run`,
    `left_started` says whether started attempts were left unfinished, and
    `working_on` is the base offset of the last segment the run took up."""

    def __init__(self, uploader: SegmentUploader, ctx: UploadContext, manifests: ManifestStore, policy,
                 next_eligible, should_stop: Callable[[], bool], on_committed: OnCommitted):
        self.uploader = uploader
        self.ctx = ctx
        self.manifests = manifests
        self.policy = policy
        self.next_eligible = next_eligible
        self.should_stop = should_stop
        self.on_committed = on_committed
        self.left_started = False
        self.working_on: int | None = None

    async def run(self, upload_slots) -> None:
        with self.uploader.running():
            await self._run(upload_slots)

    async def _run(self, upload_slots) -> None:
        loop = asyncio.get_running_loop()
        committer = FinishCommitter(self.uploader, self.ctx, self.manifests, self.on_committed)
        pending: list[UploadAttempt] = []  # started, objects not sent yet
        after = None
        try:
            try:
                while not self.should_stop():
                    if not pending:
                        pending = await self._start_batch(after)
                        if not pending:
                            break
                    attempt = pending.pop(0)
                    after = attempt.segment.next_offset
                    self.working_on = attempt.segment.base_offset
                    turned_to = loop.time()
                    async with upload_slots:
                        committer.raise_failure()
                        finished = await self.uploader.send(self.ctx, self.manifests, attempt, self.policy)
                    committer.add(attempt, finished, took_s=loop.time() - turned_to)
            except Exception:
                with contextlib.suppress(Exception):
                    await committer.close()  # keep what was sent before the failure
                raise
            await committer.close()
        finally:
            committer.cancel()
            for attempt in pending:
                attempt.close()
                self.left_started |= attempt.started

    async def _start_batch(self, after: int | None) -> list[UploadAttempt]:
        attempts: list[UploadAttempt] = []
        try:
            while len(attempts) < START_BATCH and (segment := self.next_eligible(after)) is not None:
                if not attempts:
                    self.working_on = segment.base_offset
                attempts.append(await self.uploader.prepare(self.manifests, segment, segment.next_offset - 1,
                                                            self.policy))
                after = segment.next_offset
            if attempts:
                await self.uploader.start(self.manifests, attempts)
        except BaseException:
            for attempt in attempts:
                attempt.close()
            self.left_started = True  # a lost response may have recorded them after all
            raise
        return attempts
