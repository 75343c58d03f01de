"""glibc heap hygiene for a long-lived server: big numpy/torch buffers freed per run go back to the OS."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter from glibc's malloc.h
SERVER_ARENAS = 2


def _glibc():
    """The C library when it is glibc (mallopt and malloc_trim exist), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = SERVER_ARENAS) -> bool:
    """Few malloc arenas: worker threads otherwise each keep their own fragmented heap (RSS creeps per run)."""
    libc = _glibc()
    return bool(libc and libc.mallopt(M_ARENA_MAX, arenas))


def return_freed_memory() -> bool:
    """Hand freed heap pages back to the OS after a run (malloc_trim); False where that is not glibc."""
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))
