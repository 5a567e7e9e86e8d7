"""File names and durable-file helpers for a partition directory.

A partition directory holds, per segment, `<base_offset:020d>.log`, `.index` and
`.timeindex`; plus `partition.checkpoint` (see checkpoint.py) and, between a clean
close and the next open, the `clean-shutdown` marker. Files being deleted carry a
`.deleted` suffix until their delay expires; temporary files end in `.tmp`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
DELETED_SUFFIX = ".deleted"
TMP_SUFFIX = ".tmp"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
LEFTOVER_SUFFIXES = (DELETED_SUFFIX, TMP_SUFFIX, CLEANED_SUFFIX, SWAP_SUFFIX)
CLEAN_SHUTDOWN_MARKER = "clean-shutdown"

SEGMENT_FILE = re.compile(r"^(\d{20})\.(log|index|timeindex)$")

Fsync = Callable[[int], None]


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


def log_path(directory: Path, base_offset: int) -> Path:
    return directory / (segment_name(base_offset) + LOG_SUFFIX)


def index_path(directory: Path, base_offset: int) -> Path:
    return directory / (segment_name(base_offset) + INDEX_SUFFIX)


def time_index_path(directory: Path, base_offset: int) -> Path:
    return directory / (segment_name(base_offset) + TIME_INDEX_SUFFIX)


def fsync_directory(directory: Path, fsync: Fsync = os.fsync) -> None:
    """Make creations, renames and unlinks in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data, position: int) -> None:
    """pwrite all of `data` at `position` (pwrite may write less than asked)."""
    view = memoryview(data)
    total = len(view)
    written = os.pwrite(fd, view, position)
    while written < total:
        written += os.pwrite(fd, view[written:], position + written)


def write_file_atomically(path: Path, data: bytes, fsync: Fsync = os.fsync) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file.

    temp file + fsync + rename + fsync of the directory.
    """
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        write_all(fd, data, 0)
        fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent, fsync)
