"""Fetch (key 1): read record batches, long-polling until `min_bytes` arrive.

Each partition is read from its fetch offset: whole batches, up to its
`partition_max_bytes` and the request's `max_bytes` overall, except that the
first batch of the first non-empty partition is returned whole even when it is
larger (KIP-74), so a consumer always makes progress. Local data is handed to
the connection as file regions and leaves by sendfile.

When fewer than `min_bytes` are available the request waits, up to `max_wait_ms`,
and is woken by any append to (or range change of) a partition it reads.
Fetch sessions (KIP-227) are not kept: answering session id 0 tells clients to
keep sending full fetch requests, which every client supports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from ..log import OffsetOutOfRangeError
from ..protocol import errors
from ..protocol.primitives import FileRegion
from ..protocol.schema import Struct
from .common import resolve_topic

async def handle(ctx, req):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(req.max_wait_ms, 0) / 1000
    while True:
        body, size, touched = _read(ctx, req)
        remaining = deadline - loop.time()
        if size >= req.min_bytes or remaining <= 0 or not touched or body.get("error_code"):
            return body
        waiter = loop.create_future()
        for partition in touched:
            partition.add_waiter(waiter)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter, remaining)
        finally:
            for partition in touched:
                partition.remove_waiter(waiter)
        _release(body)


def _read(ctx, req):
    """One pass over the requested partitions: (response body, record bytes, partitions read)."""
    node = ctx.node
    budget = req.max_bytes if ctx.version >= 3 else 0x7FFFFFFF
    first_data_pending = True
    size = 0
    touched = []
    responses = []
    for fetch_topic in req.topics:
        try:
            topic = resolve_topic(node, ctx.version, fetch_topic.topic, fetch_topic.topic_id, 13)
        except errors.KafkaError as exc:
            responses.append(_topic_error(fetch_topic, exc))
            continue
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
            touched.append(partition)
            plog = partition.log
            limit = min(fp.partition_max_bytes, budget)
            try:
                result = plog.read(fp.fetch_offset, limit, min_one_batch=first_data_pending)
            except OffsetOutOfRangeError:
                out.update(error_code=errors.OffsetOutOfRange.code,
                           high_watermark=plog.high_watermark, last_stable_offset=plog.high_watermark,
                           log_start_offset=plog.log_start_offset)
                continue
            out.update(high_watermark=result.high_watermark, last_stable_offset=result.high_watermark,
                       log_start_offset=result.log_start_offset, records=b"" if result.records is None else result.records)
            if result.records is not None and len(result.records):
                n = len(result.records)
                size += n
                budget = max(budget - n, 0)
                first_data_pending = False
                node.metrics.bytes_out.labels(topic.name).inc(n)
        responses.append({"topic": topic.name, "topic_id": topic.topic_id, "partitions": partitions})
    return Struct(throttle_time_ms=0, error_code=0, session_id=0, responses=responses), size, touched


def _topic_error(fetch_topic, exc):
    return {"topic": fetch_topic.topic, "topic_id": fetch_topic.topic_id, "partitions": [
        {"partition_index": p.partition, "error_code": exc.code, "high_watermark": -1,
         "last_stable_offset": -1, "log_start_offset": -1, "records": b""}
        for p in fetch_topic.partitions]}


def _release(body) -> None:
    """Close the file regions of a pass that will not be sent."""
    for topic in body["responses"]:
        for partition in topic["partitions"]:
            records = partition.get("records")
            if isinstance(records, FileRegion):
                with contextlib.suppress(OSError):
                    os.close(records.fd)


def error_response(req, version, error):
    if req is None:
        return {"error_code": error.code}
    return {"error_code": error.code, "responses": [_topic_error(t, error) for t in req.topics]}
