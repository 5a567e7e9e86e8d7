"""The S3 object store, over aiobotocore, for AWS S3 or any S3-compatible service.

Every key is stored as `prefix + key` (prefix from `s3://bucket/prefix`) and
listed with the prefix stripped, so a store never sees or touches objects
outside its prefix.

Retries: botocore's own retry loop is kept short (`max_attempts`, default 2: one
quick retry, mainly for a pooled keep-alive connection the server closed);
callers own the real retry policy (backoff, jitter, deadlines) and get
`TransientStoreError` for anything worth retrying. Beneath botocore, aiohttp
resends an idempotent-by-method request (GET, HEAD, PUT, DELETE) once when its
connection drops, so one call can reach the server twice: a create-only put
whose first attempt landed but whose response was lost then raises
`PreconditionFailed` for the caller's own write. Callers must treat that case
as "read it back and compare", as they must after retrying a
`TransientStoreError` anyway.

Conditional put is `PutObject` with `If-None-Match: *` (AWS S3 since 2024,
MinIO, moto). For a service that ignores the header, construct the store with
`supports_conditional_put=False`: a create-only put then checks with HEAD first,
which is not atomic, and callers that need atomicity (the manifest writer) fall
back to writing a new version and then a pointer. `probe_conditional_put()`
tells which case a service is.

Concurrency: one aiobotocore client (one aiohttp connection pool of
`max_pool_connections`) per store, created on first use or by `open()`, shared
by all tasks on the event loop that first used it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import io
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from remote_index.store.base import (
    Body,
    CompletedPart,
    MultipartUpload,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    TransientStoreError,
    body_size,
    check_key,
)

DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
# `get_into` reads a body at most this much at a time. aiohttp joins every piece it
# has buffered into one new bytes object for a read, and on uvloop it buffers a
# whole body when the reader is busy elsewhere: reading a 4 MiB chunk in one go
# then held the event loop for 10-15 ms (mostly faulting in the fresh 4 MiB).
BODY_READ_BYTES = 256 << 10

_TRANSIENT_CODES = frozenset({
    "InternalError", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException",
    "RequestTimeout", "RequestTimeoutException", "RequestLimitExceeded", "TooManyRequests",
    "OperationAborted", "ProvisionedThroughputExceededException", "BandwidthLimitExceeded",
    "EC2ThrottledException", "PriorRequestNotComplete",
})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})
_PRECONDITION_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class S3Store(ObjectStore):
    """A bucket, or the part of it under `prefix`. Invariant: every request's key
    starts with the prefix; listed keys are returned without it."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        path_style: bool = False,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        supports_conditional_put: bool = True,
        min_part_size: int = 5 * 1024 * 1024,
        max_pool_connections: int = 50,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 2,
    ):
        if (access_key_id is None) != (secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = prefix + "/" if prefix else ""
        self.supports_conditional_put = supports_conditional_put
        self.min_part_size = min_part_size
        self._endpoint_url = endpoint_url
        self._region = region
        self._credentials = (
            {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
            if access_key_id is not None else {}
        )
        self._config = AioConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            # total_max_attempts counts the first try; botocore's "max_attempts"
            # key would count retries only.
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": "path" if path_style else "auto"},
            # Newer botocore adds CRC checksums to every upload by default
            # (aws-chunked trailers over HTTPS), which several S3-compatible
            # services reject; our chunks carry their own CRC-32C.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: Any = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        where = f" at {self._endpoint_url}" if self._endpoint_url else ""
        return f"S3Store(s3://{self.bucket}/{self.prefix}{where})"

    async def open(self) -> S3Store:
        """Create the client now rather than on the first call (no request is made)."""
        await self._get_client()
        return self

    async def close(self) -> None:
        self._closed = True
        async with self._open_lock:
            if self._exit_stack is not None:
                await self._exit_stack.aclose()
                self._exit_stack = None
                self._client = None

    # -- objects -----------------------------------------------------------------

    async def put(self, key: str, data: Body, *, if_none_match: bool = False) -> ObjectInfo:
        full = self._full(key)
        client = await self._get_client()
        extra = {}
        if if_none_match:
            if self.supports_conditional_put:
                extra["IfNoneMatch"] = "*"
            elif await self.head(key) is not None:  # best effort, not atomic
                raise PreconditionFailed("object exists", key)
        with _errors("put", key):
            resp = await client.put_object(Bucket=self.bucket, Key=full, Body=_rewound(data), **extra)
        return ObjectInfo(key, body_size(data), _etag(resp))

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        full = self._full(key)
        if (start is not None and start < 0) or (end is not None and end < 0):
            raise ValueError(f"byte range must not be negative: [{start}, {end})")
        lo = start or 0
        if end is not None and end <= lo:
            if await self.head(key) is None:  # an empty range still needs the object
                raise ObjectNotFound("no such object", key)
            return b""
        extra = {}
        if lo or end is not None:
            extra["Range"] = f"bytes={lo}-{'' if end is None else end - 1}"
        client = await self._get_client()
        with _errors("get", key):
            try:
                resp = await client.get_object(Bucket=self.bucket, Key=full, **extra)
            except ClientError as e:
                # 416: the range starts at or past the end (or the object is
                # empty); the contract clamps, so that is no bytes.
                if _status(e) == 416 or _code(e) == "InvalidRange":
                    return b""
                raise
            async with resp["Body"] as body:
                return await body.read()

    async def get_into(self, key: str, start: int, end: int, buffer: memoryview) -> int:
        """`get` streamed into `buffer`: the body is read into the buffer in pieces of
        at most BODY_READ_BYTES, never held whole a second time."""
        full = self._full(key)
        if not 0 <= start <= end:
            raise ValueError(f"byte range must satisfy 0 <= start <= end: [{start}, {end})")
        if end - start > len(buffer):
            raise ValueError(f"buffer of {len(buffer)} bytes is smaller than the range [{start}, {end})")
        if end == start:
            if await self.head(key) is None:
                raise ObjectNotFound("no such object", key)
            return 0
        view = memoryview(buffer)[:end - start]
        client = await self._get_client()
        with _errors("get", key):
            try:
                resp = await client.get_object(Bucket=self.bucket, Key=full, Range=f"bytes={start}-{end - 1}")
            except ClientError as e:
                if _status(e) == 416 or _code(e) == "InvalidRange":
                    return 0
                raise
            n = 0
            async with resp["Body"] as body:
                while n < len(view):
                    got = await body.readinto(view[n:n + BODY_READ_BYTES])
                    if not got:
                        break  # the object ends before `end` (a short body raises instead)
                    n += got
            return n

    async def head(self, key: str) -> ObjectInfo | None:
        full = self._full(key)
        client = await self._get_client()
        with _errors("head", key):
            try:
                resp = await client.head_object(Bucket=self.bucket, Key=full)
            except ClientError as e:
                if _status(e) == 404 or _code(e) in _NOT_FOUND_CODES:
                    return None
                raise
        return ObjectInfo(key, resp["ContentLength"], _etag(resp))

    async def list(self, prefix: str) -> list[ObjectInfo]:
        client = await self._get_client()
        found = []
        with _errors("list", prefix):
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", ()):
                    found.append(ObjectInfo(self._strip(obj["Key"]), obj["Size"], _etag(obj)))
        found.sort(key=lambda info: info.key)
        return found

    async def delete(self, key: str) -> None:
        full = self._full(key)
        client = await self._get_client()
        with _errors("delete", key):
            try:
                await client.delete_object(Bucket=self.bucket, Key=full)
            except ClientError as e:
                if _code(e) not in _NOT_FOUND_CODES:  # some services 404 a missing key
                    raise

    async def delete_many(self, keys: list[str]) -> None:
        full_keys = [self._full(key) for key in keys]
        client = await self._get_client()
        for i in range(0, len(full_keys), DELETE_BATCH):
            batch = full_keys[i:i + DELETE_BATCH]
            with _errors("delete", self._strip(batch[0])):
                resp = await client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            failed = [e for e in resp.get("Errors", ()) if e.get("Code") not in _NOT_FOUND_CODES]
            if failed:
                first = failed[0]
                kind = TransientStoreError if first.get("Code") in _TRANSIENT_CODES else StoreError
                raise kind(f"delete of {len(failed)} object(s) failed: {first.get('Code')} "
                           f"{first.get('Message', '')}".rstrip(), self._strip(first.get("Key", batch[0])))

    # -- multipart -----------------------------------------------------------------

    async def create_multipart(self, key: str) -> MultipartUpload:
        full = self._full(key)
        client = await self._get_client()
        with _errors("create_multipart", key):
            resp = await client.create_multipart_upload(Bucket=self.bucket, Key=full)
        return MultipartUpload(key, resp["UploadId"])

    async def upload_part(self, upload: MultipartUpload, number: int, data: Body) -> CompletedPart:
        full = self._full(upload.key)
        client = await self._get_client()
        with _errors("upload_part", upload.key):
            resp = await client.upload_part(Bucket=self.bucket, Key=full, UploadId=upload.upload_id,
                                            PartNumber=number, Body=_rewound(data))
        # The ETag goes back to CompleteMultipartUpload exactly as the server sent it.
        return CompletedPart(number, resp["ETag"], body_size(data))

    async def complete_multipart(self, upload: MultipartUpload, parts: list[CompletedPart]) -> ObjectInfo:
        full = self._full(upload.key)
        if not parts:
            raise StoreError("a multipart upload needs at least one part", upload.key)
        client = await self._get_client()
        with _errors("complete", upload.key):
            resp = await client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload.upload_id,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
            )
        if all(p.size is not None for p in parts):
            return ObjectInfo(upload.key, sum(p.size for p in parts), _etag(resp))
        info = await self.head(upload.key)
        if info is None:
            raise ObjectNotFound("completed multipart upload is not visible", upload.key)
        return info

    async def abort_multipart(self, upload: MultipartUpload) -> None:
        full = self._full(upload.key)
        client = await self._get_client()
        with _errors("abort", upload.key):
            try:
                await client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload.upload_id)
            except ClientError as e:
                if _code(e) not in _NOT_FOUND_CODES and _status(e) != 404:
                    raise

    async def list_multipart_uploads(self, prefix: str) -> list[MultipartUpload]:
        client = await self._get_client()
        found = []
        with _errors("list_multipart", prefix):
            paginator = client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for up in page.get("Uploads", ()):
                    found.append((self._strip(up["Key"]), up.get("Initiated"), up["UploadId"]))
        found.sort(key=lambda t: (t[0], t[1] is not None, t[1] or 0, t[2]))
        return [MultipartUpload(key, upload_id) for key, _, upload_id in found]

    # -- capability probe ---------------------------------------------------------

    async def probe_conditional_put(self) -> bool:
        """Whether the service honours `If-None-Match: *`: create a scratch object
        twice under `.probe/` (inside the prefix) and see if the second is refused."""
        key = f".probe/conditional-put-{uuid.uuid4().hex}"
        client = await self._get_client()
        try:
            for _ in range(2):
                with _errors("put", key):
                    await client.put_object(Bucket=self.bucket, Key=self._full_unchecked(key),
                                            Body=b"", IfNoneMatch="*")
            return False
        except PreconditionFailed:
            return True
        finally:
            with _errors("delete", key):
                await client.delete_object(Bucket=self.bucket, Key=self._full_unchecked(key))

    # -- helpers --------------------------------------------------------------------

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._open_lock:
            if self._closed:
                raise StoreError(f"{self!r} is closed")
            if self._client is None:
                stack = contextlib.AsyncExitStack()
                session = _new_session()
                self._client = await stack.enter_async_context(session.create_client(
                    "s3",
                    endpoint_url=self._endpoint_url,
                    region_name=self._region,
                    config=self._config,
                    **self._credentials,
                ))
                self._exit_stack = stack
        return self._client

    def _full(self, key: str) -> str:
        if self._closed:
            raise StoreError(f"{self!r} is closed", key)
        return self.prefix + check_key(key)

    def _full_unchecked(self, key: str) -> str:
        return self.prefix + key

    def _strip(self, full_key: str) -> str:
        return full_key.removeprefix(self.prefix)


