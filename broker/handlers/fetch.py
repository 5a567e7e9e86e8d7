"""Fetch (key 1): read record batches, long-polling until `min_bytes` arrive.

Each partition is read from its fetch offset: whole batches, up to its
`partition_max_bytes` and the request's `max_bytes` overall, except that the
first batch of the first non-empty partition is returned whole even when it is
larger (KIP-74), so a consumer always makes progress. Local data is handed to
the connection as file regions and leaves by sendfile.

Offsets below the local log start offset but inside the remote tier are read
from the bucket (cold reads, `remote_index.remote_reader`). A cold partition
whose chunks are in memory (read ahead) is served at once; the others' reads
run concurrently. The Fetch waits for the first of them to finish (unless those
served at once hold `min_bytes` already: then it answers at once, and the
others' chunks are hydrated in the background), then only while fewer than
`min_bytes` are in (Kafka's rule), and
never past the request's max wait (or `remote.fetch.max.wait.ms`, which cold
reads always get): the hot partitions of a mixed Fetch are not held up longer
than that, and one partition's GET does not hold up data another partition
already has. A cold read holding `min_bytes` does not wait for its next chunk's
GET either. A cold read cut short answers empty for its partition and carries
on in the background (a failed GET is reported to the partition's next read),
so the client's next Fetch finds the chunks in memory. A cold read that reaches
the local log start continues from the local log in the same response, so a
consumer crosses the tier boundary with no gap and no duplicate. The read-ahead
a Fetch sets off starts once its response is sent (`after_response`).

When fewer than `min_bytes` are available the request waits, up to `max_wait_ms`,
and is woken by any append to (or range change of) a partition it reads.
Fetch sessions (KIP-227) are not kept: answering session id 0 tells clients to
keep sending full fetch requests, which every client supports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from remote_index.remote_reader import RemoteReadError

from ..log import OffsetOutOfRangeError
from ..protocol import errors
from ..protocol.primitives import FileRegion
from ..protocol.schema import Struct
from .common import resolve_topic


async def handle(ctx, req):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(req.max_wait_ms, 0) / 1000
    while True:
        fetch = _FetchPass(ctx, req, deadline)
        await fetch.run()
        remaining = deadline - loop.time()
        # A partition error answers at once, as Kafka does: waiting would only re-run the
        # pass, and a cold read re-run with no time left answers empty, losing the error.
        if fetch.size >= req.min_bytes or remaining <= 0 or not fetch.touched or _has_error(fetch.body):
            return fetch.body
        waiter = loop.create_future()
        for partition in fetch.touched:
            partition.add_waiter(waiter)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter, remaining)
        finally:
            for partition in fetch.touched:
                partition.remove_waiter(waiter)
        _release(fetch.body)


class _FetchPass:
    """One pass over the requested partitions; `body` is the response."""

    def __init__(self, ctx, req, deadline: float):
        self.ctx = ctx
        self.node = ctx.node
        self.req = req
        self.deadline = deadline
        self.cold_deadline = deadline
        self.budget = req.max_bytes if ctx.version >= 3 else 0x7FFFFFFF
        self.size = 0
        self.touched = []
        self._cold = []  # (partition, fetch partition, response dict, byte limit, first)
        self.body = Struct(throttle_time_ms=0, error_code=0, session_id=0, responses=[])

    async def run(self) -> None:
        for fetch_topic in self.req.topics:
            self.body.responses.append(self._topic(fetch_topic))
        if self._cold:
            await self._read_cold()

    def _topic(self, fetch_topic) -> dict:
        try:
            topic = resolve_topic(self.node, self.ctx.version, fetch_topic.topic, fetch_topic.topic_id, 13)
        except errors.KafkaError as exc:
            return _topic_error(fetch_topic, exc)
        partitions = []
        for fp in fetch_topic.partitions:
            out = {"partition_index": fp.partition, "high_watermark": -1, "last_stable_offset": -1,
                   "log_start_offset": -1, "aborted_transactions": None, "preferred_read_replica": -1,
                   "records": b""}
            partitions.append(out)
            try:
                partition = topic.partition(fp.partition)
            except errors.KafkaError as exc:
                out["error_code"] = exc.code
                continue
            self.touched.append(partition)
            self._read_local(partition, fp, out)
        return {"topic": topic.name, "topic_id": topic.topic_id, "partitions": partitions}

    def _read_local(self, partition, fp, out: dict) -> None:
        plog = partition.log
        limit = min(fp.partition_max_bytes, self.budget)
        out.update(high_watermark=plog.high_watermark, last_stable_offset=plog.high_watermark,
                   log_start_offset=plog.earliest_offset)
        first = self.size == 0 and not self._cold
        try:
            result = plog.read(fp.fetch_offset, limit, min_one_batch=first)
        except OffsetOutOfRangeError:
            if plog.earliest_offset <= fp.fetch_offset < plog.log_start_offset:
                # Cold: reserve the byte budget now so the partitions after it keep to max_bytes.
                self._cold.append((partition, fp, out, limit, first))
                self.budget = max(self.budget - limit, 0)
            else:
                out["error_code"] = errors.OffsetOutOfRange.code
            return
        self._add(partition, out, result.records)

    def _add(self, partition, out: dict, records) -> None:
        if records is None:
            return
        pieces = records if isinstance(records, list) else [records]
        n = sum(len(p) for p in pieces)
        out["records"] = records
        if n:
            self.size += n
            self.budget = max(self.budget - n, 0)
            self.node.metrics.bytes_out.labels(partition.topic.name).inc(n)

    async def _read_cold(self) -> None:
        # Cold reads get at least remote.fetch.max.wait.ms (Kafka's KIP-1018 key), so a
        # client fetching with a zero or tiny max wait still gets its remote data.
        loop = asyncio.get_running_loop()
        remote_wait = self.node.config.get("remote.fetch.max.wait.ms") / 1000
        self.cold_deadline = max(self.deadline, loop.time() + remote_wait)
        # Partitions whose chunks are in memory (read ahead) are served right here.
        waiting = [job for job in self._cold if not self._read_cold_from_memory(*job)]
        if not waiting:
            return
        if self.size >= max(self.req.min_bytes, 1):
            # min_bytes are in already: answer now, without a trip round the event loop
            # (one of uvloop's can take many ms while GET bodies land). The other
            # partitions' chunks are hydrated in the background for the client's next Fetch.
            for partition, fp, out, limit, _ in waiting:
                self._warm_cold(partition, fp, out, limit)
            return
        pending = {asyncio.ensure_future(self._read_one_cold(*job)) for job in waiting}
        # The first wait lets every cold read start (find its chunks in memory or set
        # their GETs going) and one finish; after that, only min_bytes keeps us waiting.
        _, pending = await asyncio.wait(pending, timeout=max(self.cold_deadline - loop.time(), 0),
                                        return_when=asyncio.FIRST_COMPLETED)
        while pending and self.size < self.req.min_bytes and (remaining := self.cold_deadline - loop.time()) > 0:
            _, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _read_cold_from_memory(self, partition, fp, out: dict, limit: int, first: bool) -> bool:
        """Serve a cold partition now if it needs no wait (see `read_from_memory`);
        False when it does."""
        manifest = self._cold_manifest(partition, out)
        if manifest is None:
            return True
        upper_bound = partition.log.log_start_offset
        try:
            read = self.node.remote_reader.read_from_memory(
                partition.topic.name, partition.index, manifest, fp.fetch_offset, limit,
                upper_bound=upper_bound, min_one_batch=first,
                enough=max(self.req.min_bytes, 1), defer=self.ctx.after_response.append)
        except RemoteReadError as exc:
            _cold_error(out, exc)
            return True
        if read is None:
            return False
        self._add_cold(partition, out, limit, read, upper_bound)
        return True

    def _warm_cold(self, partition, fp, out: dict, limit: int) -> None:
        """Start hydrating what a cold read of this partition needs; answer it empty now."""
        manifest = self._cold_manifest(partition, out)
        if manifest is not None:
            self.node.remote_reader.warm(partition.topic.name, partition.index, manifest, fp.fetch_offset, limit,
                                         partition.log.log_start_offset)

    async def _read_one_cold(self, partition, fp, out: dict, limit: int, first: bool) -> None:
        manifest = self._cold_manifest(partition, out)
        if manifest is None:
            return
        upper_bound = partition.log.log_start_offset
        try:
            read = await self.node.remote_reader.read(
                partition.topic.name, partition.index, manifest, fp.fetch_offset, limit,
                upper_bound=upper_bound, min_one_batch=first, deadline=self.cold_deadline,
                enough=max(self.req.min_bytes, 1), defer=self.ctx.after_response.append)
        except RemoteReadError as exc:
            _cold_error(out, exc)
            return
        self._add_cold(partition, out, limit, read, upper_bound)

    def _cold_manifest(self, partition, out: dict):
        """The partition's manifest; None (with the error set) when it is not loaded."""
        tier = self.node.tiering.tier_of(partition.tier_ref)
        manifest = tier.manifest if tier is not None else None
        if manifest is None:
            # The remote range is known (remembered from before a restart) but the
            # manifest has not loaded yet: retriable, so the consumer keeps its position.
            out["error_code"] = errors.KafkaStorageError.code
        return manifest

    def _add_cold(self, partition, out: dict, limit: int, read, upper_bound: int) -> None:
        """Add a cold read's batches; one that reached `upper_bound` (the local log start
        when it began) continues in the local log."""
        plog = partition.log
        pieces = [read.records] if read.records else []
        if read.next_offset >= upper_bound and len(read.records) < limit:
            # The cold read reached the local log: continue there in the same answer.
            try:
                local = plog.read(upper_bound, limit - len(read.records), min_one_batch=not pieces)
            except OffsetOutOfRangeError:
                local = None
            if local is not None and local.records:
                pieces.append(local.records)
        self._add(partition, out, pieces if len(pieces) > 1 else (pieces[0] if pieces else b""))


