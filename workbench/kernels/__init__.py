"""CPU kernels of our own, compiled once per machine with Paddle's C++ extension builder.

Only where Paddle's CPU kernel is the bottleneck of a training step, measured (``benchmarks/bench_native_kernels.py``):

* depthwise convolutions (``depthwise_conv.cc``): Paddle 3.3 runs them at 2-6 GFLOP/s, a third of a
  PP-OCRv5_mobile_rec step and half of a det step for 6-7 % of the FLOPs; ours is 1.8-4.7x faster forward +
  backward on the shapes of PPLCNetV3 (1 thread);
* BatchNorm of stacked re-param branches with their sum (``batch_norm.cc``): Paddle's runs on one thread, and BN
  was 28 % of a rec step with batch statistics; four stacked branches' BNs + their sum, forward + backward at 2
  threads, 103-109 -> 39-40 ms (a single BN keeps Paddle's op: both are bandwidth-bound);
* the stacked depthwise branches with their BNs and sum in one kernel that never holds the branches' outputs
  (``depthwise_branches.cc``, kernel ``branch_recompute``; ``models.ops.batch_norm_sum(..., depthwise=...)``):
  statistics from branch planes computed in cache, the output as one conv with the BN-weighted kernel sum.
* PPLCNetV3's learnable activation ``scale * act(x) + bias`` (``activation_affine.cc``): one pass each way instead
  of three ops, keeping only ``x`` for the backward (Paddle's autograd also keeps ``act(x)``).
* the CTC loss with its gradient (``ctc_loss.cc``): Paddle's warp-ctc wants the 18k-class logits as [T, N, C] (a
  copy) and took 370 ms forward + backward for [32, 40, 18385] at 2 threads (``losses.ctc``);
* a re-parameterisable layer's branches folded into one kernel and bias with their gradient (``rep_fold.cc``):
  with frozen BatchNorms (fine-tunes of imported weights) every step folds every PPLCNetV3 rep layer, ~40 small
  Paddle ops and as many gradient nodes per layer (``LearnableRepLayer.fused_kernel_bias_tensors``);
* dense "same" convolutions with odd kernels, stride 1 (``dense_conv.cc``): Paddle's CPU conv runs the DB neck's and
  head's 3x3 convs at 12-13 GFLOP/s (``models.ops.same_conv2d``);
* pointwise (1x1) convolutions and the CTC heads' projection as oneDNN GEMMs (``pointwise_conv.cc``, ``linear.cc``;
  ``models.ops.conv2d_channel_bias``, ``models.ops.linear_bias_in_gemm``): MKL
  runs its generic code path on AMD CPUs, 50-82 GFLOP/s at 2 threads on Zen 4 where oneDNN's GEMM (the libdnnl
  Paddle bundles) reaches 180-223; on by default only on CPUs that are not Intel's (:func:`default_kernels`), where
  MKL was measured fast (290-359 GFLOP/s, Sapphire Rapids) and oneDNN's GEMM was not measured;
* the weights' moving average (``ema.cc``): ``engine.ema.ModelEMA``'s update of every state entry in one pass, the
  same values as Paddle's per-tensor ops (~90 ms a PP-OCRv5_mobile_rec step with those);
* the optimizer step (``adam.cc``): Paddle's Adam with L2 decay over every parameter in one call
  (``engine.fused_adam``), where Paddle's per-parameter Python and ops took 52-58 ms a rec step (now 25-28);
* per-channel batch statistics and a per-channel affine (``channel_affine.cc``): a depthwise layer's identity BN and
  1x1 branch as one affine of its input, keeping only the input (``models.ops.channel_moments`` / ``channel_affine``).

* Used only when training (eager mode, gradients recorded) on CPU in float32 (``models.ops.depthwise_conv2d``,
  ``models.ops.batch_norm_sum``): an exported or compiled graph (``paddle.jit``) keeps Paddle's own ops, which
  PaddleX and Paddle Inference know; inference under ``no_grad`` keeps Paddle's rounding (parity with onnxruntime
  is checked to 1e-4); GPU and AMP keep Paddle's kernels. The two that serve the training loop rather than the
  model (the weights' average, the optimizer step) run under ``no_grad`` by nature, on CPU float32 tensors only.
* Compiled on first use (~15 s, a C++ compiler is needed) into ``<cache_dir>/native/<key>``; the key
  covers the source, the compile and link flags, the Paddle version and the CPU's instruction-set flags (the code
  is built for this CPU). A file lock keeps two processes from building the same one at once. Linked against
  Paddle's own OpenMP runtime (``_ldflags``): one thread pool, not two fighting over the cores.
* If building fails (no compiler, ...), one warning line and Paddle's kernels are used: slower, never wrong.
* ``configure(enabled=False)`` (``trainer.native_kernels=false``) turns them off; ``threads`` follows
  ``trainer.num_threads`` (the trainer's default: this rank's share of the cores; outside it ``OMP_NUM_THREADS``,
  else 1 -- Paddle's own default).
"""