_shared_loader: Any = None


def _rewound(body: Body) -> Body:
    """A body for botocore: a stream is passed as is, from its start (botocore would
    wrap bytes in a BytesIO that shares them, and aiohttp's first look at its buffer
    would copy the whole object); a retry of the same stream starts over."""
    if isinstance(body, io.BytesIO):
        body.seek(0)
    return body


def _new_session() -> Any:
    """A fresh aiobotocore session sharing one botocore data loader: the loader
    caches the parsed S3 service model, which otherwise costs ~0.3 s per client.
    (Only the loader is shared; credentials stay per session.) Its responses
    parse timestamps with `_parse_timestamp`."""
    global _shared_loader
    session = get_session()
    if _shared_loader is None:
        _shared_loader = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _shared_loader)
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_parse_timestamp)
    return session


def _parse_timestamp(value: str) -> datetime.datetime:
    """A response timestamp as botocore parses it, in the two forms S3 sends without
    botocore's general parser (dateutil), which takes ~0.1 ms each: every GET answer
    has a Last-Modified header, and a listing has one timestamp per object.
    ISO 8601 in XML bodies ("2026-11-22T17:00:00.000Z"), RFC 7231 in headers
    ("Sun, 22 Nov 2026 17:00:00 GMT"); anything else goes to botocore's parser."""
    try:
        if value[:4].isdigit() and value[4:5] == "-":
            return datetime.datetime.fromisoformat(value)
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed.tzinfo is not None:
            return parsed
    except (TypeError, ValueError):
        pass
    return botocore_parse_timestamp(value)


