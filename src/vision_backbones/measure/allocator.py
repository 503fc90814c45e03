"""Fixed glibc malloc thresholds, so a timing does not depend on what the process allocated before.

glibc raises its mmap threshold each time it frees an mmapped block (up to 32 MiB), and it returns
the top of the heap to the kernel once more than twice that sits free. Which of the two happens to a
network's activations therefore depends on the process's history: the same forward pass takes 0 or
thousands of minor page faults per call and runs up to 20-30 % slower (``benchmarks/PARITY.md``,
``benchmarks/latency_predictor/noise.md``). Fixing both thresholds turns the dynamic rule off: blocks
below the mmap threshold always come from the heap, and the heap is never trimmed below the trim
threshold, so a warm forward pass reuses its memory and takes no page faults.

:func:`fix_thresholds` sets them in this process (``mallopt``; later allocations follow it); call it
before building the models to time. Elsewhere than glibc it does nothing and returns ``False``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

MMAP_THRESHOLD = 256 << 20  # bytes: above every activation of the zoo at 224 px, batch 8
TRIM_THRESHOLD = 1 << 30  # bytes of free heap top kept before any is returned to the kernel
FALLBACK_MMAP_THRESHOLD = 32 << 20  # the largest value every glibc accepts (HEAP_MAX_SIZE / 2)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)


def fix_thresholds(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Fix this process's malloc thresholds (glibc ``mallopt``); ``False`` where there is no glibc.

    A glibc that refuses ``mmap_threshold`` (some cap it at 32 MiB) gets
    :data:`FALLBACK_MMAP_THRESHOLD`: blocks above it are then mapped afresh on every call.
    """
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive number of bytes, got {value!r}")
    if not sys.platform.startswith("linux"):
        return False
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    libc = ctypes.CDLL(path)
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):  # musl has no mallopt knobs
        return False
    mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) or libc.mallopt(
        _M_MMAP_THRESHOLD, min(mmap_threshold, FALLBACK_MMAP_THRESHOLD)
    )
    return bool(mmap_set) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))
