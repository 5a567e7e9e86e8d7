"""LocalDirectoryStore beyond the shared contract: its failure-injection knobs
and what it leaves on disk."""

from __future__ import annotations

import asyncio

import pytest

from remote_index.store import (
    LocalDirectoryStore,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
)


@pytest.fixture
def store(tmp_path):
    return LocalDirectoryStore(tmp_path / "store", min_part_size=4)


def run(coro):
    return asyncio.run(coro)


# -- failure injection -----------------------------------------------------------


def test_fail_next_fails_before_the_operation(store):
    async def body():
        store.faults.fail_next("put")
        with pytest.raises(TransientStoreError) as raised:
            await store.put("k", b"v")
        assert raised.value.key == "k"
        assert await store.head("k") is None  # nothing was written
        await store.put("k", b"v")  # only the next one failed
        store.faults.fail_next("get", 2, error=StoreError)
        for _ in range(2):
            with pytest.raises(StoreError) as raised:
                await store.get("k")
            assert type(raised.value) is StoreError
        assert await store.get("k") == b"v"
    run(body())
    assert store.faults.injected == {"put": 1, "get": 2}
    assert store.faults.calls["get"] == 3 and store.faults.calls["put"] == 2


def test_fail_next_after_the_operation_is_a_lost_response(store):
    async def body():
        store.faults.fail_next("put", after=True)
        with pytest.raises(TransientStoreError):
            await store.put("manifest/1", b"v1", if_none_match=True)
        assert await store.get("manifest/1") == b"v1"  # it landed
        with pytest.raises(PreconditionFailed):  # the caller's retry meets it
            await store.put("manifest/1", b"v1", if_none_match=True)
    run(body())


def test_fail_with_an_error_instance(store):
    async def body():
        store.faults.fail_next("delete", error=ObjectNotFound("custom", "x"))
        with pytest.raises(ObjectNotFound, match="custom"):
            await store.delete("k")
    run(body())


def test_fail_every_kth_call(store):
    async def body():
        await store.put("k", b"v")
        store.faults.fail_every("get", 3)
        outcomes = []
        for _ in range(7):
            try:
                await store.get("k")
                outcomes.append("ok")
            except TransientStoreError:
                outcomes.append("fail")
        return outcomes
    assert run(body()) == ["ok", "ok", "fail", "ok", "ok", "fail", "ok"]


def test_fault_ops_cover_multipart(store):
    async def body():
        store.faults.fail_next("create_multipart")
        with pytest.raises(TransientStoreError):
            await store.create_multipart("mp")
        upload = await store.create_multipart("mp")
        store.faults.fail_every("upload_part", 2)
        p1 = await store.upload_part(upload, 1, b"aaaa")
        with pytest.raises(TransientStoreError):
            await store.upload_part(upload, 2, b"b")
        p2 = await store.upload_part(upload, 2, b"b")
        store.faults.fail_next("complete")
        with pytest.raises(TransientStoreError):
            await store.complete_multipart(upload, [p1, p2])
        store.faults.fail_next("list_multipart")
        with pytest.raises(TransientStoreError):
            await store.list_multipart_uploads("")
        assert await store.list_multipart_uploads("") == [upload]
        await store.complete_multipart(upload, [p1, p2])
        assert await store.get("mp") == b"aaaab"
        store.faults.fail_next("abort")
        with pytest.raises(TransientStoreError):
            await store.abort_multipart(upload)
    run(body())


def test_delay_slows_an_operation(store):
    async def body():
        await store.put("k", b"v")
        store.faults.delay("get", 30)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.get("k"), 0.05)
        store.faults.delay("get", 0)
        assert await store.get("k") == b"v"
    run(body())


def test_lose_next_delete(store):
    async def body():
        await store.put("k", b"v")
        store.faults.lose_next_delete()
        await store.delete("k")  # reports success
        assert await store.get("k") == b"v"  # but the object stays
        await store.delete("k")
        assert await store.head("k") is None
        await store.put("a", b"1")
        await store.put("b", b"2")
        store.faults.lose_next_delete()
        await store.delete_many(["a", "b"])
        assert [o.key for o in await store.list("")] == ["a"]  # the first delete was lost
    run(body())
    assert store.faults.injected["delete"] == 2


