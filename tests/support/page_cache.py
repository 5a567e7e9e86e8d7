"""Page-cache residency of a file, measured without changing it: mincore(2) on an
mmap of the file that is never touched (libc through ctypes). Shared by the
page-cache test and benchmark."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

PAGE = mmap.PAGESIZE

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
_MAP_FAILED = ctypes.c_void_p(-1).value


def resident_pages(path: Path) -> tuple[int, int, int] | None:
    """(inode, resident pages, pages) of a file; None if it vanished meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_size == 0:
            return st.st_ino, 0, 0
        addr = _libc.mmap(None, st.st_size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, _MAP_FAILED):
            raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
        try:
            pages = (st.st_size + PAGE - 1) // PAGE
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, st.st_size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore of {path} failed")
            return st.st_ino, sum(b & 1 for b in vec), pages
        finally:
            _libc.munmap(addr, st.st_size)
    finally:
        os.close(fd)
