"""The partition checkpoint: log start offset and recovery point, in one small file.

Format of `partition.checkpoint` (text, replaced atomically: temp + fsync + rename):

    tierbroker-partition-checkpoint 1
    log_start_offset <int>
    recovery_point <int>

`log_start_offset` is the first offset readable (DeleteRecords and retention
advance it; it never moves back). `recovery_point` is an offset below which every
segment is known to be fsync'd with its indexes, so recovery after an unclean
shutdown starts scanning at the segment holding it. A missing or unreadable file
means "no knowledge": log start = first segment's base offset, recovery point 0
(scan everything after an unclean shutdown).

Writers: the event-loop thread (DeleteRecords, retention, close) and the flush
worker (recovery point after a group fsync). `CheckpointFile.write` serialises
them with a lock and reads both values at write time, so the last write always
carries the latest of both.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .files import Fsync, write_file_atomically

CHECKPOINT_NAME = "partition.checkpoint"
_MAGIC = "tierbroker-partition-checkpoint 1"

logger = logging.getLogger("broker.log")


@dataclass(frozen=True)
class Checkpoint:
    log_start_offset: int
    recovery_point: int


def encode(checkpoint: Checkpoint) -> bytes:
    return (
        f"{_MAGIC}\nlog_start_offset {checkpoint.log_start_offset}\nrecovery_point {checkpoint.recovery_point}\n"
    ).encode()


def decode(text: str) -> Checkpoint:
    lines = text.splitlines()
    if not lines or lines[0] != _MAGIC:
        raise ValueError("unknown checkpoint header")
    values = {}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        values[key] = int(value)
    lso, rp = values["log_start_offset"], values["recovery_point"]
    if lso < 0 or rp < 0:
        raise ValueError("negative offset in checkpoint")
    return Checkpoint(lso, rp)


class CheckpointFile:
    """Reads and writes one partition's checkpoint. Thread-safe."""

    def __init__(self, directory: Path, fsync: Fsync = os.fsync):
        self.path = directory / CHECKPOINT_NAME
        self._fsync = fsync
        self._lock = threading.Lock()
        self.last_written: Checkpoint | None = None

    def read(self) -> Checkpoint | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning("%s: cannot read checkpoint (%s); recovering without it", self.path, exc)
            return None
        try:
            checkpoint = decode(text)
        except (ValueError, KeyError) as exc:
            logger.warning("%s: checkpoint is unreadable (%s); recovering without it", self.path, exc)
            return None
        self.last_written = checkpoint
        return checkpoint

    def write(self, current: Callable[[], Checkpoint]) -> Checkpoint:
        """Persist `current()`, evaluated under the lock, unless it is already on disk."""
        with self._lock:
            checkpoint = current()
            if checkpoint != self.last_written:
                write_file_atomically(self.path, encode(checkpoint), self._fsync)
                self.last_written = checkpoint
            return checkpoint
