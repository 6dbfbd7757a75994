"""Keep large tensor buffers in glibc's heap instead of a fresh mmap per allocation.

glibc serves allocations above its mmap threshold (128 KiB at start) with mmap and unmaps them on free;
the kernel then zero-fills every page of the next one again. Sampling and training allocate logits and
activations of several MiB each step, so a process that stays at the starting threshold spends a large
share of its time in page faults (measured in a Ray rollout actor: 56k faults per rollout, generation
2-3x slower than with the setting below). glibc raises the threshold by itself only after freeing an
mmapped chunk, which does not happen reliably. Setting it to glibc's maximum (32 MiB) and the trim
threshold to 1 GiB keeps those buffers in the heap for reuse; the cost is memory not given back to the OS.
The same values go to Ray workers as MALLOC_* environment variables (`keel.scale.cluster`).
"""

from __future__ import annotations

import ctypes
import ctypes.util

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30
ENV = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers from glibc's malloc.h


def keep_buffers() -> bool:
    """Apply the thresholds to this process; False where the C library has no mallopt (not glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
