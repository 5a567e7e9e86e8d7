"""The fault-injecting proxy in front of moto, and S3Store's view of the faults:
every injected 500, 503, reset or stall reaches the caller as TransientStoreError
carrying the key, and the store works normally when the plan is empty."""

from __future__ import annotations

import asyncio
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from remote_index.store import ObjectNotFound, PreconditionFailed, TransientStoreError
from tests.remote_index.test_store_contract import run
from tests.support.fault_proxy import FaultProxy

MiB = 1024 * 1024


@pytest.fixture
def proxy(moto_server):
    proxy = FaultProxy(moto_server.host, moto_server.port, seed=42).start()
    yield proxy
    proxy.stop()


def through(proxy, s3_bucket, **kwargs):
    """An S3Store reaching the bucket through the proxy; no botocore retries,
    so each injected fault surfaces (tests that want a retry say so)."""
    kwargs.setdefault("max_attempts", 1)
    return s3_bucket.store(prefix="p", endpoint_url=proxy.url, **kwargs)


def test_empty_plan_forwards_everything(proxy, s3_bucket):
    async def body(store):
        data = bytes(range(256)) * 4096  # 1 MiB
        await store.put("seg/1", data)
        await store.put("seg/2", b"small", if_none_match=True)
        assert await store.get("seg/1") == data
        assert await store.get("seg/1", 100, 200) == data[100:200]
        assert (await store.head("seg/2")).size == 5
        assert await store.head("nope") is None
        with pytest.raises(ObjectNotFound):
            await store.get("nope")
        assert [o.key for o in await store.list("seg/")] == ["seg/1", "seg/2"]
        upload = await store.create_multipart("seg/3")
        parts = [await store.upload_part(upload, 1, b"a" * store.min_part_size),
                 await store.upload_part(upload, 2, b"b")]
        await store.complete_multipart(upload, parts)
        assert (await store.head("seg/3")).size == store.min_part_size + 1
        await asyncio.gather(*(store.put(f"many/{i}", b"x" * i) for i in range(20)))
        await store.delete_many([o.key for o in await store.list("")])
        assert await store.list("") == []
    run(through(proxy, s3_bucket), body)
    assert proxy.injected == {} and proxy.forwarded == proxy.requests > 30
    assert all(kind is None for _, _, kind in proxy.log)


@pytest.mark.parametrize("kind", ["internal_error", "slow_down"])
def test_error_responses_are_transient_and_the_next_request_succeeds(proxy, s3_bucket, kind):
    async def body(store):
        await store.put("k", b"v")
        for call in [lambda: store.get("k"), lambda: store.put("k", b"w"), lambda: store.head("k"),
                     lambda: store.list(""), lambda: store.delete("k"),
                     lambda: store.delete_many(["k"]), lambda: store.create_multipart("k")]:
            proxy.inject(kind, next=1)
            with pytest.raises(TransientStoreError) as raised:
                await call()
            assert raised.value.key in ("k", "")
            assert await store.get("k") == b"v"
    run(through(proxy, s3_bucket), body)
    assert proxy.injected == {kind: 7}


def test_resets_are_transient(proxy, s3_bucket):
    # aiohttp resends an idempotent request (GET, HEAD, PUT, DELETE) once when
    # the connection drops, whatever botocore's retry settings: one reset of
    # those is absorbed, two in a row are not. POST (create and complete
    # multipart) is never resent.
    async def body(store):
        await store.put("k", b"v")
        proxy.inject("reset", next=1)
        assert await store.get("k") == b"v"
        for call in [lambda: store.get("k"), lambda: store.put("k", b"w"), lambda: store.head("k"),
                     lambda: store.list(""), lambda: store.delete("k")]:
            proxy.inject("reset", next=2)
            with pytest.raises(TransientStoreError) as raised:
                await call()
            assert raised.value.key in ("k", "")
            assert await store.get("k") == b"v"  # the connection pool recovers
        proxy.inject("reset", next=1)
        with pytest.raises(TransientStoreError):
            await store.create_multipart("k")
    run(through(proxy, s3_bucket), body)
    assert proxy.injected == {"reset": 1 + 5 * 2 + 1}


