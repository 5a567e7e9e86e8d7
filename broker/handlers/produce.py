"""Produce (key 0): validate each partition's record batches, append, acknowledge.

Per partition: the topic and partition must exist; the record set must be within
`max.message.bytes` (per batch, as Kafka checks it) and consist of whole magic-v2
batches with correct CRC-32C. Only then is anything appended, so a rejected
partition leaves its log untouched. acks=0 answers nothing; acks=1 answers after
the write to the page cache; acks=-1 answers after the data is fsync'd (the log
groups fsyncs across concurrent producers).
"""

from __future__ import annotations

import asyncio
import time

from ..protocol import errors
from ..protocol.records import CorruptRecordError, InvalidRecordError, validate_batches

VALID_ACKS = (-1, 0, 1)


async def handle(ctx, req):
    node = ctx.node
    if req.acks not in VALID_ACKS:
        return error_response(req, ctx.version, errors.InvalidRequiredAcks(
            f"acks must be -1, 0 or 1, not {req.acks}"))
    now_ms = int(time.time() * 1000)
    responses = []
    to_flush = []
    for topic_data in req.topic_data:
        partitions = []
        for pd in topic_data.partition_data:
            result = {"index": pd.index}
            try:
                append = _append(node, topic_data.name, pd, now_ms)
            except errors.KafkaError as exc:
                node.metrics.produce_errors.labels(exc.name).inc()
                result.update(error_code=exc.code, error_message=exc.message, base_offset=-1)
            else:
                result.update(base_offset=append.base_offset,
                              log_append_time_ms=append.log_append_time_ms,
                              log_start_offset=append.log_start_offset)
                if req.acks == -1:
                    to_flush.append((node.topics.partition(topic_data.name, pd.index), append.last_offset, result))
            partitions.append(result)
        responses.append({"name": topic_data.name, "partition_responses": partitions})
    if to_flush:
        outcomes = await asyncio.gather(*(p.flush(last) for p, last, _ in to_flush), return_exceptions=True)
        for (partition, _, result), outcome in zip(to_flush, outcomes):
            if isinstance(outcome, BaseException):
                # The append happened but durability is unknown: the client must retry.
                result.update(error_code=errors.KafkaStorageError.code,
                              error_message=f"fsync of {partition.name} failed: {outcome}")
    if req.acks == 0:
        return None
    return {"responses": responses}


def _append(node, topic_name: str, pd, now_ms: int):
    partition = node.topics.partition(topic_name, pd.index)
    records = pd.records
    if records is None or len(records) == 0:
        raise errors.InvalidRecord(f"produce to {partition.name} carries no records")
    max_message = partition.topic.config.get("max.message.bytes")
    try:
        headers = validate_batches(records)
    except CorruptRecordError as exc:
        raise errors.CorruptMessage(f"{partition.name}: {exc}") from None
    except InvalidRecordError as exc:
        raise errors.UnsupportedForMessageFormat(f"{partition.name}: {exc}") from None
    for header in headers:
        if header.size > max_message:
            raise errors.MessageTooLarge(
                f"{partition.name}: a batch of {header.size} bytes exceeds max.message.bytes={max_message}")
    node.metrics.bytes_in.labels(topic_name).inc(len(records))
    # The connection hands us a writable view into the request frame: offsets are
    # assigned in place and the bytes go to the log without another copy.
    writable = records if not records.readonly else bytearray(records)
    return partition.append(writable, headers, now_ms)


def error_response(req, version, error):
    return {"responses": [
        {"name": t.name, "partition_responses": [
            {"index": p.index, "error_code": error.code, "error_message": error.message, "base_offset": -1}
            for p in t.partition_data]}
        for t in req.topic_data]}
