"""Partition manifests against the local-directory store: commit, load, conflicts,
lost pointers, old-version cleanup, corrupt versions, and the manifest helpers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace

import pytest
from crc32c import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_index.keys import PartitionKeys
from remote_index.manifest import (
    CorruptManifestError,
    InvalidManifestChange,
    ManifestConflict,
    ManifestStore,
    PartitionManifest,
    RemoteSegment,
    TopicDescription,
    UnknownRemoteSegment,
    get_topic_description,
    list_topics,
    put_topic_description,
)
from remote_index.segment_format import SegmentMeta
from remote_index.segment_state import IllegalStateTransition, RemoteSegmentState
from remote_index.store import LocalDirectoryStore, TransientStoreError

S = RemoteSegmentState
TOPIC_ID = uuid.UUID("0f5e9a52-3c1b-4a8e-9f7d-2b6c1d0e4a11")
KEYS = PartitionKeys("orders", TOPIC_ID, 0)
NOW = 1_700_000_000_000
TRAILER = b"sealed meta document" * 20  # stands in for a meta trailer's bytes


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def store(tmp_path):
    return LocalDirectoryStore(tmp_path / "bucket")


@pytest.fixture
def plain_store(tmp_path):
    """A store without create-only puts: the manifest writes a pointer after each version."""
    store = LocalDirectoryStore(tmp_path / "bucket")
    store.supports_conditional_put = False
    return store


def fake_meta(base: int, last: int, size: int = 1000) -> SegmentMeta:
    return SegmentMeta(compression="zstd", chunk_bytes=4096, base_offset=base, last_offset=last, size_bytes=size,
                       object_bytes=size // 2, data_crc32c=123, first_timestamp=NOW, max_timestamp=NOW + last,
                       chunks=())


def started(base: int, last: int, size: int = 1000, segment_id: str | None = None) -> RemoteSegment:
    return RemoteSegment.start_copy(KEYS, base_offset=base, last_offset=last, size_bytes=size, now_ms=NOW,
                                    compression="zstd", segment_id=segment_id)


def add(segment: RemoteSegment):
    return lambda m: m.with_segment(segment)


def finish(segment: RemoteSegment):
    return lambda m: m.with_segment(m.segment(segment.segment_id).finished(
        fake_meta(segment.base_offset, segment.last_offset, segment.size_bytes), TRAILER, NOW + 1))


def stored_versions(store) -> list[int]:
    async def go():
        return [info.key.rsplit("/", 1)[1] for info in await store.list(KEYS.manifest_prefix)]
    return run(go())


def test_missing_manifest_loads_empty_and_writes_nothing(store):
    manifests = ManifestStore(store, KEYS)
    assert manifests.cached is None
    manifest = run(manifests.load())
    assert manifest == PartitionManifest.empty(KEYS) and manifest.version == 0
    assert manifests.cached is manifest
    assert manifest.copied_end_offset is None and manifest.remote_log_start_offset is None
    assert stored_versions(store) == []


def test_commit_and_reload(store):
    seg = started(0, 99)

    async def go():
        manifests = ManifestStore(store, KEYS)
        first = await manifests.commit(add(seg))  # loads on first use
        second = await manifests.commit(finish(seg))
        assert (first.version, second.version) == (1, 2)
        assert manifests.cached is second
        reloaded = await ManifestStore(store, KEYS).load()
        assert reloaded == second
        return reloaded

    manifest = run(go())
    (segment,) = manifest.segments
    assert segment.state is S.COPY_FINISHED and segment.state_changed_ms == NOW + 1
    assert (segment.object_bytes, segment.data_crc32c, segment.chunk_count) == (500, 123, 0)
    assert (segment.meta_bytes, segment.meta_crc32c) == (len(TRAILER), crc32c(TRAILER))
    assert segment.data_key == KEYS.segment_data_key(0, seg.segment_id)
    assert segment.meta_key is None and segment.object_keys == (segment.data_key,)


def test_a_change_that_changes_nothing_writes_nothing(store):
    seg = started(0, 9)

    async def go():
        manifests = ManifestStore(store, KEYS)
        await manifests.commit(add(seg))
        again = await manifests.commit(add(seg))  # idempotent: same segment, same state
        assert again.version == 1
        assert (await manifests.commit(lambda m: None)).version == 1
        assert (await manifests.commit(lambda m: m.with_state(seg.segment_id, S.COPY_STARTED, NOW))).version == 1

    run(go())
    assert stored_versions(store) == ["00000000000000000001.json"]  # one PUT per commit, no pointer


def test_without_conditional_put_a_pointer_follows_each_version(plain_store):
    async def go():
        manifests = ManifestStore(plain_store, KEYS)
        await manifests.commit(add(started(0, 9)))
        await manifests.commit(add(started(10, 19)))
        assert await plain_store.get(KEYS.latest_key) == b"2"
        assert (await ManifestStore(plain_store, KEYS).load()).version == 2

    run(go())


def test_lifecycle_through_the_manifest(store):
    a, b, c = started(0, 99, 1000), started(100, 199, 2000), started(200, 299, 4000)

    async def go():
        manifests = ManifestStore(store, KEYS)
        for seg in (a, b, c):
            await manifests.commit(add(seg))
        m = manifests.cached
        assert m.finished_segments == () and m.copied_end_offset is None
        await manifests.commit(finish(a))
        await manifests.commit(finish(b))
        m = manifests.cached
        assert [s.segment_id for s in m.finished_segments] == [a.segment_id, b.segment_id]
        assert m.copied_end_offset == 200 and m.remote_log_start_offset == 0
        assert m.remote_size_bytes == 3000 and m.stored_bytes == 1500 + 2 * len(TRAILER)
        assert m.segment_for_offset(150).segment_id == b.segment_id
        assert m.segment_for_offset(250) is None  # c is not readable yet
        # Retention: delete a.
        await manifests.commit(lambda m: m.with_state(a.segment_id, S.DELETE_STARTED, NOW + 5)
                               .with_log_start_offset(100))
        m = manifests.cached
        assert m.remote_log_start_offset == 100 and m.segment_for_offset(50) is None
        await manifests.commit(lambda m: m.with_state(a.segment_id, S.DELETE_FINISHED, NOW + 6))
        assert manifests.cached.segment(a.segment_id) is None  # a finished delete leaves the manifest
        # Repeating the delete is a no-op, not an error.
        assert (await manifests.commit(lambda m: m.with_state(a.segment_id, S.DELETE_FINISHED, NOW + 7))).version \
            == manifests.cached.version
        # The abandoned attempt c goes straight to DELETE_STARTED.
        await manifests.commit(lambda m: m.with_state(c.segment_id, S.DELETE_STARTED, NOW + 8))
        with pytest.raises(IllegalStateTransition):
            await manifests.commit(lambda m: m.with_state(c.segment_id, S.COPY_FINISHED, NOW + 9))
        with pytest.raises(UnknownRemoteSegment):
            await manifests.commit(lambda m: m.with_state("nope", S.DELETE_STARTED, NOW))
        return await ManifestStore(store, KEYS).load()

    m = run(go())
    assert [(s.segment_id, s.state) for s in m.segments] == [(b.segment_id, S.COPY_FINISHED),
                                                             (c.segment_id, S.DELETE_STARTED)]
    assert m.log_start_offset == 100 and m.copied_end_offset == 200


def test_log_start_inside_a_segment_and_past_all_segments():
    m = PartitionManifest.empty(KEYS)
    seg = started(0, 99)
    m = m.with_segment(seg).with_state(seg.segment_id, S.COPY_FINISHED, NOW, object_bytes=1, data_crc32c=1,
                                       meta_crc32c=1, chunk_count=1, meta_bytes=1)
    assert m.with_log_start_offset(40).remote_log_start_offset == 40
    assert m.with_log_start_offset(40).with_log_start_offset(10).log_start_offset == 40  # never moves down
    assert m.with_log_start_offset(40).segment_for_offset(39) is None
    assert m.with_log_start_offset(40).segment_for_offset(41).segment_id == seg.segment_id
    assert m.with_log_start_offset(100).remote_log_start_offset is None


def test_invalid_changes_write_nothing(store):
    a = started(0, 99)

    async def go():
        manifests = ManifestStore(store, KEYS)
        await manifests.commit(add(a))
        await manifests.commit(finish(a))
        overlapping = started(50, 150)
        await manifests.commit(add(overlapping))  # COPY_STARTED may overlap (a retry, a re-upload)
        with pytest.raises(InvalidManifestChange, match="overlap"):
            await manifests.commit(finish(overlapping))
        with pytest.raises(InvalidManifestChange, match="COPY_STARTED"):
            await manifests.commit(lambda m: m.with_segment(started(300, 399).with_state(S.DELETE_STARTED, NOW)))
        with pytest.raises(InvalidManifestChange, match="without its object"):
            await manifests.commit(lambda m: m.with_state(overlapping.segment_id, S.COPY_FINISHED, NOW))
        with pytest.raises(InvalidManifestChange, match="another partition"):
            await manifests.commit(lambda m: PartitionManifest.empty(PartitionKeys("orders", TOPIC_ID, 1)))
        return manifests.cached.version

    assert run(go()) == 3
    assert run(ManifestStore(store, KEYS).load()).version == 3


def test_conflicting_writers(store):
    a, b = started(0, 99), started(100, 199)

    async def go():
        first, second = ManifestStore(store, KEYS), ManifestStore(store, KEYS)
        await first.load()
        await second.load()
        await first.commit(add(a))
        with pytest.raises(ManifestConflict) as info:
            await second.commit(add(b))
        assert info.value.version == 1 and info.value.key == KEYS.manifest_key(1)
        assert second.cached == first.cached  # reloaded: the winner's version
        # Re-applying the change on the fresh cache works.
        await first.commit(add(started(500, 599)))
        merged = await second.commit(add(b), conflict_retries=1)
        assert merged.version == 3 and len(merged.segments) == 3
        assert (await ManifestStore(store, KEYS).load()) == merged

    run(go())


def test_concurrent_commits_in_one_process_are_serialized(store):
    segments = [started(i * 100, i * 100 + 99) for i in range(10)]

    async def go():
        manifests = ManifestStore(store, KEYS, keep_versions=20)
        await asyncio.gather(*(manifests.commit(add(s)) for s in segments))
        return await ManifestStore(store, KEYS).load()

    m = run(go())
    assert m.version == 10 and len(m.segments) == 10


def test_lost_pointer_update_is_found_by_listing(plain_store):
    store = plain_store

    async def go():
        manifests = ManifestStore(store, KEYS)
        await manifests.commit(add(started(0, 9)))
        await manifests.commit(add(started(10, 19)))
        await store.put(KEYS.latest_key, b"1")  # the pointer update for version 2 was lost
        assert (await ManifestStore(store, KEYS).load()).version == 2
        await store.delete(KEYS.latest_key)  # no pointer at all
        assert (await ManifestStore(store, KEYS).load()).version == 2
        await store.put(KEYS.latest_key, b"garbage")
        assert (await ManifestStore(store, KEYS).load()).version == 2

    run(go())


class PointerFailingStore(LocalDirectoryStore):
    """Fails every put of a manifest pointer (what the faults knobs cannot target by key)."""

    async def put(self, key, data, *, if_none_match=False):
        if key.endswith("/manifest/latest"):
            raise TransientStoreError("injected pointer failure", key)
        return await super().put(key, data, if_none_match=if_none_match)


def test_commit_survives_a_failed_pointer_update(tmp_path):
    store = PointerFailingStore(tmp_path / "bucket")
    store.supports_conditional_put = False

    async def go():
        manifests = ManifestStore(store, KEYS)
        assert (await manifests.commit(add(started(0, 9)))).version == 1
        assert (await manifests.commit(add(started(10, 19)))).version == 2
        return await ManifestStore(store, KEYS).load()

    assert run(go()).version == 2


def test_failed_version_put_leaves_the_cache_alone(store):
    seg = started(0, 9)

    async def go():
        manifests = ManifestStore(store, KEYS)
        await manifests.load()
        store.faults.fail_next("put")
        with pytest.raises(TransientStoreError):
            await manifests.commit(add(seg))
        assert manifests.cached.version == 0
        assert (await manifests.commit(add(seg))).version == 1

    run(go())


def test_lost_response_then_retry_finds_its_own_write(store):
    """The version put succeeded but its answer was lost; the retry conflicts with itself,
    reloads, and the idempotent change then has nothing left to do."""
    seg = started(0, 9)

    async def go():
        manifests = ManifestStore(store, KEYS)
        await manifests.load()
        store.faults.fail_next("put", after=True)
        with pytest.raises(TransientStoreError):
            await manifests.commit(add(seg))
        result = await manifests.commit(add(seg), conflict_retries=1)
        assert result.version == 1 and result.segment(seg.segment_id) == seg

    run(go())


def test_old_versions_are_deleted(store):
    async def go():
        manifests = ManifestStore(store, KEYS, keep_versions=3, cleanup_batch=1)
        for i in range(6):
            await manifests.commit(add(started(i * 10, i * 10 + 9)))

    run(go())
    assert stored_versions(store) == [f"{v:020d}.json" for v in (4, 5, 6)]


def test_old_versions_are_deleted_in_batches(store):
    """Cleanup waits until `cleanup_batch` versions are stale, then deletes them in one request."""
    deletes = []
    real_delete_many = store.delete_many

    async def counting_delete_many(keys):
        deletes.append(sorted(k.rsplit("/", 1)[1] for k in keys))
        return await real_delete_many(keys)

    store.delete_many = counting_delete_many

    async def go():
        manifests = ManifestStore(store, KEYS, keep_versions=2, cleanup_batch=3)
        for i in range(9):
            await manifests.commit(add(started(i * 10, i * 10 + 9)))

    run(go())
    assert deletes == [[f"{v:020d}.json" for v in (1, 2, 3)], [f"{v:020d}.json" for v in (4, 5, 6)]]
    assert stored_versions(store) == [f"{v:020d}.json" for v in (7, 8, 9)]


def test_stragglers_from_failed_deletes_are_deleted_by_a_later_writer(store):
    async def go():
        manifests = ManifestStore(store, KEYS, keep_versions=2, cleanup_batch=1)
        store.faults.lose_next_delete(3)
        for i in range(5):
            await manifests.commit(add(started(i * 10, i * 10 + 9)))
        assert len(await store.list(KEYS.manifest_prefix)) == 5
        restarted = ManifestStore(store, KEYS, keep_versions=2, cleanup_batch=1)
        await restarted.load()
        await restarted.commit(add(started(100, 109)))

    run(go())
    assert stored_versions(store) == [f"{v:020d}.json" for v in (5, 6)]


def flip_byte(store, key: str, at: int = 40) -> None:
    path = store.root / key
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_corrupt_version_falls_back_to_the_previous_one(store, caplog):
    async def go():
        manifests = ManifestStore(store, KEYS)
        await manifests.commit(add(started(0, 9)))
        await manifests.commit(add(started(10, 19)))
        flip_byte(store, KEYS.manifest_key(2))
        restarted = ManifestStore(store, KEYS)
        with caplog.at_level(logging.ERROR, logger="remote_index.manifest"):
            loaded = await restarted.load()
        assert loaded.version == 1 and len(loaded.segments) == 1
        assert KEYS.manifest_key(2) in caplog.text
        # The corrupt version's number is not reused.
        assert (await restarted.commit(add(started(20, 29)))).version == 3
        return await ManifestStore(store, KEYS).load()

    assert run(go()).version == 3


def test_every_version_corrupt_is_an_error_naming_the_key(store):
    async def go():
        manifests = ManifestStore(store, KEYS)
        await manifests.commit(add(started(0, 9)))
        flip_byte(store, KEYS.manifest_key(1))
        with pytest.raises(CorruptManifestError) as info:
            await ManifestStore(store, KEYS).load()
        assert info.value.key == KEYS.manifest_key(1)

    run(go())


def test_a_manifest_of_another_partition_is_rejected(store):
    other = PartitionKeys("orders", TOPIC_ID, 1)

    async def go():
        await ManifestStore(store, other).commit(add(started(0, 9)))
        await store.put(KEYS.manifest_key(1), await store.get(other.manifest_key(1)))
        with pytest.raises(CorruptManifestError, match="not this partition"):
            await ManifestStore(store, KEYS).load()

    run(go())


def test_without_conditional_put(store):
    store.supports_conditional_put = False

    async def go():
        first, second = ManifestStore(store, KEYS), ManifestStore(store, KEYS)
        await first.load()
        await second.load()
        await first.commit(add(started(0, 9)))
        with pytest.raises(ManifestConflict):  # the HEAD check still catches a slow writer
            await second.commit(add(started(10, 19)))
        assert (await second.commit(add(started(10, 19)))).version == 2

    run(go())


def test_manifest_bytes_reject_damage_anywhere():
    m = PartitionManifest.empty(KEYS).with_segment(started(0, 99))
    data = m.to_bytes()
    assert PartitionManifest.from_bytes(data) == m
    for at in range(len(data)):
        damaged = bytearray(data)
        damaged[at] ^= 0x04
        try:
            parsed = PartitionManifest.from_bytes(bytes(damaged))
        except CorruptManifestError:
            continue
        assert parsed == m  # only a change JSON ignores (whitespace) may pass


segment_shapes = st.lists(st.tuples(st.integers(1, 1000), st.sampled_from(list(S)[:3])), max_size=20)


@settings(max_examples=50, deadline=None)
@given(shapes=segment_shapes, log_start=st.integers(0, 5000), version=st.integers(0, 10**9))
def test_manifest_round_trip(shapes, log_start, version):
    m = PartitionManifest.empty(KEYS)
    base = 0
    for length, state in shapes:
        seg = started(base, base + length - 1)
        m = m.with_segment(seg)
        if state is not S.COPY_STARTED:
            m = m.with_state(seg.segment_id, S.COPY_FINISHED, NOW, object_bytes=length, data_crc32c=1,
                             meta_crc32c=2, chunk_count=3, meta_bytes=4)
        if state is S.DELETE_STARTED:
            m = m.with_state(seg.segment_id, S.DELETE_STARTED, NOW)
        base += length
    m = m.with_log_start_offset(log_start)
    m = replace(m, version=version)
    assert PartitionManifest.from_bytes(m.to_bytes()) == m
    finished = [s for s in m.segments if s.state is S.COPY_FINISHED]
    assert m.copied_end_offset == (max(s.last_offset for s in finished) + 1 if finished else None)


def test_topic_descriptions(store):
    description = TopicDescription("orders-eu", TOPIC_ID, 6, {"retention.ms": "-1",
                                                              "remote.storage.enable": "true"}, hashed_keys=True)

    async def go():
        await put_topic_description(store, description)
        await put_topic_description(store, TopicDescription("b", uuid.uuid4(), 1))
        assert await get_topic_description(store, "orders-eu", str(TOPIC_ID)) == description
        assert await get_topic_description(store, "missing", uuid.uuid4()) is None
        return await list_topics(store)

    topics = run(go())
    assert ("orders-eu", str(TOPIC_ID)) in topics and len(topics) == 2
    assert description.key == f"topics/orders-eu-{TOPIC_ID}.json"
    assert description.partition_keys(5) == PartitionKeys("orders-eu", TOPIC_ID, 5, hashed=True)
    with pytest.raises(ValueError):
        description.partition_keys(6)
    data = bytearray(description.to_bytes())
    data[20] ^= 1
    with pytest.raises(CorruptManifestError):
        TopicDescription.from_bytes(bytes(data), key="topics/x.json")


class RacingStore(LocalDirectoryStore):
    """Lets a writer commit (and delete the listed versions) between a reader's LIST and GETs."""

    race = None

    async def list(self, prefix):
        listing = await super().list(prefix)
        if self.race is not None:
            race, self.race = self.race, None
            await race()
        return listing


def test_a_reader_racing_version_cleanup_lists_again(tmp_path):
    store = RacingStore(tmp_path / "bucket")

    async def go():
        writer = ManifestStore(store, KEYS, keep_versions=1, cleanup_batch=1)
        await writer.commit(add(started(0, 9)))

        async def commit_twice():
            await writer.commit(add(started(10, 19)))
            await writer.commit(add(started(20, 29)))

        store.race = commit_twice
        loaded = await ManifestStore(store, KEYS).load()
        assert loaded.version == 3 and len(loaded.segments) == 3

    run(go())