from __future__ import annotations

import contextlib
import functools
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

__all__ = ["DEFAULT_KERNELS", "KERNELS", "activation_affine_op", "adam_update_op", "batch_norm_sum_op",
           "branch_recompute_ops", "channel_affine_ops", "channel_bias_activation_affine_op", "configure",
           "ctc_loss_op", "default_kernels", "dense_conv2d_op", "depthwise_conv2d_op", "linear_op", "native_threads",
           "pointwise_conv2d_op", "rep_fold_ops", "training_applies"]

SOURCES = tuple(Path(__file__).with_name(name)
                for name in ("depthwise_conv.cc", "depthwise_branches.cc", "batch_norm.cc",
                                                  "activation_affine.cc", "channel_affine.cc", "ctc_loss.cc",
                                                  "dense_conv.cc", "rep_fold.cc", "ema.cc", "adam.cc"))
#: Built only where Paddle bundles oneDNN (``libdnnl.so.3``), linked against it.
ONEDNN_SOURCES = (Path(__file__).with_name("pointwise_conv.cc"), Path(__file__).with_name("linear.cc"))
HEADERS = tuple(Path(__file__).with_name(name) for name in ("channel_stats.h", "depthwise_rows.h", "flat_shares.h"))  # included by the sources: part of the build key
CFLAGS = ["-O3", "-march=native", "-fopenmp"]


#: Every kernel of this module; ``configure(kernels=...)`` picks a subset (the benchmarks measure each one's share).
KERNELS = ("depthwise_conv", "batch_norm", "branch_recompute", "activation_affine", "channel_affine", "ctc_loss",
           "dense_conv", "rep_fold", "ema", "adam", "onednn_gemm")
#: All on by default, but ``onednn_gemm`` only on CPUs that are not Intel's (:func:`default_kernels`). (The
#: BatchNorm ones were opt-in while export verification's float32-noise bound did not count the exported graph's
#: own rounding: 4-step test det models trained with them then exceeded it.)
DEFAULT_KERNELS = KERNELS


def _cpu_vendor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def default_kernels() -> frozenset:
    """:data:`DEFAULT_KERNELS` for this CPU: oneDNN's GEMM for pointwise convolutions and the CTC projection where MKL
    is slow (every CPU but Intel's; measured on AMD EPYC Zen 4), MKL's where it was measured fast (Intel)."""
    if _cpu_vendor() == "GenuineIntel":
        return frozenset(DEFAULT_KERNELS) - {"onednn_gemm"}
    return frozenset(DEFAULT_KERNELS)


class _State:
    """What ``configure`` set, and the loaded extension (None until first use, False when it cannot be built)."""

    enabled: bool = True
    kernels: frozenset = default_kernels()
    threads: Optional[int] = None
    module: Any = None


_STATE = _State()
_LOCK = threading.Lock()


def configure(*, enabled: Optional[bool] = None, threads: Optional[int] = None,
              kernels: Optional[tuple[str, ...]] = None) -> None:
    """Turn the native kernels on or off, choose which of :data:`KERNELS` are used (benchmarks measure each one's
    share) and set their thread count (None leaves a setting unchanged)."""
    if enabled is not None:
        _STATE.enabled = bool(enabled)
    if kernels is not None:
        unknown = set(kernels) - set(KERNELS)
        if unknown:
            raise ValueError(f"unknown native kernels {sorted(unknown)}; known: {', '.join(KERNELS)}")
        _STATE.kernels = frozenset(kernels)
    if threads is not None:
        _STATE.threads = max(1, int(threads))


def native_threads() -> int:
    if _STATE.threads:
        return _STATE.threads
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


