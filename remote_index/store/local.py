"""The local-directory object store: the embedded default and the test double.

Objects are files under `root`, a key's '/'-separated parts naming the
directories and the file (`topic-0/00000000000000000000-<id>.log` is
`root/topic-0/00000000000000000000-<id>.log`). Two hidden areas sit beside them
and are never listed: `.tmp/` for files being written and `.multipart/` for
unfinished multipart uploads.

On-disk protocol, and what a crash leaves behind:
- put: the bytes go to `.tmp/<random>`, are fsynced, then renamed over the key
  (`os.replace`) and the directory fsynced. A crash leaves the old object or the
  new one, plus perhaps a stray temp file (swept on open).
- create-only put: as put, but `os.link(tmp, final)` instead of the rename, which
  fails with EEXIST if the key exists; atomic even against other processes.
- multipart: `.multipart/<upload_id>/upload.json` records `{"key", "created"}`;
  part n is `.multipart/<upload_id>/part-<n:05d>` (written tmp + rename, so a
  part file is always whole). Complete concatenates the parts into a temp file,
  renames it over the key, then removes the upload directory. A crash before the
  rename leaves the upload listed by `list_multipart_uploads`, to be aborted.

Limitation: a key cannot be both an object and a directory ("a" and "a/b"), as
S3 allows; such a put raises `StoreError`. The remote tier's keys never do this.

Concurrency: all file I/O runs in worker threads (asyncio.to_thread), so
calls from many tasks proceed in parallel; every change is one rename or link,
so concurrent writers to one key end with one writer's whole object. The
`faults` knobs are touched only on the event loop thread.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

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
    body_view,
    check_key,
)

TMP_DIR = ".tmp"
MULTIPART_DIR = ".multipart"
_RESERVED = (TMP_DIR, MULTIPART_DIR)
MAX_PART_NUMBER = 10_000

OPS = frozenset({
    "put", "get", "head", "list", "delete",
    "create_multipart", "upload_part", "complete", "abort", "list_multipart",
})


# -- failure injection --------------------------------------------------------

@dataclass
class _FailRule:
    error: type[StoreError] | StoreError
    remaining: int | None  # None: forever (fail_every)
    every: int | None  # fail call numbers that are multiples of this
    after: bool  # the operation takes effect, then the error is raised


class StoreFaults:
    """Failure injection for a `LocalDirectoryStore`, like Kafka's LocalTieredStorage.

    Operations are named by `OPS`: put, get, head, list, delete (each key of a
    delete_many counts as one delete), create_multipart, upload_part, complete,
    abort, list_multipart.

        store.faults.fail_next("put")                       # next put: TransientStoreError
        store.faults.fail_next("get", 2, error=StoreError)  # the next two gets fail for good
        store.faults.fail_next("put", after=True)           # the put lands, the caller
                                                            # hears an error (lost response)
        store.faults.fail_every("upload_part", 3)           # every third part fails
        store.faults.delay("get", 0.5)                      # slow reads
        store.faults.lose_next_delete()                     # delete "succeeds", object stays
        store.faults.corrupt_next_get()                     # next get returns one byte flipped
        store.faults.clear()

    `calls[op]` counts calls, `injected[op]` the faults injected (failures,
    lost deletes, corruptions). Rules for one op apply in the order they were
    added; a delay applies to every call of its op until cleared.
    """

    def __init__(self) -> None:
        self._rules: dict[str, list[_FailRule]] = {}
        self._delays: dict[str, float] = {}
        self._lost_deletes = 0
        self._corrupt_gets = 0
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def fail_next(self, op: str, n: int = 1, error: type[StoreError] | StoreError = TransientStoreError,
                  *, after: bool = False) -> None:
        """Fail the next `n` calls of `op` with `error` (a StoreError class or instance).
        With `after=True` the operation is carried out first: a lost response."""
        self._rules.setdefault(_check_op(op), []).append(_FailRule(error, n, None, after))

    def fail_every(self, op: str, k: int, error: type[StoreError] | StoreError = TransientStoreError,
                   *, after: bool = False) -> None:
        """Fail every `k`-th call of `op` (counting all calls since the store opened)."""
        if k < 1:
            raise ValueError("k must be >= 1")
        self._rules.setdefault(_check_op(op), []).append(_FailRule(error, None, k, after))

    def delay(self, op: str, seconds: float) -> None:
        """Sleep `seconds` at the start of every call of `op` (0 removes the delay)."""
        self._delays[_check_op(op)] = seconds

    def lose_next_delete(self, n: int = 1) -> None:
        """The next `n` deletes report success and leave the object in place."""
        self._lost_deletes += n

    def corrupt_next_get(self, n: int = 1) -> None:
        """The next `n` non-empty gets return their bytes with the first byte flipped."""
        self._corrupt_gets += n

    def clear(self) -> None:
        """Remove every rule and delay (the counters stay)."""
        self._rules.clear()
        self._delays.clear()
        self._lost_deletes = 0
        self._corrupt_gets = 0

    # -- used by the store ---------------------------------------------------

    async def before(self, op: str, key: str | None) -> _FailRule | None:
        """Count the call, apply its delay; raise now, or return a rule to raise after."""
        self.calls[op] += 1
        seconds = self._delays.get(op)
        if seconds:
            await asyncio.sleep(seconds)
        rule = self._match(op)
        if rule is None:
            return None
        self.injected[op] += 1
        if rule.after:
            return rule
        raise self._error(rule, op, key)

    def after(self, rule: _FailRule | None, op: str, key: str | None) -> None:
        if rule is not None:
            raise self._error(rule, op, key)

    def take_lost_delete(self) -> bool:
        if self._lost_deletes:
            self._lost_deletes -= 1
            self.injected["delete"] += 1
            return True
        return False

    def maybe_corrupt(self, data: bytes) -> bytes:
        if self._corrupt_gets and data:
            self._corrupt_gets -= 1
            self.injected["get"] += 1
            return bytes([data[0] ^ 0xFF]) + data[1:]
        return data

    def maybe_corrupt_into(self, buffer: memoryview, n: int) -> None:
        if self._corrupt_gets and n:
            self._corrupt_gets -= 1
            self.injected["get"] += 1
            buffer[0] ^= 0xFF

    def _match(self, op: str) -> _FailRule | None:
        rules = self._rules.get(op)
        for rule in rules or ():
            if rule.every is not None:
                if self.calls[op] % rule.every == 0:
                    return rule
            elif rule.remaining:
                rule.remaining -= 1
                if not rule.remaining:
                    rules.remove(rule)
                return rule
        return None

    @staticmethod
    def _error(rule: _FailRule, op: str, key: str | None) -> StoreError:
        if isinstance(rule.error, StoreError):
            return rule.error
        return rule.error(f"injected failure of {op}", key)


def _check_op(op: str) -> str:
    if op not in OPS:
        raise ValueError(f"unknown store operation {op!r}; one of {sorted(OPS)}")
    return op


# -- the store ------------------------------------------------------------------

class LocalDirectoryStore(ObjectStore):
    """An object store in a directory. Invariant: every file outside `.tmp/` and
    `.multipart/` is a whole object whose key is its path relative to `root`."""

    def __init__(self, root: Path | str, *, min_part_size: int = 5 * 1024 * 1024):
        self.root = Path(root).absolute()
        self.min_part_size = min_part_size
        self.faults = StoreFaults()
        self._tmp = self.root / TMP_DIR
        self._uploads = self.root / MULTIPART_DIR
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._uploads.mkdir(exist_ok=True)
        # A temp file is only ever a put in flight; at open none is in flight.
        for stray in self._tmp.iterdir():
            stray.unlink(missing_ok=True)
        self._closed = False

    def __repr__(self) -> str:
        return f"LocalDirectoryStore({str(self.root)!r})"

    # -- objects -----------------------------------------------------------------

    async def put(self, key: str, data: Body, *, if_none_match: bool = False) -> ObjectInfo:
        path = self._path(key)
        rule = await self.faults.before("put", key)
        info = await asyncio.to_thread(self._put_sync, key, path, data, if_none_match)
        self.faults.after(rule, "put", key)
        return info

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        path = self._path(key)
        _check_range(start, end)
        rule = await self.faults.before("get", key)
        data = await asyncio.to_thread(self._get_sync, key, path, start, end)
        self.faults.after(rule, "get", key)
        return self.faults.maybe_corrupt(data)

    async def get_into(self, key: str, start: int, end: int, buffer: memoryview) -> int:
        """`get` straight into `buffer` (a "get" for the fault knobs)."""
        path = self._path(key)
        _check_into(start, end, buffer)
        rule = await self.faults.before("get", key)
        n = await asyncio.to_thread(self._get_into_sync, key, path, start, end, buffer)
        self.faults.after(rule, "get", key)
        self.faults.maybe_corrupt_into(buffer, n)
        return n

    async def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        rule = await self.faults.before("head", key)
        info = await asyncio.to_thread(self._head_sync, key, path)
        self.faults.after(rule, "head", key)
        return info

    async def list(self, prefix: str) -> list[ObjectInfo]:
        self._check_open()
        rule = await self.faults.before("list", prefix)
        infos = await asyncio.to_thread(self._list_sync, prefix)
        self.faults.after(rule, "list", prefix)
        return infos

    async def delete(self, key: str) -> None:
        path = self._path(key)
        rule = await self.faults.before("delete", key)
        if not self.faults.take_lost_delete():
            await asyncio.to_thread(self._delete_sync, key, path)
        self.faults.after(rule, "delete", key)

    # -- multipart -----------------------------------------------------------------

    async def create_multipart(self, key: str) -> MultipartUpload:
        self._path(key)
        rule = await self.faults.before("create_multipart", key)
        upload = MultipartUpload(key, uuid.uuid4().hex)
        await asyncio.to_thread(self._create_multipart_sync, upload)
        self.faults.after(rule, "create_multipart", key)
        return upload

    async def upload_part(self, upload: MultipartUpload, number: int, data: Body) -> CompletedPart:
        if not 1 <= number <= MAX_PART_NUMBER:
            raise StoreError(f"part number {number} outside 1..{MAX_PART_NUMBER}", upload.key)
        directory = self._upload_dir(upload)
        rule = await self.faults.before("upload_part", upload.key)
        part = await asyncio.to_thread(self._upload_part_sync, upload, directory, number, data)
        self.faults.after(rule, "upload_part", upload.key)
        return part

    async def complete_multipart(self, upload: MultipartUpload, parts: list[CompletedPart]) -> ObjectInfo:
        path = self._path(upload.key)
        directory = self._upload_dir(upload)
        rule = await self.faults.before("complete", upload.key)
        info = await asyncio.to_thread(self._complete_sync, upload, directory, path, parts)
        self.faults.after(rule, "complete", upload.key)
        return info

    async def abort_multipart(self, upload: MultipartUpload) -> None:
        directory = self._upload_dir(upload)
        rule = await self.faults.before("abort", upload.key)
        await asyncio.to_thread(shutil.rmtree, directory, True)
        self.faults.after(rule, "abort", upload.key)

    async def list_multipart_uploads(self, prefix: str) -> list[MultipartUpload]:
        self._check_open()
        rule = await self.faults.before("list_multipart", prefix)
        uploads = await asyncio.to_thread(self._list_uploads_sync, prefix)
        self.faults.after(rule, "list_multipart", prefix)
        return uploads

    async def close(self) -> None:
        self._closed = True

    # -- blocking halves (worker threads) ---------------------------------------

    def _put_sync(self, key: str, path: Path, data: Body, if_none_match: bool) -> ObjectInfo:
        tmp = self._write_tmp(key, [body_view(data)])
        try:
            info = self._info(key, tmp)  # the same inode as the object (a racing delete may follow)
            self._install(key, tmp, path, create_only=if_none_match)
        finally:
            tmp.unlink(missing_ok=True)
        return info

    def _get_sync(self, key: str, path: Path, start: int | None, end: int | None) -> bytes:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                lo = min(start or 0, size)
                hi = size if end is None else min(end, size)
                if hi <= lo:
                    return b""
                f.seek(lo)
                return f.read(hi - lo)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound("no such object", key) from None
        except OSError as e:
            raise _os_error("get", key, e) from e

    def _get_into_sync(self, key: str, path: Path, start: int, end: int, buffer: memoryview) -> int:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                lo, hi = min(start, size), min(end, size)
                f.seek(lo)
                view = memoryview(buffer)[:max(0, hi - lo)]
                n = 0
                while n < len(view):
                    got = f.readinto(view[n:])
                    if not got:
                        break  # truncated under us: report what is there
                    n += got
                return n
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound("no such object", key) from None
        except OSError as e:
            raise _os_error("get", key, e) from e

    def _head_sync(self, key: str, path: Path) -> ObjectInfo | None:
        try:
            return self._info(key, path)
        except ObjectNotFound:
            return None

    def _list_sync(self, prefix: str) -> list[ObjectInfo]:
        # Walk only the directory the prefix's complete parts name.
        base_parts = prefix.split("/")[:-1]
        if any(p in ("", ".", "..") for p in base_parts) or (base_parts and base_parts[0] in _RESERVED):
            return []
        base = self.root.joinpath(*base_parts)
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = os.path.relpath(dirpath, self.root)
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d not in _RESERVED]
                rel_dir = ""
            else:
                rel_dir = rel_dir.replace(os.sep, "/") + "/"
            for name in filenames:
                key = rel_dir + name
                if key.startswith(prefix):
                    try:
                        found.append(self._info(key, Path(dirpath, name)))
                    except ObjectNotFound:
                        pass  # deleted while we walked
        found.sort(key=lambda info: info.key)
        return found

    def _delete_sync(self, key: str, path: Path) -> None:
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except IsADirectoryError:
            return  # "a" when only "a/b" exists: no object "a"
        except OSError as e:
            raise _os_error("delete", key, e) from e
        self._prune_dirs(path.parent)

    def _create_multipart_sync(self, upload: MultipartUpload) -> None:
        directory = self._uploads / upload.upload_id
        record = json.dumps({"key": upload.key, "created": time.time()}).encode()
        tmp = self._write_tmp(upload.key, [record])
        try:
            directory.mkdir()
            os.replace(tmp, directory / "upload.json")
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(directory)

    def _upload_part_sync(self, upload: MultipartUpload, directory: Path, number: int,
                          body: Body) -> CompletedPart:
        self._read_record(upload, directory)
        data = body_view(body)
        tmp = self._write_tmp(upload.key, [data])
        try:
            os.replace(tmp, directory / f"part-{number:05d}")
        except FileNotFoundError:
            raise ObjectNotFound(f"no multipart upload {upload.upload_id}", upload.key) from None
        finally:
            tmp.unlink(missing_ok=True)
        return CompletedPart(number, hashlib.md5(data).hexdigest(), len(data))

    def _complete_sync(self, upload: MultipartUpload, directory: Path, path: Path,
                       parts: list[CompletedPart]) -> ObjectInfo:
        self._read_record(upload, directory)
        if not parts:
            raise StoreError("a multipart upload needs at least one part", upload.key)
        numbers = [p.number for p in parts]
        if numbers != sorted(set(numbers)):
            raise StoreError(f"parts must be in ascending order without repeats: {numbers}", upload.key)
        chunks = []
        for i, part in enumerate(parts):
            try:
                data = (directory / f"part-{part.number:05d}").read_bytes()
            except FileNotFoundError:
                raise StoreError(f"part {part.number} was never uploaded", upload.key) from None
            if hashlib.md5(data).hexdigest() != part.etag:
                raise StoreError(f"part {part.number}: etag does not match", upload.key)
            if i < len(parts) - 1 and len(data) < self.min_part_size:
                raise StoreError(f"part {part.number} is {len(data)} bytes, under the "
                                 f"minimum {self.min_part_size}", upload.key)
            chunks.append(data)
        tmp = self._write_tmp(upload.key, chunks)
        try:
            info = self._info(upload.key, tmp)
            self._install(upload.key, tmp, path, create_only=False)
        finally:
            tmp.unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
        return info

    def _list_uploads_sync(self, prefix: str) -> list[MultipartUpload]:
        found = []
        for directory in self._uploads.iterdir():
            try:
                record = json.loads((directory / "upload.json").read_text())
            except (FileNotFoundError, NotADirectoryError):
                continue  # being created or aborted
            if record["key"].startswith(prefix):
                found.append((record["key"], record["created"], directory.name))
        found.sort()
        return [MultipartUpload(key, upload_id) for key, _, upload_id in found]

    # -- helpers --------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        """The file of `key`; refuses keys that could escape the root or hit the hidden areas."""
        self._check_open()
        parts = check_key(key).split("/")
        if parts[0] in _RESERVED:
            raise StoreError("invalid object key: names the store's hidden area", key)
        return self.root.joinpath(*parts)

    def _upload_dir(self, upload: MultipartUpload) -> Path:
        self._path(upload.key)
        if not upload.upload_id.isalnum():
            raise StoreError(f"invalid upload id {upload.upload_id!r}", upload.key)
        return self._uploads / upload.upload_id

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self!r} is closed")

    def _read_record(self, upload: MultipartUpload, directory: Path) -> None:
        try:
            record = json.loads((directory / "upload.json").read_text())
        except FileNotFoundError:
            raise ObjectNotFound(f"no multipart upload {upload.upload_id}", upload.key) from None
        if record["key"] != upload.key:
            raise StoreError(f"upload {upload.upload_id} is for key {record['key']}", upload.key)

    def _write_tmp(self, key: str, chunks: list[bytes | memoryview]) -> Path:
        tmp = self._tmp / uuid.uuid4().hex
        try:
            with open(tmp, "wb") as f:
                f.writelines(chunks)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _os_error("write", key, e) from e
        return tmp

    def _install(self, key: str, tmp: Path, path: Path, *, create_only: bool) -> None:
        """Make `tmp` the object `key`: one rename (or link, for create-only)."""
        # Loop: a concurrent delete may prune the parent directory between the
        # mkdir and the rename (or inside mkdir itself).
        for _ in range(10):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                if path.parent.exists() and not path.parent.is_dir():
                    raise StoreError("key collides with another object's path", key) from None
                continue  # pruned under us (or recreated since): try again
            except FileNotFoundError:
                continue  # an ancestor pruned between mkdir's steps
            except NotADirectoryError:
                raise StoreError("key collides with another object's path", key) from None
            try:
                if create_only:
                    os.link(tmp, path)
                else:
                    os.replace(tmp, path)
            except FileExistsError:
                if path.is_dir():
                    raise StoreError("key names a directory of other objects", key) from None
                raise PreconditionFailed("object exists", key) from None
            except FileNotFoundError:
                continue
            except (NotADirectoryError, IsADirectoryError):
                raise StoreError("key collides with another object's path", key) from None
            except OSError as e:
                raise _os_error("put", key, e) from e
            try:
                _fsync_dir(path.parent)
            except FileNotFoundError:
                pass  # deleted and pruned already: nothing left to make durable
            return
        raise TransientStoreError("directory kept vanishing under the put", key)

    def _info(self, key: str, path: Path) -> ObjectInfo:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound("no such object", key) from None
        if not path.is_file():
            raise ObjectNotFound("no such object", key)
        # Stable while the object stays; a put makes a new inode and mtime. (Two
        # puts of one size in one clock tick reusing a freed inode would share
        # it: an etag here tells versions apart loosely, not as S3's MD5 does.)
        return ObjectInfo(key, st.st_size, f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}")

    def _prune_dirs(self, directory: Path) -> None:
        """Remove directories the delete left empty, up to the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or gone): stop
            directory = directory.parent


def _check_range(start: int | None, end: int | None) -> None:
    if (start is not None and start < 0) or (end is not None and end < 0):
        raise ValueError(f"byte range must not be negative: [{start}, {end})")


def _check_into(start: int, end: int, buffer: memoryview) -> None:
    if not 0 <= start <= end:
        raise ValueError(f"byte range must satisfy 0 <= start <= end: [{start}, {end})")
    if end - start > len(buffer):
        raise ValueError(f"buffer of {len(buffer)} bytes is smaller than the range [{start}, {end})")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_error(op: str, key: str, e: OSError) -> StoreError:
    # Disk full, EIO: a retry may succeed once space is freed; a bad path will not.
    kind = TransientStoreError if e.errno in (errno.ENOSPC, errno.EIO, errno.EAGAIN) else StoreError
    return kind(f"{op} failed: {e.strerror or e}", key)
