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
