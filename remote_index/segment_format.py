"""The remote segment format: a local segment as one object, its chunks then its meta.

Data object (`<base_offset:020d>-<segment_id>.log`, see keys.py)::

    [stored chunk 0][stored chunk 1]...[stored chunk n-1][meta]

No header, no padding: chunk i occupies object bytes [object_offset,
object_offset + object_length) as its `ChunkEntry` says, the chunks end at
`object_bytes`, and the meta (below) fills the rest of the object. The
manifest records the meta's length and CRC-32C, so a reader fetches it with
one ranged GET; the meta travels in the same PUT as the data. A chunk
is a run of *whole* record batches cut from the segment at batch boundaries,
about `chunk_bytes` long: batches are added while the chunk stays within
`chunk_bytes`, and a batch larger than `chunk_bytes` is a chunk by itself. One
ranged GET of one chunk therefore yields whole batches, and the original
segment is the concatenation of the decoded chunks. Each chunk is stored
compressed with the segment's codec (zstd frame, lz4 frame) or as is; when the
codec does not shrink a chunk (producers usually compress their batches
already) the chunk is stored as is and its entry says `compressed: false`, so a
read never pays to decompress bytes that did not get smaller.

Checksums (CRC-32C, Castagnoli):
- `crc32c` of the chunk's *original* bytes, checked after decompression, so a
  codec fault or a chunk decoded with the wrong codec is caught too;
- `stored_crc32c` of the bytes as stored, checked before decompressing, so a
  damaged object is rejected before a decompressor ever sees it;
- `data_crc32c` in the meta: the CRC-32C of the stored chunks, object bytes
  [0, object_bytes) (what a restore or an audit can check without decoding).

Meta: one JSON document (see
`encode_sealed_json`, which also seals manifests) holding the format version,
codec, chunk size, the segment's base/last offset, original and stored sizes,
first/max timestamp, the chunk index as rows under a `chunk_fields` header, and
the segment's `.index` and `.timeindex` file bytes in base64 (positions in the
offset index are *original* positions: `chunk_for_position` maps them to a
chunk). The document carries a CRC-32C of its own canonical body; the manifest
also records the CRC-32C of the meta's bytes. (Segments uploaded before the
meta became a trailer keep it in a separate `<base_offset:020d>-<segment_id>.meta`
object, which their manifest entry names; readers still read those.)

Partial writes: a put or a completed multipart upload appears atomically, so a
reader sees a whole object or none. An upload that dies leaves either nothing,
an abandoned multipart upload (aborted by the uploader or by a sweep of
`list_multipart_uploads`), or whole objects under a segment id that no
COPY_FINISHED manifest entry names. Readers only follow COPY_FINISHED entries,
and every attempt uses a fresh segment id, so such leftovers are never read and
garbage collection deletes them by key (`keys.parse_segment_key`).

Encoding reads the local file with pread and compresses: blocking CPU and disk
work that callers run in a worker thread, one chunk per step. The file is read
in windows of `window_bytes`, and a chunk stored as is is a slice of its window,
not a copy. `encode_all` builds the whole data object in an in-memory stream
that owns its buffer: with no codec and the segment encoded whole, the file is
read straight into that buffer, so the object is the one read of the file and
the stream can be handed to a store (and its HTTP client) without another copy.
"""

from __future__ import annotations

import base64
import bisect
import io
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Self

import lz4.frame
import zstandard
from crc32c import crc32c

from broker.protocol.records import BATCH_HEADER_SIZE, LOG_APPEND_TIME, BatchHeader, scan_batches

FORMAT_VERSION = 1
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024
COMPRESSIONS = ("none", "zstd", "lz4")
ZSTD_LEVEL = 3
NO_TIMESTAMP = -1


class SegmentFormatError(Exception):
    """Base of the remote segment format's errors."""


class CorruptChunkError(SegmentFormatError):
    """A stored chunk failed its checks (length, CRC-32C, decompression). Not retriable
    from the same object; the reader should report it, not serve the bytes."""

    def __init__(self, reason: str, *, key: str | None = None, chunk_index: int | None = None,
                 position: int | None = None):
        where = []
        if key is not None:
            where.append(f"object {key}")
        if chunk_index is not None:
            where.append(f"chunk {chunk_index}")
        if position is not None:
            where.append(f"segment position {position}")
        super().__init__(f"corrupt chunk ({', '.join(where) or 'unknown'}): {reason}")
        self.reason = reason
        self.key = key
        self.chunk_index = chunk_index
        self.position = position