def _cold_error(out: dict, exc: RemoteReadError) -> None:
    # Corrupt data is never served; clients surface this error. An unreachable
    # store is retriable: clients back off and fetch again.
    out["error_code"] = errors.UnknownServerError.code if exc.corrupt else errors.KafkaStorageError.code


def _topic_error(fetch_topic, exc):
    return {"topic": fetch_topic.topic, "topic_id": fetch_topic.topic_id, "partitions": [
        {"partition_index": p.partition, "error_code": exc.code, "high_watermark": -1,
         "last_stable_offset": -1, "log_start_offset": -1, "records": b""}
        for p in fetch_topic.partitions]}


def _has_error(body) -> bool:
    return any(partition.get("error_code") for topic in body["responses"] for partition in topic["partitions"])


def _release(body) -> None:
    """Close the file regions of a pass that will not be sent."""
    for topic in body["responses"]:
        for partition in topic["partitions"]:
            records = partition.get("records")
            for piece in records if isinstance(records, list) else [records]:
                if isinstance(piece, FileRegion):
                    with contextlib.suppress(OSError):
                        os.close(piece.fd)


def error_response(req, version, error):
    if req is None:
        return {"error_code": error.code}
    return {"error_code": error.code, "responses": [_topic_error(t, error) for t in req.topics]}
