"""CPU kernels of our own, compiled once per machine with Paddle's C++ extension builder.

Only where Paddle's CPU kernel is the bottleneck of a training step, measured: depthwise convolutions
(``depthwise_conv.cc``). Paddle 3.3 runs them at 2-6 GFLOP/s, a third of a PP-OCRv5_mobile_rec step and half of
a det step for 6-7 % of the FLOPs; ours is 1.8-4.7x faster forward + backward on the shapes of PPLCNetV3 (1 thread,
``benchmarks/bench_native_kernels.py``).

* Used only when training (eager mode, gradients recorded) on CPU in float32 (``models.ops.depthwise_conv2d``):
  an exported or compiled graph (``paddle.jit``) keeps Paddle's own conv op, which PaddleX and Paddle Inference
  know; inference under ``no_grad`` keeps Paddle's rounding (parity with onnxruntime is checked to 1e-4); GPU and
  AMP keep Paddle's kernels.
* Compiled on first use (~15 s, a C++ compiler is needed) into ``<cache_dir>/native/<key>``; the key
  covers the source, the Paddle version and the CPU's instruction-set flags (the code is built for this CPU). A
  file lock keeps two processes from building the same one at once.
* If building fails (no compiler, ...), one warning line and Paddle's kernels are used: slower, never wrong.
* ``configure(enabled=False)`` (``trainer.native_kernels=false``) turns them off; ``threads`` follows
  ``trainer.num_threads`` (default: ``OMP_NUM_THREADS``, else 1 -- Paddle's own default).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Optional

from workbench.config.paths import cache_dir

log = logging.getLogger(__name__)

__all__ = ["configure", "depthwise_conv2d_op", "native_threads"]

SOURCE = Path(__file__).with_name("depthwise_conv.cc")
CFLAGS = ["-O3", "-march=native", "-fopenmp"]


class _State:
    """What ``configure`` set, and the loaded extension (None until first use, False when it cannot be built)."""

    enabled: bool = True
    threads: Optional[int] = None
    module: Any = None


_STATE = _State()
_LOCK = threading.Lock()


def configure(*, enabled: Optional[bool] = None, threads: Optional[int] = None) -> None:
    """Turn the native kernels on or off and set their thread count (None leaves a setting unchanged)."""
    if enabled is not None:
        _STATE.enabled = bool(enabled)
    if threads is not None:
        _STATE.threads = max(1, int(threads))


def native_threads() -> int:
    if _STATE.threads:
        return _STATE.threads
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return os.uname().machine


def _cache_dir() -> Path:
    import paddle

    key = hashlib.sha256(
        SOURCE.read_bytes() + " ".join(CFLAGS).encode() + paddle.__version__.encode() + _cpu_flags().encode()
    ).hexdigest()[:16]
    return cache_dir() / "native" / key


def _load():
    """The compiled extension module, or False when it cannot be built here (warned once)."""
    if _STATE.module is not None:
        return _STATE.module
    with _LOCK:
        if _STATE.module is not None:
            return _STATE.module
        try:
            with warnings.catch_warnings():
                # Paddle's extension builder warns at import on every run when ccache is absent; we build once per
                # machine and cache the result, so the warning is noise in every `wb` command's output.
                warnings.filterwarnings("ignore", message="No ccache found")
                from paddle.utils.cpp_extension import load

            build = _cache_dir()
            build.mkdir(parents=True, exist_ok=True)
            with open(build / ".lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then loads what the first built
                fresh = not any(build.glob("*.so"))
                if fresh:
                    log.info("building wb's CPU kernels once into %s (~15 s)", build)
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="No ccache found")
                    _STATE.module = load(name="wb_native_kernels", sources=[str(SOURCE)], extra_cxx_cflags=CFLAGS,
                                         extra_ldflags=["-fopenmp"], build_directory=str(build), verbose=False)
        except Exception as exc:  # noqa: BLE001 -- any build failure means: use Paddle's kernels
            log.warning("wb's CPU kernels could not be built (%s: %s); using Paddle's (slower) kernels",
                        type(exc).__name__, str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else "")
            _STATE.module = False
    return _STATE.module


def depthwise_conv2d_op():
    """The compiled ``wb_depthwise_conv2d(x, weight, stride_h, stride_w, pad_h, pad_w, threads)``, or None when
    the native kernels are off or unavailable."""
    if not _STATE.enabled:
        return None
    module = _load()
    return module.wb_depthwise_conv2d if module else None
