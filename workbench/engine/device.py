"""Which device Paddle computes on: one decision for training, evaluation, analysis and the launcher.

``want``: ``auto`` (a GPU when Paddle has a usable one, else the CPU), ``cpu``, ``gpu`` or ``gpu:N``. Asking for
a GPU that this Paddle cannot use is a :class:`~workbench.errors.ConfigError` naming ``key`` (the setting it came
from), never a silent fall-back to the CPU.
"""

from __future__ import annotations

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
    """This rank's share of the cores the process may run on (its CPU affinity, else ``os.cpu_count()``): what
    ``trainer.num_threads: null`` trains with and evaluation uses. Paddle's own default is one thread
    (``OMP_NUM_THREADS`` unset); once wb's kernels shared Paddle's OpenMP pool, the second of two cores paid:
    PP-OCRv5_mobile_rec fine-tune steps (frozen BNs, batch 16, Xeon, median of 8-10) 1,680 -> 1,175 ms at width
    320, 832 -> 640 ms at width 96; ``wb train recipe=rec_finetune`` at 48x320 with its 2 loader workers, steps
    5-30: 9.81 -> 13.20 samples/s (``KMP_BLOCKTIME=0``, idle workers sleeping at once: 12.16, not kept)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(world_size)))


def set_device(want: str, *, key: str = "device", local_rank: int = 0, num_threads: Optional[int] = None,
               keep_freed_memory: bool = False, native_kernels: Optional[bool] = None) -> str:
    """Make Paddle compute on ``want`` (this process's GPU is ``gpu:<local_rank>`` unless ``want`` names one);
    ``num_threads`` sets Paddle's CPU math threads (and those of wb's own CPU kernels); on CPU,
    ``keep_freed_memory`` keeps freed tensor memory in the process (:mod:`workbench.engine.host_memory`: up to 2.9x
    faster steps on wide rec batches; the trainer passes ``trainer.keep_freed_memory``); ``native_kernels`` turns
    wb's own CPU kernels on or off (:mod:`workbench.kernels`; None leaves them as they are: on). Returns
    ``"gpu"`` or ``"cpu"``."""
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
            from paddle.base import core  # Paddle 3 has no public setter for its CPU math threads

            core.set_num_threads(int(num_threads))
    return kind