@contextlib.contextmanager
def _errors(op: str, key: str | None) -> Iterator[None]:
    """Turn botocore/aiohttp failures into the store's error types, keeping the key."""
    try:
        yield
    except ClientError as e:
        code, status = _code(e), _status(e)
        message = f"{op}: {code} {e.response.get('Error', {}).get('Message', '')}".rstrip()
        if code in _PRECONDITION_CODES or status == 412:
            raise PreconditionFailed(message, key) from e
        if code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"):
            raise ObjectNotFound(message, key) from e
        if code in _TRANSIENT_CODES or status == 429 or (status or 0) >= 500:
            raise TransientStoreError(message, key) from e
        raise StoreError(message, key) from e
    except (HTTPClientError, BotoConnectionError, ReadTimeoutError, IncompleteReadError) as e:
        # Connection refused/reset/closed, connect and read timeouts, truncated bodies.
        raise TransientStoreError(f"{op}: {type(e).__name__}: {e}", key) from e
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise TransientStoreError(f"{op}: {type(e).__name__}: {e}", key) from e
    except BotoCoreError as e:  # missing credentials, invalid parameters, ...
        raise StoreError(f"{op}: {type(e).__name__}: {e}", key) from e


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _status(e: ClientError) -> int | None:
    return e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _etag(resp: dict) -> str | None:
    etag = resp.get("ETag")
    return etag.strip('"') if etag else None
