"""The object-store interface the remote tier is written against.

Deliberately small (after litestream): whole-object put, create-only put,
ranged get, list, delete, head, and the four multipart calls. Every backend
(the local directory, S3 via aiobotocore) passes the same contract tests in
tests/remote_index/test_store_contract.py.

Semantics every backend keeps:
- Keys are '/'-separated strings without a leading '/'. A put is atomic: a
  reader sees the old object, the new one or none, never a part. Its body is
  `bytes`, or an `io.BytesIO` whose whole buffer is the object (the uploader
  builds segment objects in one, so a backend can send views of its buffer
  instead of a copy); the stream's position does not matter and a put of the
  same stream may be retried.
- `put(..., if_none_match=True)` creates the object only if no object has that
  key, else raises `PreconditionFailed`; this is the conditional put manifests
  rely on. A backend that cannot do it says so with `supports_conditional_put`.
- `get(key, start, end)` returns bytes [start, end) (end exclusive, clamped to the
  object size); a missing key raises `ObjectNotFound`.
- `list(prefix)` returns every object whose key starts with `prefix`, sorted by key.
- `delete(key)` of a missing key is not an error (deletes are idempotent).
- Multipart: parts are numbered from 1, every part but the last is at least
  `min_part_size` bytes; `complete_multipart` makes the object appear atomically;
  `abort_multipart` discards the parts (and is idempotent); `list_multipart_uploads`
  finds uploads that were started and never completed or aborted.
- Transient failures (5xx, throttling, timeouts, connection resets) raise
  `TransientStoreError`, which callers retry with backoff; anything else that
  goes wrong raises `StoreError`. Errors carry the key.

Concurrency: a store is shared by many tasks on one event loop; backends must
allow concurrent calls.
"""

from __future__ import annotations

import abc
import io
from dataclasses import dataclass


class StoreError(Exception):
    """An object-store operation failed in a way retrying will not fix."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(f"{message} (key {key})" if key else message)
        self.key = key


class TransientStoreError(StoreError):
    """A failure worth retrying: server error, throttling, timeout, reset connection."""


class ObjectNotFound(StoreError):
    pass


class PreconditionFailed(StoreError):
    """A conditional put found the key already taken."""


def check_key(key: str) -> str:
    """`key` if every backend can store it, else StoreError: no empty, '.' or '..'
    parts (so no leading, trailing or doubled '/'), no NUL or backslash. The same
    rule everywhere keeps a key that works on the local store working on S3, and
    keeps an S3 prefix from being escaped through path normalisation."""
    parts = key.split("/")
    if not key or "\0" in key or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise StoreError("invalid object key", key)
    return key


Body = bytes | io.BytesIO


def body_view(body: Body) -> bytes | memoryview:
    """The bytes of a put's body, without copying a stream's buffer."""
    return body.getbuffer() if isinstance(body, io.BytesIO) else body


def body_size(body: Body) -> int:
    return body.getbuffer().nbytes if isinstance(body, io.BytesIO) else len(body)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None = None


@dataclass(frozen=True)
class MultipartUpload:
    key: str
    upload_id: str


@dataclass(frozen=True)
class CompletedPart:
    number: int
    etag: str
    #: Bytes in the part, when known; lets `complete_multipart` report the size
    #: without another request.
    size: int | None = None


class ObjectStore(abc.ABC):
    """An S3-like bucket (or a directory standing in for one)."""

    #: Smallest allowed size of a multipart part other than the last.
    min_part_size: int = 5 * 1024 * 1024
    #: Whether `put(if_none_match=True)` is atomic on this backend.
    supports_conditional_put: bool = True

    @abc.abstractmethod
    async def put(self, key: str, data: Body, *, if_none_match: bool = False) -> ObjectInfo: ...

    @abc.abstractmethod
    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes: ...

    async def get_into(self, key: str, start: int, end: int, buffer: memoryview) -> int:
        """Read bytes [start, end) into `buffer` (at least end - start long); returns the
        count. Backends override this to stream into the buffer without holding a
        second copy of the range, which is what keeps cold reads inside their pool."""
        data = await self.get(key, start, end)
        buffer[: len(data)] = data
        return len(data)

    @abc.abstractmethod
    async def head(self, key: str) -> ObjectInfo | None: ...

    @abc.abstractmethod
    async def list(self, prefix: str) -> list[ObjectInfo]: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    async def delete_many(self, keys: list[str]) -> None:
        """Delete several keys; backends may batch. Missing keys are fine."""
        for key in keys:
            await self.delete(key)

    @abc.abstractmethod
    async def create_multipart(self, key: str) -> MultipartUpload: ...

    @abc.abstractmethod
    async def upload_part(self, upload: MultipartUpload, number: int, data: Body) -> CompletedPart: ...

    @abc.abstractmethod
    async def complete_multipart(self, upload: MultipartUpload, parts: list[CompletedPart]) -> ObjectInfo: ...

    @abc.abstractmethod
    async def abort_multipart(self, upload: MultipartUpload) -> None: ...

    @abc.abstractmethod
    async def list_multipart_uploads(self, prefix: str) -> list[MultipartUpload]: ...

    async def close(self) -> None:
        """Release connections. The store is unusable afterwards."""
