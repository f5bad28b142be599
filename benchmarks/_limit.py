"""What these cores can do, and how far a training step is from it.

* :func:`count_step_flops` -- FLOPs of one training step (forward + backward) of an official model, counted per
  layer on the *upstream training graph* (every re-parameterisable branch computed, as upstream's trainer does):
  each convolution, transposed convolution, linear layer and matmul counts ``2 x MACs`` in the forward pass;
  the backward pass counts ``2 x`` the forward (one product for the input gradient, one for the weight gradient).
  Element-wise work (BatchNorm, activations, adds, softmax, the losses) is not counted: it moves memory, it does
  not multiply matrices.
* :func:`peak_gflops` -- sustained fp32 GFLOP/s of these cores in Paddle, at a given thread count: a square GEMM
  (the hardware limit), the NRTR output projection GEMM, and depthwise / pointwise convolutions of PPLCNetV3's
  shapes (forward + backward). Timed by wall clock and by process CPU time: on a shared machine CPU time says
  what the cores did for us, wall time what we got.
* :func:`profile_step` -- where the time of one training step goes, per Paddle operator (forward ops and their
  ``...GradNode`` backward ops), from Paddle's profiler.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FlopCount:
    forward: float = 0.0
    by_kind: dict = field(default_factory=dict)  # "conv dw", "conv", "linear", "matmul", ... -> forward FLOPs

    def add(self, kind: str, flops: float) -> None:
        self.forward += flops
        self.by_kind[kind] = self.by_kind.get(kind, 0.0) + flops

    @property
    def step(self) -> float:
        """Forward + backward (backward = 2 x forward for products)."""
        return 3.0 * self.forward


def _conv_flops(x_shape, w_shape, out_shape, groups: int, transpose: bool) -> float:
    n = x_shape[0]
    if transpose:  # every input position scatters into C_out/groups x k x k outputs
        c_in, h, w = x_shape[1], x_shape[2], x_shape[3]
        macs = n * h * w * c_in * (w_shape[1]) * w_shape[2] * w_shape[3]
    else:
        c_out, h, w = out_shape[1], out_shape[2], out_shape[3]
        macs = n * h * w * c_out * w_shape[1] * w_shape[2] * w_shape[3]
    return 2.0 * macs


@contextlib.contextmanager
def _counting(count: FlopCount):
    """Count products while the block runs: layer hooks for Conv2D / Conv2DTranspose / Linear, wrappers for the
    functional conv2d and for matmul (the attention products)."""
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    def conv_kind(w_shape, groups, c_in):
        if groups > 1 and groups == c_in:
            return "conv depthwise"
        if w_shape[2] == 1 and w_shape[3] == 1:
            return "conv 1x1"
        return "conv kxk"

    def layer_hook(layer, inputs, output):
        x = inputs[0]
        if isinstance(layer, nn.Linear):
            rows = int(np.prod(x.shape[:-1]))
            count.add("linear", 2.0 * rows * layer.weight.shape[0] * layer.weight.shape[1])
        elif isinstance(layer, nn.Conv2DTranspose):
            count.add("conv transpose", _conv_flops(x.shape, layer.weight.shape, output.shape, layer._groups, True))
        elif isinstance(layer, nn.Conv2D):
            kind = conv_kind(layer.weight.shape, layer._groups, x.shape[1])
            count.add(kind, _conv_flops(x.shape, layer.weight.shape, output.shape, layer._groups, False))

    original_conv2d, original_matmul, original_tensor_matmul = F.conv2d, paddle.matmul, paddle.Tensor.matmul

    def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, data_format="NCHW", name=None):
        out = original_conv2d(x, weight, bias, stride, padding, dilation, groups, data_format, name)
        count.add(conv_kind(weight.shape, groups, x.shape[1]), _conv_flops(x.shape, weight.shape, out.shape, groups, False))
        return out

    def matmul(x, y, transpose_x=False, transpose_y=False, name=None):
        out = original_matmul(x, y, transpose_x, transpose_y, name)
        inner = x.shape[-2] if transpose_x else x.shape[-1]
        count.add("matmul", 2.0 * float(np.prod(out.shape)) * inner)
        return out

    hooks = [
        layer.register_forward_post_hook(layer_hook)
        for layer in _ALL_LAYERS
        if isinstance(layer, (nn.Linear, nn.Conv2D, nn.Conv2DTranspose))
    ]
    F.conv2d, paddle.matmul, paddle.Tensor.matmul = conv2d, matmul, matmul
    try:
        yield
    finally:
        F.conv2d, paddle.matmul, paddle.Tensor.matmul = original_conv2d, original_matmul, original_tensor_matmul
        for h in hooks:
            h.remove()


_ALL_LAYERS: list = []


@contextlib.contextmanager
def _upstream_graph():
    """Re-parameterisable layers compute upstream's literal branch sum (every branch), whatever our fast paths do."""
    from workbench.models.backbones.pplcnetv3 import LearnableRepLayer

    fast = LearnableRepLayer.forward
    LearnableRepLayer.forward = LearnableRepLayer.branch_sum
    try:
        yield
    finally:
        LearnableRepLayer.forward = fast