class CorruptSegmentMetaError(SegmentFormatError):
    """A segment meta that cannot be parsed, fails its CRC-32C or breaks its invariants."""

    def __init__(self, reason: str, key: str | None = None):
        super().__init__(f"corrupt segment meta{f' {key}' if key else ''}: {reason}")
        self.reason = reason
        self.key = key


class SegmentEncodeError(SegmentFormatError):
    """The local segment file is not a sound run of batches up to its size."""

    def __init__(self, reason: str, path: str | None, position: int):
        super().__init__(f"cannot encode segment {path or '<fd>'} at byte {position}: {reason}")
        self.reason = reason
        self.path = path
        self.position = position


# ---------------------------------------------------------------------------
# Sealed JSON documents (segment metas here, partition manifests in manifest.py)


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def encode_sealed_json(body: dict) -> bytes:
    """`body` as canonical JSON plus a "crc32c" field: the CRC-32C of the canonical body.

    The CRC is over the canonical serialization (sorted keys, no spaces, ASCII),
    which parsing and re-serializing reproduces exactly for the ints, strings,
    bools, lists and dicts these documents hold (no floats).
    """
    if "crc32c" in body:
        raise ValueError("a sealed document's body cannot have a crc32c field")
    return _canonical({**body, "crc32c": crc32c(_canonical(body))})


