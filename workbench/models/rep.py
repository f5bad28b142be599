"""Prepare a trained model for export: the inference graph of the official models.

* Every re-parameterisable layer (anything with a ``rep()`` method, e.g. PPLCNetV3's ``LearnableRepLayer``)
  folds its training branches into one conv, in place. Outputs in eval mode are unchanged up to float32
  rounding (tests hold them to 1e-5).
* The model is put in eval mode (the inference graph is the eval forward: DB probability map / CTC probs).
* Optionally, heads drop branches that only training uses (``drop_training_branches()``: DBHead's ``thresh``,
  MultiHead's NRTR branch), so the state dict holds only what the inference graph reads.

Un-fusing (importing inference graphs, ``workbench.weights.importers``): fusion loses information -- many branch
configurations sum to the same kernel -- so :func:`unfuse_rep_layer` picks one that computes the same function
and trains well, and :func:`calibrate_batch_norms` then sets the BatchNorm running statistics to the statistics
of real inputs without changing the eval output (see both docstrings for why).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import paddle
import paddle.nn as nn

__all__ = [
    "calibrate_batch_norms",
    "fuse_for_inference",
    "is_fused",
    "rep_layers",
    "set_identity_affine",
    "recentre_batch_norm",
    "unfuse_rep_layer",
]


def rep_layers(model: nn.Layer) -> list[nn.Layer]:
    """Every re-parameterisable layer of ``model`` (anything with a ``rep()`` method), in sublayer order."""
    return _rep_layers(model)


def _rep_layers(model: nn.Layer) -> list[nn.Layer]:
    return [layer for layer in model.sublayers(include_self=True) if callable(getattr(layer, "rep", None))]


def fuse_for_inference(model: nn.Layer, *, drop_training_branches: bool = False,
                       fold_for_deployment: bool = False) -> nn.Layer:
    """Fuse ``model`` in place for export and return it (in eval mode). Idempotent.

    ``fold_for_deployment``: also call every layer's ``fold_for_deployment()`` (the deployment-fold protocol:
    rewrites that keep the function but not upstream's training arithmetic or state-dict layout -- PPLCNetV3's rep
    layers and blocks fold their constant affines into the convs next to them, the DB branches their BatchNorm after
    a transposed conv, RSEFPN's residual SE computes x * (1 + g)) -- the graph evaluation and export run.
    Measured with ``benchmarks/bench_eval_vs_onnxruntime.py`` (2 threads, side by side with onnxruntime on the
    stock graphs): PP-OCRv5_mobile_rec 13.0 -> 25.1 crops/s (2.62x -> 1.37x onnxruntime's time),
    PP-OCRv5_mobile_det with the faster ``upsample_nearest`` 0.67 -> 1.01 receipt pages/s (2.34x -> 1.38-1.59x).
    Without it the fused model has the layout of upstream's inference graphs, which weight importers map onto."""
    model.eval()
    for layer in _rep_layers(model):
        layer.rep()
    if drop_training_branches:
        for layer in model.sublayers(include_self=True):
            drop = getattr(layer, "drop_training_branches", None)
            if callable(drop):
                drop()
    if fold_for_deployment:
        for layer in model.sublayers(include_self=True):
            fold = getattr(layer, "fold_for_deployment", None)
            if callable(fold):
                fold()
    return model


def is_fused(model: nn.Layer) -> bool:
    """True when every re-parameterisable layer of ``model`` has been fused."""
    return all(getattr(layer, "is_repped", False) for layer in _rep_layers(model))


# ----------------------------------------------------------------------------------------------- un-fusing

_BATCH_NORMS = (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D)


def _set(param, value) -> None:
    param.set_value(np.asarray(value, dtype=np.float32).reshape(param.shape))


def set_identity_affine(bn: nn.Layer, shift=None) -> None:
    """Make ``bn`` (eval mode) compute ``x + shift``: gamma 1, beta ``shift``, mean 0, variance ``1 - eps``.

    The placeholder state of a BatchNorm whose statistics are not known yet (a BN folded into the preceding conv
    by an exporter); :func:`calibrate_batch_norms` replaces the statistics by real ones, keeping the function.
    """
    channels = bn.weight.shape[0]
    _set(bn.weight, np.ones(channels))
    _set(bn.bias, np.zeros(channels) if shift is None else shift)
    _set(bn._mean, np.zeros(channels))
    _set(bn._variance, np.full(channels, 1.0 - bn._epsilon))


def _set_zero_gain(bn: nn.Layer) -> None:
    """gamma = beta = 0: the branch outputs exactly 0 in eval *and* train mode, and still gets a gradient on gamma."""
    channels = bn.weight.shape[0]
    _set(bn.weight, np.zeros(channels))
    _set(bn.bias, np.zeros(channels))
    _set(bn._mean, np.zeros(channels))
    _set(bn._variance, np.ones(channels))


@paddle.no_grad()
def unfuse_rep_layer(layer: nn.Layer, kernel: np.ndarray, bias: np.ndarray, *, rng: np.random.Generator,
                     jitter: float = 0.1) -> None:
    """Set the training branches of an un-fused ``LearnableRepLayer`` so that its eval-mode branch sum is the
    single conv ``(kernel, bias)`` of an inference graph (``lab`` / ``act`` are not touched: copy them as they are).

    The branch sum is linear, so any split works for eval; this one is chosen for fine-tuning:

    * The ``n`` kxk branches share the kernel: ``W_b = kernel / n + d_b`` where the ``d_b`` are small random
      perturbations (``jitter`` x the per-output-channel std of ``kernel / n``) that sum to 0 over the branches.
      Identical branches would receive identical gradients and stay identical forever (the layer would train
      as one branch); the zero-sum perturbation breaks that tie without changing the sum. Each branch's
      BatchNorm starts as an identity affine carrying ``bias / n``.
    * The 1x1 branch and the identity branch start at zero gain (BN gamma = beta = 0): they contribute exactly
      0 in eval *and* train mode (so nothing jumps when training starts), their conv keeps its fresh init, and
      gamma gets a gradient, so fine-tuning can grow them -- the "zero-init residual" trick.

    Afterwards, call :func:`calibrate_batch_norms` on real-looking inputs: it gives every branch BN the running
    statistics of its actual input (still the same eval function), so that train-mode BatchNorm -- which
    normalises with batch statistics -- computes nearly what eval mode does from the first step.
    """
    if getattr(layer, "is_repped", False):
        raise ValueError("unfuse_rep_layer needs the training form of the layer (it is already fused)")
    kernel = np.asarray(kernel, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    expected = (layer.out_channels, layer.in_channels // layer.groups, layer.kernel_size, layer.kernel_size)
    if kernel.shape != expected or bias.shape != (layer.out_channels,):
        raise ValueError(f"unfuse_rep_layer: kernel {kernel.shape} / bias {bias.shape} do not fit {expected}")
    branches = list(layer.conv_kxk)
    n = len(branches)
    share = kernel / n
    if n > 1 and jitter > 0:
        scale = share.reshape(share.shape[0], -1).std(axis=1).reshape(-1, 1, 1, 1)
        noise = rng.standard_normal((n, *share.shape)) * scale * jitter
        noise -= noise.mean(axis=0, keepdims=True)  # sums to 0 over the branches
    else:
        noise = np.zeros((n, *share.shape))
    for index, branch in enumerate(branches):
        _set(branch.conv.weight, share + noise[index])
        set_identity_affine(branch.bn, bias / n)
    if layer.conv_1x1 is not None:
        _set_zero_gain(layer.conv_1x1.bn)
    if layer.identity is not None:
        _set_zero_gain(layer.identity)


@paddle.no_grad()
def recentre_batch_norm(bn: nn.Layer, mean: np.ndarray, var: np.ndarray) -> None:
    """Give ``bn`` the running statistics ``mean`` / ``var`` and adjust gamma / beta so that its eval-mode
    function ``y = s * x + t`` (``s = gamma / sqrt(var + eps)``, ``t = beta - mean * s``) stays the same."""
    eps = bn._epsilon
    gamma = bn.weight.numpy().astype(np.float64)
    beta = bn.bias.numpy().astype(np.float64)
    scale = gamma / np.sqrt(bn._variance.numpy().astype(np.float64) + eps)
    shift = beta - bn._mean.numpy().astype(np.float64) * scale
    mean = np.asarray(mean, dtype=np.float64)
    var = np.maximum(np.asarray(var, dtype=np.float64), 0.0)
    _set(bn._mean, mean)
    _set(bn._variance, var)
    _set(bn.weight, scale * np.sqrt(var + eps))
    _set(bn.bias, shift + mean * scale)


class _Moments:
    """Per-channel running sums over N, H, W (float64) for the mean and biased variance of a BN's input."""

    def __init__(self):
        self.count = 0
        self.total = None
        self.squares = None

    def add(self, z) -> None:
        axes = [0] + list(range(2, len(z.shape)))
        z64 = z.astype("float64")
        total = z64.sum(axis=axes).numpy()
        squares = (z64 * z64).sum(axis=axes).numpy()
        self.count += int(np.prod([z.shape[a] for a in axes]))
        self.total = total if self.total is None else self.total + total
        self.squares = squares if self.squares is None else self.squares + squares

    def mean_var(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.total / self.count
        return mean, np.maximum(self.squares / self.count - mean * mean, 0.0)


@paddle.no_grad()
def calibrate_batch_norms(model: nn.Layer, batches: Iterable, *, batch_norms: Iterable[nn.Layer] = (),
                          rep: bool = True) -> int:
    """Set BatchNorm running statistics to those of the inputs they see on ``batches``, keeping every eval
    output unchanged (:func:`recentre_batch_norm`). Returns how many BN layers were calibrated.

    ``rep``: every branch BN of every un-fused ``LearnableRepLayer`` (their inputs are computed from the layer's
    input: in eval mode the layer fuses its branches on the fly and never calls them); ``batch_norms``: further
    BN layers (e.g. BNs an exporter had folded away), observed through their own forward.

    Why it matters: an imported graph only fixes the eval function. Train-mode BatchNorm normalises by batch
    statistics, so with placeholder statistics (mean 0, variance 1) the first training step would see a very
    different network. With the statistics of realistic inputs, train and eval mode agree at the start.
    """
    was_training = model.training
    model.eval()
    moments: dict[int, tuple[nn.Layer, _Moments]] = {}
    hooks = []

    def track(bn) -> _Moments:
        return moments.setdefault(id(bn), (bn, _Moments()))[1]

    def on_rep_input(layer, inputs):
        x = inputs[0]
        for branch in layer.conv_kxk:
            track(branch.bn).add(branch.conv(x))
        if layer.conv_1x1 is not None:
            track(layer.conv_1x1.bn).add(layer.conv_1x1.conv(x))
        if layer.identity is not None:
            track(layer.identity).add(x)

    def on_bn_input(bn, inputs):
        track(bn).add(inputs[0])

    try:
        batch_norms = list(batch_norms)
        if rep:
            for layer in _rep_layers(model):
                if getattr(layer, "is_repped", False):
                    continue
                # a family whose eval forward runs its branches literally names its BNs; they are observed below
                own = getattr(layer, "calibration_batch_norms", None)
                if callable(own):
                    batch_norms.extend(own())
                else:
                    hooks.append(layer.register_forward_pre_hook(on_rep_input))
        for bn in batch_norms:
            if not isinstance(bn, _BATCH_NORMS):
                raise TypeError(f"calibrate_batch_norms: {type(bn).__name__} is not a BatchNorm layer")
            hooks.append(bn.register_forward_pre_hook(on_bn_input))
        seen = 0
        for batch in batches:
            model(batch if isinstance(batch, paddle.Tensor) else paddle.to_tensor(batch))
            seen += 1
        if not seen:
            raise ValueError("calibrate_batch_norms: no batches")
    finally:
        for hook in hooks:
            hook.remove()
        if was_training:
            model.train()
    for bn, stats in moments.values():
        recentre_batch_norm(bn, *stats.mean_var())
    return len(moments)