def rec_batch(n: int, max_text_length: int = 25, seed: int = 0, labels: list[str] | None = None):
    """A recognition batch's label tensors: ``labels`` (real texts) or random lengths; CTC + NRTR encodings."""
    rng = np.random.default_rng(seed)
    if labels is None:
        lengths = rng.integers(3, 12, n)
    else:
        lengths = np.array([min(len(t), max_text_length) for t in labels])
    label_ctc = np.zeros((n, max_text_length), "int64")
    label_gtc = np.zeros((n, max_text_length + 2), "int64")
    for i, length in enumerate(lengths):
        label_ctc[i, :length] = rng.integers(1, 90, length)
        label_gtc[i, 0], label_gtc[i, 1 : length + 1], label_gtc[i, length + 1] = 2, label_ctc[i, :length] + 3, 3
    return {"label_ctc": label_ctc, "label_gtc": label_gtc, "length": lengths.astype("int64")}


def count_step_flops(model_name: str, batch: int, image_hw: tuple[int, int], targets: dict | None = None,
                     charset=None) -> FlopCount:
    """Forward FLOPs of one training batch on upstream's training graph (see the module docstring)."""
    import paddle

    from workbench.models import zoo

    model = zoo.build_model(model_name, charset=charset)
    model.train()
    _ALL_LAYERS[:] = model.sublayers()
    count = FlopCount()
    x = paddle.zeros([batch, 3, *image_hw], dtype="float32")
    with paddle.no_grad(), _upstream_graph(), _counting(count):
        if targets is not None:
            model(x, {k: paddle.to_tensor(v) for k, v in targets.items()})
        else:
            model(x)
    _ALL_LAYERS.clear()
    return count


def count_inference_flops(model_name: str, batch: int, image_hw: tuple[int, int], charset=None) -> FlopCount:
    """Forward FLOPs of the deployed graph (re-parameterisable layers fused, eval mode, no NRTR branch)."""
    import paddle

    from workbench.models import zoo
    from workbench.models.rep import fuse_for_inference

    model = fuse_for_inference(zoo.build_model(model_name, charset=charset))
    _ALL_LAYERS[:] = model.sublayers()
    count = FlopCount()
    with paddle.no_grad(), _counting(count):
        model(paddle.zeros([batch, 3, *image_hw], dtype="float32"))
    _ALL_LAYERS.clear()
    return count


# ------------------------------------------------------------------------------------------------ peak


def _timed(fn, repeats: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds) of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def peak_gflops(threads: int, repeats: int = 3) -> dict[str, dict]:
    """GFLOP/s (wall and per CPU-second) of the products a training step is made of, at ``threads`` threads."""
    import paddle
    import paddle.nn.functional as F
    from workbench.engine.device import set_cpu_math_threads

    set_cpu_math_threads(threads)
    rng = np.random.default_rng(0)

    def tensor(*shape, grad=False):
        t = paddle.to_tensor(rng.standard_normal(shape).astype("float32"))
        t.stop_gradient = not grad
        return t

    results = {}

    def record(name, flops, fn):
        wall, cpu = _timed(fn, repeats)
        # per CPU-second: CPU time already sums the threads, so this is what one busy core does
        results[name] = {"gflops_wall": flops / wall / 1e9, "gflops_cpu": flops / cpu / 1e9, "flops": flops}

    a, b = tensor(1024, 1024), tensor(1024, 1024)
    record("GEMM 1024^3", 2 * 1024**3, lambda: paddle.matmul(a, b).numpy())
    h, w = tensor(832, 384), tensor(384, 18387)
    record("GEMM 832x384x18387 (NRTR out)", 2 * 832 * 384 * 18387, lambda: paddle.matmul(h, w).numpy())

    def conv(shape, k, c_out, depthwise):
        """Forward + backward (input and weight gradients) of one conv: 3 x the forward products."""
        n, c, hh, ww = shape
        x = tensor(*shape, grad=True)
        weight = tensor(c_out, 1 if depthwise else c, k, k, grad=True)

        def run():
            y = F.conv2d(x, weight, None, 1, k // 2, groups=c if depthwise else 1)
            y.backward(paddle.ones_like(y))
        return 3 * 2 * n * hh * ww * c_out * (1 if depthwise else c) * k * k, run

    # PPLCNetV3 rec shapes at batch 32, 48x320: 4 stacked depthwise branches early on, pointwise later.
    for name, args in {
        "depthwise 3x3 fwd+bwd (32x32x24x160, 4 branches)": ((32, 32, 24, 160), 3, 128, True),
        "depthwise 5x5 fwd+bwd (32x240x6x80, 4 branches)": ((32, 240, 6, 80), 5, 960, True),
        "pointwise 1x1 fwd+bwd (32x128x12x80 -> 240)": ((32, 128, 12, 80), 1, 240, False),
    }.items():
        record(name, *conv(*args))
    return results


# ------------------------------------------------------------------------------------------------ profile


def profile_step(step_fn, top: int = 12) -> list[tuple[str, float]]:
    """Run ``step_fn`` once under Paddle's profiler; return the ``top`` operators by their share of the summed
    operator time (forward op and its ``GradNode`` listed separately), plus ``other``."""
    import paddle.profiler as profiler
    from paddle.profiler.profiler_statistic import StatisticData

    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU])
    prof.start()
    step_fn()
    prof.step()
    prof.stop()
    stats = StatisticData(prof.profiler_result.get_data(), prof.profiler_result.get_extra_info())
    totals: dict[str, float] = {}
    for name, item in stats.event_summary.items.items():
        totals[name] = totals.get(name, 0.0) + item.cpu_time
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    rows = [(name, t / whole) for name, t in ranked[:top]]
    rows.append(("other", sum(t for _, t in ranked[top:]) / whole))
    return rows
