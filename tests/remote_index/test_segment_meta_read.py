"""Where a remote segment's meta lives: the trailer of its data object, which the
manifest locates and checks, or (segments uploaded before trailers) an object of
its own, which must stay readable."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from remote_index.keys import PartitionKeys
from remote_index.manifest import PartitionManifest, RemoteSegment, read_segment_meta
from remote_index.segment_format import (
    CorruptSegmentMetaError,
    SegmentEncoder,
    SegmentMeta,
    decode_sealed_json,
    encode_sealed_json,
)
from remote_index.segment_state import RemoteSegmentState
from remote_index.store import LocalDirectoryStore, ObjectNotFound
from tests.helpers.record_batches import build_batch

KEYS = PartitionKeys("orders", "00000000-0000-4000-8000-000000000002", 0)


def encode(tmp_path) -> tuple[RemoteSegment, bytes, SegmentMeta, bytes]:
    """(COPY_STARTED entry, stored chunks, meta, meta bytes) of a small segment."""
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(b"".join(build_batch([(b"k", b"v%d" % i * 50, (), 1000 + i)], base_offset=i)
                              for i in range(40)))
    with SegmentEncoder(path, path.stat().st_size, chunk_bytes=1024) as encoder:
        chunks = b"".join(bytes(stored) for stored, _ in encoder)
        meta = encoder.meta(b"offset-index", b"time-index")
    entry = RemoteSegment.start_copy(KEYS, base_offset=0, last_offset=39, size_bytes=meta.size_bytes, now_ms=1)
    return entry, chunks, meta, meta.to_bytes()


def test_the_meta_is_read_from_the_trailer_the_manifest_locates(tmp_path):
    store = LocalDirectoryStore(tmp_path / "bucket")
    entry, chunks, meta, meta_bytes = encode(tmp_path)
    finished = entry.finished(meta, meta_bytes, 2)
    assert (finished.object_bytes, finished.meta_bytes) == (len(chunks), len(meta_bytes))
    assert finished.object_keys == (finished.data_key,)
    asyncio.run(store.put(finished.data_key, chunks + meta_bytes))
    assert asyncio.run(read_segment_meta(store, finished)) == meta


def test_a_damaged_trailer_is_reported_not_parsed(tmp_path):
    store = LocalDirectoryStore(tmp_path / "bucket")
    entry, chunks, meta, meta_bytes = encode(tmp_path)
    finished = entry.finished(meta, meta_bytes, 2)
    damaged = bytearray(meta_bytes)
    damaged[len(damaged) // 2] ^= 0x01
    asyncio.run(store.put(finished.data_key, chunks + bytes(damaged)))
    with pytest.raises(CorruptSegmentMetaError, match="differs from the manifest"):
        asyncio.run(read_segment_meta(store, finished))
    # A data object cut short before its trailer is caught the same way.
    asyncio.run(store.put(finished.data_key, chunks + meta_bytes[:-10]))
    with pytest.raises(CorruptSegmentMetaError):
        asyncio.run(read_segment_meta(store, finished))


def test_a_segment_with_a_separate_meta_object_stays_readable(tmp_path):
    """A manifest entry written before trailers: `meta_key` names the meta object and
    there is no `meta_bytes`; it parses, reads, and both objects are its keys."""
    store = LocalDirectoryStore(tmp_path / "bucket")
    entry, chunks, meta, meta_bytes = encode(tmp_path)
    meta_key = KEYS.segment_meta_key(0, entry.segment_id)
    manifest = PartitionManifest.empty(KEYS).with_segment(entry).with_segment(entry.finished(meta, meta_bytes, 2))
    doc = decode_sealed_json(manifest.to_bytes())
    (legacy,) = doc["segments"]
    legacy["meta_key"] = meta_key
    del legacy["meta_bytes"]
    manifest = PartitionManifest.from_bytes(encode_sealed_json(doc))
    (segment,) = manifest.segments
    assert segment.state is RemoteSegmentState.COPY_FINISHED and segment.meta_bytes is None
    assert segment.invariant_violation() is None
    assert segment.object_keys == (segment.data_key, meta_key)
    asyncio.run(store.put(segment.data_key, chunks))
    with pytest.raises(ObjectNotFound):
        asyncio.run(read_segment_meta(store, segment))
    asyncio.run(store.put(meta_key, meta_bytes))
    assert asyncio.run(read_segment_meta(store, segment)) == meta


def test_a_finished_segment_without_its_trailer_size_is_invalid(tmp_path):
    entry, _, meta, meta_bytes = encode(tmp_path)
    finished = entry.finished(meta, meta_bytes, 2)
    assert "meta trailer" in replace(finished, meta_bytes=None).invariant_violation()