def training_applies(*tensors) -> bool:
    """Whether wb's kernels serve a computation on ``tensors``: training only -- eager mode, gradients recorded for
    at least one of them, all on CPU in float32. Inference under ``no_grad``, static graphs (export, compiled eval),
    GPU and AMP keep Paddle's ops."""
    import paddle

    return (
        paddle.in_dynamic_mode()
        and paddle.is_grad_enabled()
        and not all(t.stop_gradient for t in tensors)
        and all(t.place.is_cpu_place() and t.dtype == paddle.float32 for t in tensors)
    )


def _ldflags() -> list[str]:
    """Link the kernels' OpenMP calls against the runtime Paddle's own CPU kernels use (the ``libiomp5`` its wheels
    bundle), so one thread pool serves both. Linked against GCC's ``libgomp`` instead (what ``-fopenmp`` links), a
    step ran two pools of ``trainer.num_threads`` threads on as many cores, each runtime's idle workers spinning
    while the other's worked. Measured (2 threads, Xeon, alternating, median of 10-15 steps): PP-OCRv5_mobile_rec
    with frozen BNs, batch 16, width 96: 763 / 779 -> 566 / 594 ms a step (involuntary context switches 304 -> 20
    a step), width 320: 1,557 -> 1,292 ms, batch 1: 231 -> 126 ms; PP-OCRv5_mobile_det batch 4 640^2 (batch
    statistics): 3.19 / 3.23 -> 2.42 / 2.48 s. Without a bundled ``libiomp5`` (other Paddle builds): ``-fopenmp``."""
    import paddle

    libs = Path(paddle.__file__).parent / "libs"
    onednn = ["-l:libdnnl.so.3"] if _onednn_available() else []
    if (libs / "libiomp5.so").is_file():
        return [f"-L{libs}", "-l:libiomp5.so", *onednn, f"-Wl,-rpath,{libs}"]
    return ["-fopenmp", *([f"-L{libs}", *onednn, f"-Wl,-rpath,{libs}"] if onednn else [])]


@functools.lru_cache(maxsize=None)
def _onednn_available() -> bool:
    """Whether this Paddle bundles the oneDNN library the ``onednn_gemm`` kernels link against (asked on every
    training call of a pointwise conv: looked up once)."""
    import paddle

    return (Path(paddle.__file__).parent / "libs" / "libdnnl.so.3").is_file()


def _sources() -> tuple[Path, ...]:
    return SOURCES + (ONEDNN_SOURCES if _onednn_available() else ())


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
        b"".join(source.read_bytes() for source in _sources() + HEADERS)
        + " ".join(CFLAGS + _ldflags()).encode()
        + paddle.__version__.encode()
        + _cpu_flags().encode()
    ).hexdigest()[:16]
    return cache_dir() / "native" / key


@contextlib.contextmanager
def _child_warnings_ignored(message: str):
    """The extension build runs a Python child process that imports Paddle's builder, which warns again there: the
    child inherits ``PYTHONWARNINGS`` with ``message`` ignored for the duration (restored afterwards)."""
    before = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [before, f"ignore:{message}"]))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = before


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
                with warnings.catch_warnings(), _child_warnings_ignored("No ccache found"):
                    warnings.filterwarnings("ignore", message="No ccache found")
                    _STATE.module = load(name="wb_native_kernels", sources=[str(source) for source in _sources()],
                                         extra_cxx_cflags=CFLAGS, extra_ldflags=_ldflags(),
                                         build_directory=str(build), verbose=False)
        except Exception as exc:  # noqa: BLE001 -- any build failure means: use Paddle's kernels
            log.warning("wb's CPU kernels could not be built (%s: %s); using Paddle's (slower) kernels",
                        type(exc).__name__, str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else "")
            _STATE.module = False
    return _STATE.module


def _ops(kernels: set[str], *names: str) -> Optional[tuple]:
    """The compiled ops ``names`` when every kernel in ``kernels`` is switched on and the extension is built, else
    None (Paddle's kernels are used)."""
    if not _STATE.enabled or not kernels <= _STATE.kernels:
        return None
    module = _load()
    return tuple(getattr(module, name) for name in names) if module else None


def depthwise_conv2d_op():
    """The compiled ``wb_depthwise_conv2d(x, weight, stride_h, stride_w, pad_h, pad_w, threads)``, or None when
    the native kernels are off or unavailable."""
    ops = _ops({"depthwise_conv"}, "wb_depthwise_conv2d")
    return ops and ops[0]


