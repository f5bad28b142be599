"""Evaluation on CPU through Paddle Inference with oneDNN kernels: the graph `wb export` writes, run as PaddleX
runs it, instead of the eager model.

Why: evaluation runs before a fine-tune, at every evaluation step and in `wb eval`; eager Paddle on CPU is slow at
it. Measured on 2 cores (1 thread, PP-OCRv5_mobile_rec, 32 SROIE crops in width buckets of 16; the stock ONNX
graph in onnxruntime as the reference): eager 4.1 s, Paddle Inference with plain kernels 4.1 s, **with oneDNN
1.5-1.8 s**, onnxruntime 1.4-1.5 s (``benchmarks/bench_eval_vs_onnxruntime.py``). The outputs agree with the eager
model to float32 rounding (2e-5 on probabilities). With the deployment folds of the inference copy
(``models.rep.fuse_for_inference(fold_for_deployment=True)``), 2 threads, side by side with onnxruntime: rec 25.1
crops/s (1.37x onnxruntime's time; 13.0 before the folds), det 1.01 receipt pages/s (1.38-1.59x; 0.67 before).

The graph is compiled once per evaluation from the fused inference copy (``engine.trainer.inference_copy``) with
the task's input spec (``Task.eval_input_spec``: the export's own dynamic dimensions), saved to a temporary folder
and loaded by a predictor. ``eval.runtime`` chooses (``workbench.config.schema.EvalConfig``).
"""

from __future__ import annotations

import copy
import ctypes
import functools
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from workbench.engine.device import cpu_math_threads_kept
from workbench.errors import ConfigError

log = logging.getLogger("workbench.eval")

RUNTIMES = ("auto", "eager", "inference")
# oneDNN keeps compiled primitives per input shape; evaluation batches come in many widths (rec) or page sizes
# (det). A bounded cache keeps memory flat at the price of recompiling a shape that comes back.
ONEDNN_CACHE_SHAPES = 32
# Paddle 3.3.1's oneDNN kernel selection prints this debug line to stdout (fd 1, from C++) each time a reduce_mean
# meets a new input shape: dozens of lines per evaluation of a PPLCNetV4 (PP-OCRv6) graph.
PADDLE_STDOUT_NOISE = (b"ReduceMeanCheckIfOneDNNSupport",)


class _WithoutPaddleNoise:
    """Around a predictor call: fd 1 goes to a temporary file, and what was written there comes back to stdout
    less the lines in ``PADDLE_STDOUT_NOISE`` -- nothing else is dropped or reordered within the call. Where fd 1
    cannot be redirected (closed), the call runs as it is: a cosmetic filter never fails an evaluation."""

    def __enter__(self):
        sys.stdout.flush()
        try:
            self._saved = os.dup(1)
        except OSError:
            self._saved = None
            return self
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), 1)
        return self

    def __exit__(self, *exc):
        if self._saved is None:
            return False
        try:
            sys.stdout.flush()
            _flush_c_stdio()
        finally:
            os.dup2(self._saved, 1)
            os.close(self._saved)
        self._file.seek(0)
        written = self._file.read()
        self._file.close()
        kept = b"".join(line for line in written.splitlines(keepends=True)
                        if line.strip() not in PADDLE_STDOUT_NOISE)
        if kept:
            os.write(1, kept)
        return False


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _flush_c_stdio() -> None:
    """C stdio buffers of this process (what C++ wrote through them) reach the file before fd 1 is restored."""
    libc = _libc()
    if libc is not None and hasattr(libc, "fflush"):
        libc.fflush(None)


class CompiledModel:
    """Callable like the eager model on one input batch: ``model(tensor) -> tensor`` (the graph's first output)."""

    def __init__(self, folder: Path, threads: int):
        import paddle.inference as pi

        self.folder = folder
        model_file = folder / "model.json" if (folder / "model.json").is_file() else folder / "model.pdmodel"
        config = pi.Config(str(model_file), str(folder / "model.pdiparams"))
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_mkldnn_cache_capacity(ONEDNN_CACHE_SHAPES)
        config.set_cpu_math_library_num_threads(max(1, int(threads)))
        config.disable_glog_info()
        self.predictor = pi.create_predictor(config)

    def __call__(self, x):
        import paddle

        if not isinstance(x, paddle.Tensor):
            x = paddle.to_tensor(np.ascontiguousarray(x, dtype=np.float32))
        # tensors in and out: no numpy round trip of the (batch, steps, 18k classes) rec output, 3-5 % of a
        # 64-crop batch (64x146x18385, 2 threads: 20.3-24.1 s vs 20.9-24.3 s through copy_from_cpu/copy_to_cpu)
        with _WithoutPaddleNoise(), cpu_math_threads_kept():
            return self.predictor.run([x])[0]

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def compile_for_eval(model, input_spec: list, threads: int) -> CompiledModel:
    """Save a copy of ``model`` (eval mode, fused) as a static graph and load it in a oneDNN predictor; ``model``
    itself stays eager (``to_static`` changes the layer it is given)."""
    import paddle

    folder = Path(tempfile.mkdtemp(prefix="wb-eval-graph-"))
    try:
        static = paddle.jit.to_static(copy.deepcopy(model), input_spec=input_spec, full_graph=True)
        paddle.jit.save(static, str(folder / "model"))
        return CompiledModel(folder, threads)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def check_runtime(runtime: str, device: str) -> None:
    """Refuse an ``eval.runtime`` that cannot run here, when the run starts (not at its first evaluation)."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"eval.runtime={runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime == "inference" and device != "cpu":
        raise ConfigError("eval.runtime=inference compiles for the CPU (oneDNN); on a GPU use auto or eager")


def eval_runner(model, *, runtime: str, input_spec: Callable[[], Optional[list]], device: str, threads: int):
    """What evaluation calls for a batch: ``model`` itself (eager) or its compiled graph.

    ``auto``: compiled on CPU when the task gives an input spec (``input_spec()``, asked only when compiling),
    eager otherwise (GPU: eager kernels are fast there); a graph that fails to compile is logged and evaluated
    eagerly (the same function, only slower). ``inference``: compiled, or the error. ``eager``: never compiled."""
    check_runtime(runtime, device)
    if runtime == "eager" or (runtime == "auto" and device != "cpu"):
        return model
    try:
        spec = input_spec()
        if spec is None:
            if runtime == "inference":
                raise ConfigError("eval.runtime=inference: this task has no evaluation graph (eval_input_spec); "
                                  "use eager")
            return model
        return compile_for_eval(model, spec, threads)
    except Exception as e:  # noqa: BLE001 -- auto falls back to the identical eager function
        if runtime == "inference":
            raise
        last = str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__
        log.warning("evaluation runs eagerly: compiling the model for Paddle Inference failed (%s)", last)
        return model