def decode_sealed_json(data: bytes) -> dict:
    """Parse and verify a document from `encode_sealed_json`; ValueError says what is wrong."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("crc32c"), int):
        raise ValueError("no crc32c field")
    stored = doc.pop("crc32c")
    actual = crc32c(_canonical(doc))
    if actual != stored:
        raise ValueError(f"CRC-32C mismatch: stored {stored:#010x}, computed {actual:#010x}")
    return doc


# ---------------------------------------------------------------------------
# Chunk index


@dataclass(frozen=True, slots=True)
class ChunkEntry:
    """One chunk: original range [position, position + length) of the segment, stored at
    object range [object_offset, object_offset + object_length)."""

    index: int
    position: int
    length: int
    object_offset: int
    object_length: int
    first_offset: int  # base offset of the chunk's first batch
    last_offset: int  # last offset of the chunk's last batch
    max_timestamp: int  # largest batch max-timestamp in the chunk, -1 if none
    crc32c: int  # of the original (decompressed) bytes
    stored_crc32c: int  # of the bytes in the object
    compressed: bool  # False: stored as is (the codec did not shrink it)
    batch_count: int

    @property
    def end_position(self) -> int:
        return self.position + self.length

    @property
    def object_end(self) -> int:
        return self.object_offset + self.object_length


_CHUNK_FIELDS = tuple(f.name for f in fields(ChunkEntry))


@dataclass(frozen=True, slots=True)
class SegmentMeta:
    """Everything a reader needs to serve one remote segment, except its data.

    Invariants (checked by `from_bytes`): chunks tile [0, size_bytes) and
    [0, object_bytes) in order without gaps, and their offsets increase.
    """

    compression: str
    chunk_bytes: int
    base_offset: int
    last_offset: int
    size_bytes: int
    object_bytes: int
    data_crc32c: int
    first_timestamp: int
    max_timestamp: int
    chunks: tuple[ChunkEntry, ...]
    offset_index: bytes = b""
    time_index: bytes = b""
    format_version: int = FORMAT_VERSION

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    def to_bytes(self) -> bytes:
        return encode_sealed_json({
            "format_version": self.format_version,
            "compression": self.compression,
            "chunk_bytes": self.chunk_bytes,
            "base_offset": self.base_offset,
            "last_offset": self.last_offset,
            "size_bytes": self.size_bytes,
            "object_bytes": self.object_bytes,
            "data_crc32c": self.data_crc32c,
            "first_timestamp": self.first_timestamp,
            "max_timestamp": self.max_timestamp,
            "chunk_fields": list(_CHUNK_FIELDS),
            "chunks": [[getattr(c, name) for name in _CHUNK_FIELDS] for c in self.chunks],
            "offset_index": base64.b64encode(self.offset_index).decode(),
            "time_index": base64.b64encode(self.time_index).decode(),
        })

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str | None = None, expected_crc32c: int | None = None) -> SegmentMeta:
        """Parse a segment meta; `expected_crc32c` (from the manifest) checks the raw bytes too."""
        if expected_crc32c is not None and crc32c(data) != expected_crc32c:
            raise CorruptSegmentMetaError(
                f"object CRC-32C {crc32c(data):#010x} differs from the manifest's {expected_crc32c:#010x}", key)
        try:
            doc = decode_sealed_json(data)
        except ValueError as exc:
            raise CorruptSegmentMetaError(str(exc), key) from None
        version = doc.get("format_version")
        if version != FORMAT_VERSION:
            raise CorruptSegmentMetaError(f"unsupported format_version {version!r}", key)
        try:
            names = doc["chunk_fields"]
            chunks = tuple(ChunkEntry(**dict(zip(names, row, strict=True))) for row in doc["chunks"])
            meta = cls(
                compression=doc["compression"],
                chunk_bytes=doc["chunk_bytes"],
                base_offset=doc["base_offset"],
                last_offset=doc["last_offset"],
                size_bytes=doc["size_bytes"],
                object_bytes=doc["object_bytes"],
                data_crc32c=doc["data_crc32c"],
                first_timestamp=doc["first_timestamp"],
                max_timestamp=doc["max_timestamp"],
                chunks=chunks,
                offset_index=base64.b64decode(doc["offset_index"], validate=True),
                time_index=base64.b64decode(doc["time_index"], validate=True),
                format_version=version,
            )
            problem = meta.invariant_violation()
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptSegmentMetaError(f"malformed document: {exc!r}", key) from None
        if problem:
            raise CorruptSegmentMetaError(problem, key)
        return meta

    def invariant_violation(self) -> str | None:
        if self.compression not in COMPRESSIONS:
            return f"unknown compression {self.compression!r}"
        position = object_offset = 0
        previous_last = None
        for i, chunk in enumerate(self.chunks):
            if chunk.index != i:
                return f"chunk {i} says it is chunk {chunk.index}"
            if chunk.position != position or chunk.object_offset != object_offset:
                return f"chunk {i} does not start where chunk {i - 1} ends"
            if chunk.length <= 0 or chunk.object_length <= 0 or chunk.last_offset < chunk.first_offset:
                return f"chunk {i} is empty or its offsets run backwards"
            if previous_last is not None and chunk.first_offset <= previous_last:
                return f"chunk {i} offsets overlap chunk {i - 1}"
            position, object_offset, previous_last = chunk.end_position, chunk.object_end, chunk.last_offset
        if position != self.size_bytes or object_offset != self.object_bytes:
            return "chunks do not cover the segment and the object exactly"
        return None


def chunk_for_offset(meta: SegmentMeta, offset: int) -> int | None:
    """Index of the chunk holding `offset`, or of the first chunk after it if `offset`
    falls between chunks or before the first one; None when `offset` is past the segment."""
    i = bisect.bisect_left([c.last_offset for c in meta.chunks], offset)
    return i if i < len(meta.chunks) else None


def chunk_for_timestamp(meta: SegmentMeta, timestamp: int) -> int | None:
    """Index of the first chunk with a batch whose max-timestamp is >= `timestamp`
    (where a ListOffsets-by-time search starts walking), or None.

    Max timestamps need not grow from chunk to chunk, so this is a scan; a
    segment has a few hundred chunks at most.
    """
    for chunk in meta.chunks:
        if chunk.max_timestamp >= timestamp:
            return chunk.index
    return None


def chunk_for_position(meta: SegmentMeta, position: int) -> int | None:
    """Index of the chunk holding original byte `position` (e.g. from the offset index)."""
    if position < 0 or position >= meta.size_bytes:
        return None
    return bisect.bisect_right([c.position for c in meta.chunks], position) - 1


# ---------------------------------------------------------------------------
# Decoding

_local = threading.local()


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    # Decompressor objects are not thread-safe; reads decode in worker threads.
    decompressor = getattr(_local, "zstd", None)
    if decompressor is None:
        decompressor = _local.zstd = zstandard.ZstdDecompressor()
    return decompressor


def decode_chunk(stored, entry: ChunkEntry, compression: str, *, key: str | None = None,
                 out: memoryview | None = None):
    """The original bytes of one chunk from its stored bytes, verified.

    Checks the stored length and CRC-32C, decompresses, checks the original
    length and CRC-32C; any failure raises CorruptChunkError. An uncompressed
    chunk comes back as `stored` itself (no copy: it may be a pool buffer). With
    `out` (at least `entry.length` bytes, e.g. a pool buffer) a compressed chunk
    is decompressed into it and `out[:entry.length]` returned, so the decoder
    allocates no chunk-sized buffer of its own.
    """

    def corrupt(reason: str) -> CorruptChunkError:
        return CorruptChunkError(reason, key=key, chunk_index=entry.index, position=entry.position)

    if len(stored) != entry.object_length:
        raise corrupt(f"stored length {len(stored)}, expected {entry.object_length}")
    actual = crc32c(stored)
    if actual != entry.stored_crc32c:
        raise corrupt(f"stored CRC-32C {actual:#010x}, expected {entry.stored_crc32c:#010x}")
    if not entry.compressed:
        # The stored bytes are the original ones: one length and one CRC, which
        # must match both fields.
        if len(stored) != entry.length:
            raise corrupt(f"length {len(stored)}, expected {entry.length}")
        if actual != entry.crc32c:
            raise corrupt(f"CRC-32C {actual:#010x}, expected {entry.crc32c:#010x}")
        return stored
    if compression not in ("zstd", "lz4"):
        raise corrupt(f"chunk is compressed but the segment's codec is {compression!r}")
    try:
        data = _decompress(stored, entry.length, compression, out)
    except CorruptChunkError:
        raise
    except Exception as exc:  # codecs raise assorted types; all mean the same here
        raise corrupt(f"{compression} decompression failed: {exc}") from None
    if len(data) != entry.length:
        raise corrupt(f"decoded length {len(data)}, expected {entry.length}")
    actual = crc32c(data)
    if actual != entry.crc32c:
        raise corrupt(f"decoded CRC-32C {actual:#010x}, expected {entry.crc32c:#010x}")
    return data


_DECOMPRESS_PIECE = 256 * 1024


def _decompress(stored, length: int, compression: str, out: memoryview | None):
    if out is None:
        if compression == "zstd":
            return _zstd_decompressor().decompress(stored, max_output_size=length)
        return lz4.frame.decompress(stored)
    filled = 0
    if compression == "zstd":
        with _zstd_decompressor().stream_reader(stored) as reader:
            while filled < length:
                n = reader.readinto(out[filled:length])
                if not n:
                    break
                filled += n
            if reader.read(1):
                filled += 1  # more output than the entry says: reported as a length mismatch
    else:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        data = stored
        while not decompressor.eof:
            piece = decompressor.decompress(data, max_length=_DECOMPRESS_PIECE)
            data = b""
            if not piece and not decompressor.needs_input:
                continue
            if not piece:
                break
            if filled + len(piece) > length:
                return out[:0]  # longer than the entry says: a length mismatch
            out[filled:filled + len(piece)] = piece
            filled += len(piece)
    return out[:filled]


# ---------------------------------------------------------------------------
# Encoding


def read_segment_indexes(log_file: str | os.PathLike) -> tuple[bytes, bytes]:
    """The `.index` and `.timeindex` bytes beside a `.log` file (b"" for a missing one)."""
    path = Path(log_file)
    out = []
    for suffix in (".index", ".timeindex"):
        try:
            out.append(path.with_suffix(suffix).read_bytes())
        except FileNotFoundError:
            out.append(b"")
    return out[0], out[1]


def meta_size_hint(size_bytes: int, chunk_bytes: int, offset_index: bytes, time_index: bytes) -> int:
    """Room to leave behind a segment's data object for its meta trailer: both
    indexes in base64 and a JSON row per chunk, generously (chunks end at batch
    boundaries, so there may be more than size / chunk_bytes). A hint only: a
    bigger meta still fits, at the cost of moving the buffer once."""
    chunks = 2 * (size_bytes // chunk_bytes + 1)
    return 4 * (len(offset_index) + len(time_index)) // 3 + 512 * chunks + 4096


def joined_stream(pieces: list[bytes | memoryview], room: int = 0,
                  reuse: io.BytesIO | None = None) -> io.BytesIO:
    """`pieces` back to back in a stream positioned at its end, in one buffer
    with `room` bytes to spare: the one copy of a part or an object on its way to
    a store (see `store.base.Body`). `reuse`: as for `_stream_with_room`."""
    stream = _stream_with_room(sum(len(piece) for piece in pieces), room, reuse)
    stream.writelines(pieces)
    return stream


def _stream_with_room(length: int, room: int, reuse: io.BytesIO | None = None) -> io.BytesIO:
    """A stream of `length` bytes, positioned at 0, whose buffer holds
    `length + room`: shortening a BytesIO keeps its buffer unless it shrinks
    below half, so the room survives the truncate.

    A new stream holds zero bytes. `reuse`, a stream of an object already sent,
    is taken over instead: its buffer is kept (only what it grows by is zeroed,
    and no fresh memory is touched), and its first `length` bytes are stale, for
    the caller to overwrite every one of them."""
    stream = io.BytesIO() if reuse is None else reuse
    stream.seek(length + room - 1)
    stream.write(b"\0")
    stream.truncate(length)
    stream.seek(0)
    return stream


class SegmentEncoder:
    """Cuts the first `size` bytes of a local segment into stored chunks, one per step.

    Usage (in a worker thread per step, since steps compress and read)::

        with SegmentEncoder(path, size, compression="zstd") as encoder:
            for stored, entry in encoder:       # or: encoder.next_chunk() until None
                upload(stored)
            meta = encoder.meta(*read_segment_indexes(path))

    Memory: one read window (`window_bytes`, default two chunks, or one oversized
    batch) plus a chunk's compressed form; the chunks handed out are views of the
    window they were cut from, valid as long as the caller keeps them. The file
    must hold `size` bytes of sound batches (a closed segment);
    anything else raises SegmentEncodeError, so a damaged local segment is never
    uploaded as if it were good. Not thread-safe: one step at a time.
    """

    def __init__(
        self,
        source: str | os.PathLike | int,
        size: int,
        *,
        compression: str = "none",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        base_offset: int | None = None,
        verify_batches: bool = True,
        zstd_level: int = ZSTD_LEVEL,
        window_bytes: int | None = None,
    ):
        if compression not in COMPRESSIONS:
            raise ValueError(f"unknown chunk compression {compression!r}; expected one of {COMPRESSIONS}")
        if chunk_bytes < BATCH_HEADER_SIZE:
            raise ValueError(f"chunk_bytes {chunk_bytes} is smaller than a batch header")
        if size <= 0:
            raise ValueError(f"segment size {size} leaves nothing to encode")
        if isinstance(source, int):
            self._fd, self._owns_fd, self._path = source, False, None
        else:
            self._fd, self._owns_fd, self._path = os.open(source, os.O_RDONLY), True, os.fspath(source)
        self.size = size
        self.compression = compression
        self.chunk_bytes = chunk_bytes
        self.verify_batches = verify_batches
        self._base_offset = base_offset
        self._zstd = zstandard.ZstdCompressor(level=zstd_level) if compression == "zstd" else None
        self.window_bytes = max(window_bytes or 2 * chunk_bytes, chunk_bytes)
        self._window = b""  # file bytes [_window_start, _window_start + len(_window))
        self._window_start = 0
        self._position = 0
        self._object_bytes = 0
        self._data_crc = 0
        self._chunks: list[ChunkEntry] = []
        self._first_header: BatchHeader | None = None
        self._max_timestamp = NO_TIMESTAMP

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_fd and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def __iter__(self) -> Iterator[tuple[bytes | memoryview, ChunkEntry]]:
        return self

    def __next__(self) -> tuple[bytes | memoryview, ChunkEntry]:
        item = self.next_chunk()
        if item is None:
            raise StopIteration
        return item

    @property
    def done(self) -> bool:
        return self._position >= self.size

    def encode_all(self, trailer_room: int = 0, reuse: io.BytesIO | None = None) -> io.BytesIO:
        """Every remaining chunk, as the data object's bytes from here on, in a
        stream positioned at its end, whose buffer has `trailer_room` bytes to
        spare behind them: the caller appends the meta trailer there without the
        buffer moving (see `meta_size_hint`). `reuse`: a stream of an object
        already sent, whose buffer this one takes over (see `_stream_with_room`).

        The stream owns its buffer, so a store can take views of it instead of
        copying it. With no compression, encoding from the segment's first byte in
        one window, the file is read straight into that buffer and the chunks are
        cut and checked in place: the object is the one read of the file.
        Otherwise the stored chunks are cut first and then copied in once."""
        if self._position == 0 and self.compression == "none" and self.window_bytes >= self.size:
            stream = _stream_with_room(self.size, trailer_room, reuse)
            view = stream.getbuffer()
            self._read_into(view)
            self._window, self._window_start = view, 0
            try:
                while self.next_chunk() is not None:
                    pass
            finally:
                self._window = b""
            view.release()  # the chunks were views of it; the stream may grow again
            stream.seek(0, io.SEEK_END)
            return stream
        pieces = []
        while (item := self.next_chunk()) is not None:
            pieces.append(item[0])
        return joined_stream(pieces, trailer_room, reuse)

    def _read_into(self, view: memoryview) -> None:
        """Fill `view` with the file's first len(view) bytes."""
        done = 0
        while done < len(view):
            n = os.preadv(self._fd, [view[done:]], done)
            if n == 0:
                raise SegmentEncodeError(f"file ends at byte {done}, before its size {self.size}", self._path, done)
            done += n

    def next_chunk(self) -> tuple[bytes | memoryview, ChunkEntry] | None:
        """The next (stored bytes, entry), or None once the whole segment is encoded.
        Stored bytes that were not compressed are a view of the read window."""
        if self.done:
            return None
        original, headers = self._cut()
        crc = crc32c(original)
        stored, compressed = original, False
        if self.compression != "none":
            packed = self._compress(original)
            if len(packed) < len(original):
                stored, compressed = packed, True
        stored_crc = crc32c(stored) if compressed else crc
        entry = ChunkEntry(
            index=len(self._chunks),
            position=self._position,
            length=len(original),
            object_offset=self._object_bytes,
            object_length=len(stored),
            first_offset=headers[0].base_offset,
            last_offset=headers[-1].last_offset,
            max_timestamp=max(h.max_timestamp for h in headers),
            crc32c=crc,
            stored_crc32c=stored_crc,
            compressed=compressed,
            batch_count=len(headers),
        )
        if self._chunks and entry.first_offset <= self._chunks[-1].last_offset:
            raise SegmentEncodeError(
                f"batch offset {entry.first_offset} does not follow {self._chunks[-1].last_offset}",
                self._path, self._position)
        if self._first_header is None:
            self._first_header = headers[0]
        self._max_timestamp = max(self._max_timestamp, entry.max_timestamp)
        self._chunks.append(entry)
        self._position += len(original)
        self._object_bytes += len(stored)
        self._data_crc = crc32c(stored, self._data_crc)
        return stored, entry

    def meta(self, offset_index: bytes = b"", time_index: bytes = b"") -> SegmentMeta:
        """The segment's meta; only once every chunk has been taken."""
        if not self.done:
            raise RuntimeError("SegmentEncoder.meta() before the last chunk was encoded")
        first = self._first_header
        assert first is not None
        first_timestamp = first.max_timestamp if first.timestamp_type == LOG_APPEND_TIME else first.base_timestamp
        base_offset = first.base_offset if self._base_offset is None else self._base_offset
        if base_offset > first.base_offset:
            raise SegmentEncodeError(
                f"base offset {base_offset} is above the first batch's offset {first.base_offset}", self._path, 0)
        return SegmentMeta(
            compression=self.compression,
            chunk_bytes=self.chunk_bytes,
            base_offset=base_offset,
            last_offset=self._chunks[-1].last_offset,
            size_bytes=self.size,
            object_bytes=self._object_bytes,
            data_crc32c=self._data_crc,
            first_timestamp=first_timestamp,
            max_timestamp=self._max_timestamp,
            chunks=tuple(self._chunks),
            offset_index=bytes(offset_index),
            time_index=bytes(time_index),
        )

    def _compress(self, data: bytes) -> bytes:
        if self._zstd is not None:
            return self._zstd.compress(data)
        return lz4.frame.compress(data, store_size=True)

    def _fill(self, want: int) -> None:
        """Make the window cover file bytes [_position, _position + want) (already
        checked to lie within `size`), reading a new window from `_position` if not.
        The tail of the old window is read again rather than copied: it is in the
        page cache, and a read costs less than moving bytes in memory."""
        if self._position - self._window_start + want <= len(self._window):
            return
        length = min(max(want, self.window_bytes), self.size - self._position)
        data = os.pread(self._fd, length, self._position)
        if len(data) < length:
            at = self._position + len(data)
            raise SegmentEncodeError(f"file ends at byte {at}, before its size {self.size}", self._path, at)
        self._window, self._window_start = data, self._position

    def _cut(self) -> tuple[memoryview, list[BatchHeader]]:
        """The next chunk's original bytes (whole batches, a view of the window) and headers."""
        left = self.size - self._position
        want = min(self.chunk_bytes, left)
        while True:
            self._fill(want)
            start = self._position - self._window_start
            scan = scan_batches(self._window, start, start + want, verify_crc=self.verify_batches)
            if scan.headers:
                break
            # The first batch does not fit in `want`: it is an oversized batch (a
            # chunk by itself), or the file is damaged or torn.
            if not scan.incomplete or scan.needed > left:
                raise SegmentEncodeError(scan.error or "no batch", self._path, self._position)
            want = scan.needed
        return memoryview(self._window)[start:scan.end], scan.headers