def test_slow_down_names_the_s3_error_code(proxy, s3_bucket):
    async def body(store):
        proxy.inject("slow_down", next=1)
        with pytest.raises(TransientStoreError, match="SlowDown"):
            await store.put("seg", b"x")
        proxy.inject("internal_error", next=1)
        with pytest.raises(TransientStoreError, match="InternalError"):
            await store.get("seg")
    run(through(proxy, s3_bucket), body)


def test_stall_hits_the_read_timeout(proxy, s3_bucket):
    async def body(store):
        await store.put("k", b"v")
        proxy.inject("stall", next=1, seconds=5)
        with pytest.raises(TransientStoreError) as raised:
            await store.get("k")
        assert raised.value.key == "k"
        assert await store.get("k") == b"v"
    run(through(proxy, s3_bucket, read_timeout=0.3), body)
    assert proxy.injected == {"stall": 1}


def test_reset_after_forwarding_loses_only_the_response(proxy, s3_bucket):
    async def body(store):
        proxy.inject("reset", next=2, method="PUT", forward=True)
        with pytest.raises(TransientStoreError):
            await store.put("manifest/1", b"v1", if_none_match=True)
        assert await store.get("manifest/1") == b"v1"  # it landed all the same

        # One lost response: aiohttp resends the PUT, which meets its own first
        # attempt. A create-only put's PreconditionFailed can mean "you won".
        proxy.inject("reset", next=1, method="PUT", forward=True)
        with pytest.raises(PreconditionFailed):
            await store.put("manifest/2", b"v2", if_none_match=True)
        assert await store.get("manifest/2") == b"v2"
    run(through(proxy, s3_bucket), body)


def test_predicates_pick_the_requests(proxy, s3_bucket):
    async def body(store):
        proxy.inject("internal_error", method="PUT", path="/p/segments/")
        await store.put("manifests/1", b"m")  # other path: forwarded
        with pytest.raises(TransientStoreError):
            await store.put("segments/1", b"s")
        assert await store.get("manifests/1") == b"m"  # other method: forwarded
        proxy.clear()
        await store.put("segments/1", b"s")

        proxy.inject("slow_down", match=lambda method, target: method == "GET" and target.endswith("/segments/1"))
        assert await store.head("segments/1") is not None
        with pytest.raises(TransientStoreError):
            await store.get("segments/1")
    run(through(proxy, s3_bucket), body)
    assert proxy.injected == {"internal_error": 1, "slow_down": 1}


def test_fraction_is_seeded(proxy, s3_bucket):
    async def body(store, proxy):
        await store.put("k", b"v")
        proxy.inject("internal_error", fraction=0.5)
        outcomes = []
        for _ in range(40):
            try:
                await store.get("k")
                outcomes.append(True)
            except TransientStoreError:
                outcomes.append(False)
        return outcomes
    first = run(through(proxy, s3_bucket), lambda store: body(store, proxy))
    assert 5 < first.count(False) < 35
    assert proxy.injected["internal_error"] == first.count(False)

    with FaultProxy(proxy.upstream[0], proxy.upstream[1], seed=42) as again:
        assert run(through(again, s3_bucket), lambda store: body(store, again)) == first


def test_botocore_retry_absorbs_one_fault_with_default_attempts(proxy, s3_bucket):
    async def body(store):
        await store.put("k", b"v")
        proxy.inject("slow_down", next=1)
        assert await store.get("k") == b"v"
    run(through(proxy, s3_bucket, max_attempts=2), body)
    assert proxy.injected == {"slow_down": 1}


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with its body, chunked (moto ignores chunked bodies)."""

    protocol_version = "HTTP/1.1"

    def do_PUT(self):
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() != b"\r\n":
                pass
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in (body[:2], body[2:]):
            if piece:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


def test_chunked_and_expect_continue_bodies_are_forwarded():
    # botocore over http sends Content-Length bodies; other clients may not.
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        with FaultProxy("127.0.0.1", upstream.server_address[1]) as proxy:
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("PUT", "/chunked", body=iter([b"abc", b"defg"]), encode_chunked=True)
            assert conn.getresponse().read() == b"abcdefg"
            conn.request("PUT", "/continued", body=b"hello", headers={"Expect": "100-continue"})
            assert conn.getresponse().read() == b"hello"  # same keep-alive connection
            conn.close()
            assert proxy.forwarded == 2 and proxy.requests == 2
    finally:
        upstream.shutdown()
        upstream.server_close()
