"""Large buffers (downloaded results) go back to the system when freed, not into glibc's heap.

glibc serves an allocation above its mmap threshold (128 KiB at start) with its own mapping,
returned on free; but each such free raises the threshold to the freed size (up to 32 MiB), so
after the first results, 2 MB buffers come from the heaps of the threads that touch them and
stay there, fragmented. With 1,000 jobs of 2 MB results that was 205-224 MB of peak RSS in
`bench.many_jobs --media-kb 2048`; with the threshold fixed at `THRESHOLD`, 151-176 MB
(docs/benchmarks.md). Setting it disables the raising. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
THRESHOLD = 256 * 1024  # bytes: results and uploads are larger, the bot's own objects smaller


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
        return False
    if mallopt(M_MMAP_THRESHOLD, THRESHOLD) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD) refused; large buffers stay on glibc's heaps")
        return False
    return True
