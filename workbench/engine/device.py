"""Which device Paddle computes on: one decision for training, evaluation, analysis and the launcher.

``want``: ``auto`` (a GPU when Paddle has a usable one, else the CPU), ``cpu``, ``gpu`` or ``gpu:N``. Asking for
a GPU that this Paddle cannot use is a :class:`~workbench.errors.ConfigError` naming ``key`` (the setting it came
from), never a silent fall-back to the CPU.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import subprocess
import sys
from typing import Optional

from workbench.errors import ConfigError


def gpu_available() -> bool:
    import paddle

    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def device_kind(want: str, key: str = "device") -> str:
    """``"gpu"`` or ``"cpu"`` for ``want``."""
    if want not in ("auto", "cpu", "gpu") and not want.startswith("gpu:"):
        raise ConfigError(f"{key}={want!r}: choose auto, cpu, gpu or gpu:N")
    if want == "cpu":
        return "cpu"
    has_gpu = gpu_available()
    if want.startswith("gpu") and not has_gpu:
        raise ConfigError(f"{key}={want} but this Paddle has no usable GPU (install paddlepaddle-gpu)")
    return "gpu" if has_gpu else "cpu"


def default_cpu_threads(world_size: int = 1) -> int:
    """What ``trainer.num_threads: null`` trains with and evaluation uses: ``OMP_NUM_THREADS`` when it says more
    than 1, else this rank's share of the cores the process may use (its CPU affinity, capped by a cgroup CPU quota
    as containers set it). ``OMP_NUM_THREADS=1`` cannot be told from unset: Paddle writes 1 there at import when it
    is unset (``trainer.num_threads=1`` says one thread). Paddle's own default is one thread; since wb's kernels
    share Paddle's OpenMP pool the second of two cores pays: ``wb train recipe=rec_finetune`` at 48x320, 2 loader
    workers, steps 5-30, 9.7-9.9 -> 13.1-15.8 samples/s (Xeon, 2 cores, README "How fast")."""
    import os

    try:
        said = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        said = 0
    if said > 1:
        return said
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores // max(1, int(world_size)))


def _cgroup_cpu_quota() -> Optional[int]:
    """CPUs a container may use (cgroup v2 ``cpu.max``, v1 ``cfs_quota_us``), rounded up; None when unlimited.
    The affinity mask of a container shows all the host's cores."""
    import math
    from pathlib import Path

    for path, period_path in (("/sys/fs/cgroup/cpu.max", None),
                              ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            fields = Path(path).read_text().split()
            if period_path:
                fields.append(Path(period_path).read_text().strip())
            quota, period = fields[0], fields[1]
            if quota in ("max", "-1"):
                return None
            return max(1, math.ceil(int(quota) / int(period)))
        except (OSError, ValueError, IndexError):
            continue
    return None


# MKL's conditional numerical reproducibility: MKL_CBWR_AUTO, MKL_CBWR_COMPATIBLE, MKL_CBWR_STRICT (mkl_cbwr.h)
_CBWR_AUTO, _CBWR_COMPATIBLE, _CBWR_STRICT = 2, 3, 0x10000


# A child process tries a mode first: on AMD EPYC (Zen 4, AVX-512) MKL's double-precision GEMM dies with SIGILL under
# CBWR AUTO (with or without STRICT; the fixed AVX2 / AVX-512 branches are refused there, COMPATIBLE runs), and a
# process in such a mode cannot leave it -- export verification's float64 reference model then killed the run.
_PROBE_MODE = """
import ctypes, os, sys
libs = sys.argv[1]
ctypes.CDLL(os.path.join(libs, "libiomp5.so"), mode=ctypes.RTLD_GLOBAL)
mkl = ctypes.CDLL(os.path.join(libs, "libmklml_intel.so"))
mkl.mkl_serv_cbwr_set.argtypes = [ctypes.c_int]
if mkl.mkl_serv_cbwr_set(int(sys.argv[2])) != 0:
    sys.exit(3)
n = 64
for gemm, real in ((mkl.cblas_sgemm, ctypes.c_float), (mkl.cblas_dgemm, ctypes.c_double)):
    a, c = (real * (n * n))(*[1.0] * (n * n)), (real * (n * n))()
    gemm(101, 111, 111, n, n, n, real(1.0), a, n, a, n, real(0.0), c, n)
    if c[0] != n:
        sys.exit(4)
"""


# AUTO picks the CPU's fastest code path (Intel); COMPATIBLE is MKL's path for any x86 CPU, the one that runs on
# AMD Zen 4 -- single-precision GEMM there at 39-42 GFLOP/s a thread in either mode (512^3, 2026-12-06)
_STRICT_MODES = {_CBWR_AUTO | _CBWR_STRICT: "AUTO,STRICT", _CBWR_COMPATIBLE | _CBWR_STRICT: "COMPATIBLE,STRICT"}


def _paddle_libs() -> str:
    """The folder of the MKL (and OpenMP) libraries Paddle's CPU math runs on."""
    import os

    import paddle

    return os.path.join(os.path.dirname(paddle.__file__), "libs")


@functools.lru_cache(maxsize=None)
def _mode_runs_here(libs: str, mode: int) -> Optional[str]:
    """None when MKL's single and double GEMMs run in ``mode`` on this CPU (tried in a child process), else why not."""
    try:
        r = subprocess.run([sys.executable, "-I", "-c", _PROBE_MODE, libs, str(mode)], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"its trial did not finish ({e})"
    if r.returncode == 0:
        return None
    if r.returncode < 0:
        return f"MKL's GEMM died with {signal.Signals(-r.returncode).name} in it"
    return f"its trial exited with status {r.returncode}"


def reproducible_cpu_math() -> Optional[bool]:
    """Put the MKL that Paddle's CPU math calls into its strict reproducible mode (``MKL_CBWR=AUTO,STRICT``).

    Why: at 2+ threads MKL's GEMM may round differently with the memory alignment of its operands (Intel's
    "conditional numerical reproducibility"), so the same step can end on other bits once the allocator hands out
    other addresses -- which is what a resumed run sees: at 2 threads a rec run resumed at step 3 ended 8e-6 away
    from the uninterrupted one (two uninterrupted runs were equal, and so was every forward + backward repeated in
    one process); in strict mode it is bit-exact (``MKL_CBWR=AUTO`` without ``STRICT`` was not). It costs nothing
    measurable (rec fine-tune steps, batch 16, 48x320, median of 8, two runs each: 2 threads 909-1,029 vs
    995-1,002 ms, 1 thread 1,453-1,558 vs 1,419-1,442 ms). MKL takes the mode only before its first call in the
    process: ``wb`` sets it when it sets the device, before any model exists. A child process tries the mode
    first (once per process, ~0.1 s): where MKL crashes in it (AMD EPYC Zen 4: SIGILL in its double GEMM) the
    strict mode of MKL's COMPATIBLE path is tried next (it runs there; its results differ between 1 and 2 threads,
    see :func:`cpu_math_threads_kept`); where neither runs, the mode stays off with one warning line -- a resume at 2+
    threads may then differ in the last bits.

    Returns True when the mode is in effect, False when MKL already ran in another mode (it can no longer be
    changed: start a fresh process, or export ``MKL_CBWR=AUTO,STRICT``, ``COMPATIBLE,STRICT`` on AMD), None when
    this Paddle has no MKL or MKL cannot run in either strict mode on this CPU."""
    import ctypes
    import os

    libs = _paddle_libs()
    path = os.path.join(libs, "libmklml_intel.so")
    if not os.path.exists(path):
        return None
    try:
        mkl = ctypes.CDLL(path)
        get, put = mkl.mkl_serv_cbwr_get, mkl.mkl_serv_cbwr_set  # mkl_cbwr_get/set, as MKLML exports them
    except (OSError, AttributeError):
        return None
    get.argtypes, get.restype, put.argtypes, put.restype = [ctypes.c_int], ctypes.c_int, [ctypes.c_int], ctypes.c_int
    if get(-1) & _CBWR_STRICT:  # MKL_CBWR_ALL: the whole current setting
        return True
    why_not = []
    for mode in _STRICT_MODES:
        why = _mode_runs_here(libs, mode)
        if why is None:
            return put(mode) == 0
        why_not.append(f"{_STRICT_MODES[mode]}: {why}")
    _warn_once(f"MKL's reproducible mode left off ({'; '.join(why_not)} on this CPU): a run resumed at 2+ threads "
               "may differ from an uninterrupted one in the last bits")
    return None


@functools.lru_cache(maxsize=None)
def _openmp_max_threads():
    """Paddle's OpenMP library's ``omp_get_max_threads``, or None where this Paddle ships none."""
    import ctypes
    import os

    path = os.path.join(_paddle_libs(), "libiomp5.so")
    try:
        return ctypes.CDLL(path).omp_get_max_threads if os.path.exists(path) else None
    except (OSError, AttributeError):
        return None


def cpu_math_threads() -> Optional[int]:
    """The threads Paddle's CPU math runs on now (OpenMP's, which ``core.set_num_threads`` sets with MKL's), or None
    where this Paddle ships no OpenMP library."""
    get = _openmp_max_threads()
    return None if get is None else int(get())


@contextlib.contextmanager
def cpu_math_threads_kept():
    """Around a Paddle Inference predictor's ``run``: Paddle's CPU math threads are what they were before it.

    Why: the predictor sets them to its config's count for the run and to **1** after it (Paddle 3.3.1: OpenMP's
    and MKL's max threads 2 -> 1 after one run). A trainer that evaluates through a predictor
    (``engine.compiled_eval``) then trained on with Paddle's own ops single-threaded: PP-OCRv5_mobile_rec steps at
    batch 32 took 9.5-10.2 s instead of 6.2-6.9 s, det at batch 4 3.3 s instead of 2.6-3.0 s (2 threads, AMD EPYC);
    and a run resumed after an evaluation trained at other thread counts than the uninterrupted one, so it ended on
    other bits where MKL rounds differently at 1 and 2 threads (COMPATIBLE mode, AMD)."""
    before = cpu_math_threads()
    try:
        yield
    finally:
        if before and cpu_math_threads() != before:
            set_cpu_math_threads(before)


def set_cpu_math_threads(n: int) -> None:
    """Set Paddle's CPU math threads (OpenMP's and MKL's)."""
    from paddle.base import core  # Paddle 3 has no public setter for its CPU math threads

    core.set_num_threads(int(n))


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    logging.getLogger("workbench").warning(message)


def set_device(want: str, *, key: str = "device", local_rank: int = 0, num_threads: Optional[int] = None,
               keep_freed_memory: bool = False, native_kernels: Optional[bool] = None) -> str:
    """Make Paddle compute on ``want`` (this process's GPU is ``gpu:<local_rank>`` unless ``want`` names one);
    ``num_threads`` sets Paddle's CPU math threads (and those of wb's own CPU kernels); on CPU,
    ``keep_freed_memory`` keeps freed tensor memory in the process (:mod:`workbench.engine.host_memory`: up to 2.9x
    faster steps on wide rec batches; the trainer passes ``trainer.keep_freed_memory``); ``native_kernels`` turns
    wb's own CPU kernels on or off (:mod:`workbench.kernels`; None leaves them as they are: on). The CPU also gets
    MKL's reproducible mode (:func:`reproducible_cpu_math`), or one warning line where it is too late for it.
    Returns ``"gpu"`` or ``"cpu"``."""
    from workbench import kernels

    kernels.configure(enabled=native_kernels, threads=num_threads)
    import paddle

    kind = device_kind(want, key)
    if kind == "gpu":
        paddle.set_device(want if want.startswith("gpu:") else f"gpu:{local_rank}")
    else:
        paddle.set_device("cpu")
        if keep_freed_memory:
            from workbench.engine.host_memory import keep_freed_memory as keep

            keep()
        if num_threads:
            set_cpu_math_threads(num_threads)
        # every wb process in the same mode, whatever its threads: a run resumed in another process ends on the
        # same bits (the mode also changes MKL's rounding at 1 thread)
        if reproducible_cpu_math() is False:
            logging.getLogger("workbench").warning(
                "MKL already ran in this process outside its reproducible mode: a resume in a fresh process may "
                "differ in the last bits (export MKL_CBWR=AUTO,STRICT -- COMPATIBLE,STRICT on AMD -- before starting "
                "Python)")
    return kind
