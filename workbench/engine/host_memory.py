"""Keep freed host memory in the process instead of handing it back to the kernel after every step.

Why: Paddle's CPU tensors come from the C library's ``malloc``. glibc serves every block over its mmap threshold
(at most 32 MB) with a fresh ``mmap`` and returns it with ``munmap`` when freed, so a training step that makes
big activations (a keep-ratio rec batch at 48x704: the CTC head's output alone is 16 x 88 x 18,385 floats =
103 MB) pays the kernel's page faults on every page of them, every step. On a virtual machine whose memory the
host takes back (this 2-core VM: a first touch of 700 MB took 4.7 s, a reuse 0.13 s) that is most of the step.
Serving everything from the heap and never trimming it: PP-OCRv5_mobile_rec, batch 16, frozen BatchNorm, random
48xW input (``benchmarks/bench_host_memory.py`` measures both sides alternately): width 800 8.7 s a step instead
of 25.4 s, width 704 8.1 s instead of 14.5 s, width 320 4.2 s vs 3.9 s (noise); peak RSS 5.7 GB instead of 5.1 GB.

The price is that the process keeps its peak memory until it exits (``trainer.keep_freed_memory=false`` keeps
glibc's defaults). A no-op where the C library is not glibc (macOS, musl): :func:`keep_freed_memory` says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("workbench.engine")

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4

_TOP_PAD_BYTES = 256 << 20  # grow the heap in 256 MB steps (address space: pages are touched when used)
_NEVER_TRIM = -1  # man mallopt: "Setting M_TRIM_THRESHOLD to -1 disables trimming completely"

def _glibc():
    """The C library when it is glibc (it has ``gnu_get_libc_version``), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "gnu_get_libc_version") else None


def keep_freed_memory() -> bool:
    """Make this process's ``malloc`` serve large blocks from its heap and keep freed memory (glibc ``mallopt``:
    no mmap-served blocks, no trimming, 256 MB heap growth). Returns whether it applies; calling again is harmless.
    Affects allocations made after the call, so call it before building the model. Loader workers are spawned
    and keep glibc's defaults (they hold decoded crops, not activations)."""
    libc = _glibc()
    if libc is None:
        log.info("trainer.keep_freed_memory: not a glibc system, malloc keeps its defaults")
        return False
    results = [libc.mallopt(param, value) for param, value in (
        (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM), (_M_TOP_PAD, _TOP_PAD_BYTES))]
    if not all(r == 1 for r in results):
        log.warning("trainer.keep_freed_memory: glibc refused a mallopt setting; malloc may keep its defaults")
        return False
    return True