def batch_norm_sum_op():
    """The compiled ``wb_batch_norm_sum(z, weight, bias, running_mean, running_var, epsilon, training, groups,
    threads) -> (y, mean, var)``, or None when the native kernels are off or unavailable."""
    ops = _ops({"batch_norm"}, "wb_batch_norm_sum")
    return ops and ops[0]


def branch_recompute_ops():
    """``(wb_depthwise_branches, wb_depthwise_branches_bwd)``: the stacked depthwise branches, their BNs and sum,
    forward and backward as plain ops (``models.ops.batch_norm_sum(..., depthwise=...)`` writes the backward), or
    None when off or unavailable."""
    return _ops({"depthwise_conv", "batch_norm", "branch_recompute"}, "wb_depthwise_branches",
                "wb_depthwise_branches_bwd")


def activation_affine_op():
    """The compiled ``wb_activation_affine(x, scale, bias, relu, threads) -> scale * act(x) + bias``, or None when
    the native kernels are off or unavailable."""
    ops = _ops({"activation_affine"}, "wb_activation_affine")
    return ops and ops[0]


def channel_bias_activation_affine_op():
    """The compiled ``wb_channel_bias_activation_affine(x, channel_bias, scale, bias, relu, threads) -> scale *
    act(x + channel_bias[c]) + bias`` (x NCHW), or None when the native kernels are off or unavailable."""
    ops = _ops({"activation_affine"}, "wb_channel_bias_activation_affine")
    return ops and ops[0]


def channel_affine_ops():
    """``(wb_channel_moments, wb_channel_moments_bwd, wb_channel_affine)``, or None when the native kernels are off
    or unavailable."""
    return _ops({"channel_affine"}, "wb_channel_moments", "wb_channel_moments_bwd", "wb_channel_affine")


def ctc_loss_op():
    """The compiled ``wb_ctc_loss(logits [N, T, C], labels [N, L], label_lengths int64 [N], blank, threads) ->
    (loss [N], grad [N, T, C])``, or None when the native kernels are off or unavailable."""
    ops = _ops({"ctc_loss"}, "wb_ctc_loss")
    return ops and ops[0]


def dense_conv2d_op():
    """The compiled ``wb_dense_conv2d(x [N, C, H, W], weight [O, C, K, K], threads)`` ("same" padding K/2, stride
    1), or None when the native kernels are off or unavailable."""
    ops = _ops({"dense_conv"}, "wb_dense_conv2d")
    return ops and ops[0]


def rep_fold_ops():
    """``(wb_rep_fold, wb_rep_fold_bwd)``: a rep layer's branches and BNs folded into one kernel and bias, forward
    and backward as plain ops (``models.backbones.pplcnetv3`` writes the autograd node), or None when off or
    unavailable."""
    return _ops({"rep_fold"}, "wb_rep_fold", "wb_rep_fold_bwd")


def pointwise_conv2d_op():
    """The compiled ``wb_pointwise_conv2d(x [N, C, H, W], weight [O, C, 1, 1], threads)`` with its gradient, or None
    when the native kernels are off or unavailable, or this Paddle bundles no oneDNN."""
    return _onednn_op("wb_pointwise_conv2d")


def linear_op():
    """The compiled ``wb_linear(x [R, K], w [K, O]) -> x w`` with its gradient (oneDNN's GEMM), or None when the
    native kernels are off or unavailable, or this Paddle bundles no oneDNN."""
    return _onednn_op("wb_linear")


def _onednn_op(name: str):
    """The compiled oneDNN GEMM op ``name`` when ``onednn_gemm`` is on and this Paddle bundles oneDNN, else None."""
    if not _onednn_available():
        return None
    ops = _ops({"onednn_gemm"}, name)
    return ops and ops[0]


def ema_update_op():
    """The compiled ``wb_ema_update(shadows, params, decay, weight, threads)``: ``shadow = shadow * decay + param *
    weight`` for every pair, in place (CPU float32), or None when the native kernels are off or unavailable."""
    ops = _ops({"ema"}, "wb_ema_update")
    return ops and ops[0]


def adam_update_op():
    """The compiled ``wb_adam_update(params, grads, moment1, moment2, beta1_pow, beta2_pow, lr [P], decay [P], beta1,
    beta2, epsilon, threads)``: one Adam step with L2 decay over every parameter, in place (CPU float32), or None when the
    native kernels are off or unavailable."""
    ops = _ops({"adam"}, "wb_adam_update")
    return ops and ops[0]
