"""Reserve disk blocks ahead of a segment's appends.

A buffered write into a file region with no blocks makes ext4 reserve space
page by page (delayed allocation); writing into blocks reserved beforehand with
one `fallocate` skips that. Measured here, a 900 KB append cost 290 us of CPU
without a reservation and 200 us with one made a megabyte at a time.

The reservation uses FALLOC_FL_KEEP_SIZE: the file's size stays the end of what
was written, so recovery, reads and uploads never see the reserved blocks, and
truncating a file to its own size hands back what it reserved.

Best effort: where `fallocate` is missing or the file system refuses it, appends
go on without reservations; a full disk shows up in the write itself, as before.
"""

from __future__ import annotations

import ctypes

FALLOC_FL_KEEP_SIZE = 0x01
# Reserve at least this much past the end of each append.
RESERVE_AHEAD_BYTES = 1 << 20


def _load_fallocate():
    try:
        function = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return function


_fallocate = _load_fallocate()


def reserve_space(fd: int, offset: int, length: int) -> None:
    """Reserve blocks for `[offset, offset + length)` without changing the size.

    A refusal (no support, no space) is ignored; it costs one system call per
    reservation, which comes once per `RESERVE_AHEAD_BYTES` or so of appends."""
    if _fallocate is not None:
        _fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length)
