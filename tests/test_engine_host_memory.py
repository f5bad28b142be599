"""trainer.keep_freed_memory: on CPU, set_device makes glibc serve large tensors from the heap and keep them after
they are freed (no mmap/munmap and page faults every step); off, glibc's defaults stay. Each case runs in a fresh
process (the setting is process-wide and cannot be undone)."""

import json
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, json, sys
import numpy as np
from workbench.engine.device import set_device

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
set_device("cpu", keep_freed_memory=sys.argv[1] == "1")
before = libc.mallinfo2()
block = np.ones(64 << 18, np.float32)  # 64 MB: above glibc's largest mmap threshold (32 MB)
held = libc.mallinfo2()
del block
freed = libc.mallinfo2()
print(json.dumps({"mmapped_while_held": held.hblkhd - before.hblkhd, "free_in_heap_after": freed.fordblks}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallinfo2")
@pytest.mark.parametrize("keep", [True, False])
def test_keep_freed_memory_serves_large_tensors_from_the_heap_and_keeps_them(keep):
    out = subprocess.run([sys.executable, "-c", PROBE, "1" if keep else "0"], capture_output=True, text=True,
                         timeout=120, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    mb = 1 << 20
    if keep:
        assert info["mmapped_while_held"] == 0
        assert info["free_in_heap_after"] >= 64 * mb  # freed, but still the process's memory
    else:
        assert info["mmapped_while_held"] >= 64 * mb  # glibc's default: its own mmap, unmapped when freed
        assert info["free_in_heap_after"] < 64 * mb
