"""Typed errors of the local log; the server maps each to one Kafka error code."""

from __future__ import annotations

from pathlib import Path


class LogError(Exception):
    """Base class for local-log failures."""


class OffsetOutOfRangeError(LogError):
    """An offset outside what the log holds (Kafka OFFSET_OUT_OF_RANGE)."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int, what: str = "offset"):
        super().__init__(
            f"{what} {offset} is out of range: the log holds [{log_start_offset}, {log_end_offset})"
        )
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class LogStorageError(LogError):
    """The disk failed us (Kafka KAFKA_STORAGE_ERROR); the log may refuse further writes."""

    def __init__(self, message: str, directory: Path | None = None):
        super().__init__(message if directory is None else f"{directory}: {message}")
        self.directory = directory


class CorruptSegmentError(LogStorageError):
    """Bytes on disk that should be sound record batches are not (found while reading)."""

    def __init__(self, message: str, path: Path, position: int):
        super().__init__(f"{path} at byte {position}: {message}")
        self.path = path
        self.position = position