def test_corrupt_next_get(store):
    async def body():
        await store.put("k", b"\x00abc")
        store.faults.corrupt_next_get()
        assert await store.get("k") == b"\xffabc"
        assert await store.get("k") == b"\x00abc"
        buffer = bytearray(4)
        store.faults.corrupt_next_get()
        assert await store.get_into("k", 0, 4, memoryview(buffer)) == 4 and buffer == b"\xffabc"
    run(body())


def test_clear_and_unknown_ops(store):
    with pytest.raises(ValueError):
        store.faults.fail_next("frobnicate")
    with pytest.raises(ValueError):
        store.faults.fail_every("get", 0)

    async def body():
        store.faults.fail_next("put", 5)
        store.faults.fail_every("get", 1)
        store.faults.delay("list", 30)
        store.faults.lose_next_delete()
        store.faults.clear()
        await store.put("k", b"v")
        assert await store.get("k") == b"v"
        assert [o.key for o in await store.list("")] == ["k"]
        await store.delete("k")
        assert await store.head("k") is None
    run(body())


# -- on disk -----------------------------------------------------------------------


def test_objects_are_plain_files_and_hidden_areas_are_not_listed(tmp_path):
    root = tmp_path / "store"
    store = LocalDirectoryStore(root, min_part_size=4)

    async def body():
        await store.put("topic-0/seg.log", b"data")
        await store.create_multipart("topic-0/big.log")
        return await store.list("")
    assert [o.key for o in run(body())] == ["topic-0/seg.log"]
    assert (root / "topic-0" / "seg.log").read_bytes() == b"data"
    assert list((root / ".tmp").iterdir()) == []


def test_stray_temp_files_are_swept_at_open(tmp_path):
    root = tmp_path / "store"
    LocalDirectoryStore(root)
    (root / ".tmp" / "torn-put").write_bytes(b"half")  # a put that crashed
    store = LocalDirectoryStore(root)
    assert list((root / ".tmp").iterdir()) == []
    assert run(store.list("")) == []


def test_delete_prunes_empty_directories(tmp_path):
    root = tmp_path / "store"
    store = LocalDirectoryStore(root)

    async def body():
        await store.put("a/b/c/d", b"1")
        await store.put("a/x", b"2")
        await store.delete("a/b/c/d")
    run(body())
    assert sorted(p.name for p in (root / "a").iterdir()) == ["x"]


def test_object_and_directory_names_cannot_collide(store):
    async def body():
        await store.put("a/b", b"1")
        with pytest.raises(StoreError):
            await store.put("a", b"2")  # "a" is a directory of objects here
        with pytest.raises(StoreError):
            await store.put("a/b/c", b"3")  # "a/b" is an object
        assert await store.head("a") is None
        await store.delete("a")  # not an object: nothing to do
        assert await store.get("a/b") == b"1"
        with pytest.raises(StoreError):
            await store.put(".multipart/x", b"hidden area")
    run(body())


def test_concurrent_puts_and_deletes_in_one_directory(store):
    # Deletes prune empty directories while puts create them: no put may fail.
    async def body():
        for _ in range(50):
            await asyncio.gather(store.put("d/e/1", b"1"), store.delete("d/e/1"),
                                 store.put("d/e/2", b"2"), store.delete("d/e/2"))
        await asyncio.gather(store.put("d/e/1", b"1"), store.put("d/e/2", b"2"))
        assert [o.key for o in await store.list("d/")] == ["d/e/1", "d/e/2"]
    run(body())


def test_closed_store_refuses_calls(store):
    async def body():
        await store.close()
        with pytest.raises(StoreError):
            await store.put("k", b"v")
        with pytest.raises(StoreError):
            await store.list("")
    run(body())
