"""Small numerical helpers shared by model families."""

from __future__ import annotations

from typing import Optional

import paddle
import paddle.nn.functional as F
from paddle.autograd import PyLayer

from workbench import kernels

__all__ = ["add_channel_bias", "batch_norm_sum", "centered_covariance", "Conv2D", "Conv2DTranspose",
           "conv2d_channel_bias", "conv2d_no_bias", "DepthwiseConv2D", "depthwise_conv2d", "linear_bias_in_gemm",
           "rec_feature_row", "pointwise_conv2d", "same_conv2d", "spatial_mean", "training_linear", "upsample_nearest"]


def add_channel_bias(x: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """``x + bias`` per channel (``[N, C, H, W] + [C]``), broadcast as ``[C, 1, 1]``.

    Why not ``[1, C, 1, 1]`` (what ``F.conv2d(..., bias)`` and ``nn.Conv2D`` do): Paddle 3.3's CPU broadcast kernel
    takes 3-4x longer for it, forward and backward (a 16x128x12x350 map, 2 threads: 275 ms vs 82 ms for the add
    and its gradient; a same-shape add is 13 ms forward). Same values, same gradients."""
    return x + bias.reshape([-1, 1, 1])


def linear_bias_in_gemm(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """``x @ weight + bias`` as one matmul of ``[x, 1]`` and ``[weight; bias]``, for wide training-time linear
    layers on CPU.

    Why: Paddle's CPU broadcast add of the bias and its gradient (a reduction over every row plus a copy) are
    separate passes over the output; for the CTC head's [32 x 40, 18385] logits they took 65 + 70 ms of a rec step
    at batch 32, more than the matmul. Folded into the GEMM: linear fwd + bwd 285 -> 155 ms there (2 threads),
    same logits, the bias gradient 1e-6 off (summation order)."""
    ones = paddle.ones(x.shape[:-1] + [1], dtype=x.dtype)
    x1, w1 = paddle.concat([x, ones], axis=-1), paddle.concat([weight, bias.unsqueeze(0)], axis=0)
    op = kernels.linear_op() if kernels.training_applies(x, weight, bias) else None
    if op is None:
        return paddle.matmul(x1, w1)
    # oneDNN's GEMM where it is on (kernels.default_kernels: CPUs on which MKL is slow)
    return op(x1.reshape([-1, x1.shape[-1]]), w1).reshape(x.shape[:-1] + [weight.shape[1]])


def training_linear(x: paddle.Tensor, layer: paddle.nn.Linear) -> paddle.Tensor:
    """``layer(x)``, with the bias inside the GEMM (:func:`linear_bias_in_gemm`) when training on CPU in float32: for
    wide class projections (the CTC heads). Inference, export and GPU: the layer itself."""
    if layer.bias is not None and kernels.training_applies(x, layer.weight, layer.bias):
        return linear_bias_in_gemm(x, layer.weight, layer.bias)
    return layer(x)


def conv2d_no_bias(x, weight, stride=1, padding=0, groups=1) -> paddle.Tensor:
    """``F.conv2d`` without bias for training paths: wb's depthwise and pointwise kernels where they apply."""
    if groups > 1 and groups == x.shape[1] and weight.shape[1] == 1:
        return depthwise_conv2d(x, weight, stride, padding)
    if groups == 1 and tuple(weight.shape[2:]) == (1, 1) and _pair(stride) == (1, 1) and _pair(padding) == (0, 0):
        return pointwise_conv2d(x, weight)
    return F.conv2d(x, weight, None, stride, padding, groups=groups)


def conv2d_channel_bias(x, weight, bias, stride=1, padding=0, groups=1) -> paddle.Tensor:
    """``F.conv2d`` with its bias added by :func:`add_channel_bias`: for training paths. Exported graphs keep
    ``nn.Conv2D`` (Paddle Inference fuses its bias into the conv)."""
    return add_channel_bias(conv2d_no_bias(x, weight, stride, padding, groups), bias)


def pointwise_conv2d(x: paddle.Tensor, weight: paddle.Tensor) -> paddle.Tensor:
    """``F.conv2d(x, weight)`` for a 1x1 kernel (stride 1, no padding, groups 1). Training on CPU in float32 where
    wb's oneDNN kernel is on (:func:`workbench.kernels.default_kernels`: CPUs on which MKL is slow), its GEMMs run
    in oneDNN: PP-OCRv5_mobile_rec's pointwise layers were most of MKL's 52 % of a fine-tuning step on an AMD EPYC.
    Elsewhere Paddle's conv."""
    op = kernels.pointwise_conv2d_op() if kernels.training_applies(x, weight) else None
    if op is None:
        return F.conv2d(x, weight, None)
    return op(x.contiguous(), weight.contiguous(), kernels.native_threads())


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def depthwise_conv2d(x: paddle.Tensor, weight: paddle.Tensor, stride=1, padding=0) -> paddle.Tensor:
    """``F.conv2d(x, weight, None, stride, padding, groups=C)`` for kernels with one input channel each
    (``weight`` ``[C*M, 1, KH, KW]``: output channel ``c*M + m`` reads input channel ``c``).

    When training on CPU in float32 (eager, gradients recorded) it runs wb's own kernel
    (:mod:`workbench.kernels`: Paddle 3.3's CPU depthwise kernel is the slowest op of a PPLCNet training
    step): the same function up to float rounding, which differs from Paddle's. Anywhere else -- inference under
    ``no_grad`` (where parity with onnxruntime / PaddleX is checked to 1e-4: rounding differences grow through
    the network, 1.2e-4 on a PP-OCRv6_tiny_rec crop), static graphs being exported or compiled, GPU, AMP, string
    paddings -- Paddle's conv."""
    native_ok = kernels.training_applies(x, weight) and not isinstance(padding, str)
    op = kernels.depthwise_conv2d_op() if native_ok else None
    if op is None:
        return F.conv2d(x, weight, None, stride, padding, groups=x.shape[1])
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    return op(x.contiguous(), weight.contiguous(), sh, sw, ph, pw, kernels.native_threads())


def activation_affine(x: paddle.Tensor, scale: paddle.Tensor, bias: paddle.Tensor, *, relu: bool = False,
                      channel_bias: Optional[paddle.Tensor] = None) -> Optional[paddle.Tensor]:
    """``scale * act(x + channel_bias) + bias`` (``act``: hard-swish, or ReLU with ``relu=True``; ``scale``,
    ``bias``: [1]; ``channel_bias``: optional [C], added per channel of NCHW ``x``) by wb's kernel when training on
    CPU in float32 (eager, gradients recorded), else None: the caller runs its own layers (inference, exported graphs
    and weight importers' layer tracing see the layers they always had).

    Why: the kernel keeps only ``x`` for the backward and recomputes ``act(x)`` there, where Paddle's three ops
    (activation, multiply, add) also keep ``act(x)``: an activation-sized tensor per PPLCNetV3 activation. With
    ``channel_bias`` it also replaces the broadcast add before the activation and its gradient (see the kernel)."""
    if channel_bias is None:
        op = kernels.activation_affine_op() if kernels.training_applies(x, scale, bias) else None
        return None if op is None else op(x.contiguous(), scale, bias, relu, kernels.native_threads())
    applies = kernels.training_applies(x, scale, bias, channel_bias) and len(x.shape) >= 2
    op = kernels.channel_bias_activation_affine_op() if applies else None
    return None if op is None else op(x.contiguous(), channel_bias.contiguous(), scale, bias, relu,
                                      kernels.native_threads())


def _needs_grad(*inputs: paddle.Tensor) -> tuple[bool, ...]:
    """Which PyLayer inputs take a gradient. Paddle refuses one for an input that stops gradients (x after a stage
    frozen by model.freeze), so a backward returns None there (:func:`_only_needed`)."""
    return tuple(not t.stop_gradient for t in inputs)


def _only_needed(grads: tuple, needs: tuple[bool, ...]) -> tuple:
    """``grads`` with None where :func:`_needs_grad` said the input takes none."""
    return tuple(g if need else None for g, need in zip(grads, needs))


class _ChannelMoments(PyLayer):
    """Per-channel ``(mean, biased variance)`` of ``x`` [N, C, H, W] keeping only ``x`` (and the mean) for the
    backward, ``dx = dmean / P + 2 dvar (x - mean) / P`` (autograd of ``paddle.var`` keeps the centred copy)."""

    @staticmethod
    def forward(ctx, x, native_ops):
        c = x.shape[1]
        if native_ops is not None:
            mean, var = native_ops[0](x, kernels.native_threads())
        else:
            mean = x.mean(axis=[0, 2, 3])
            var = ((x - mean.reshape([c, 1, 1])) ** 2).mean(axis=[0, 2, 3])
        # mean is an output: saved as itself, ctx and this layer's graph node would hold each other, a cycle only the
        # backward breaks (a forward never differentiated kept its whole graph: test_models_native_batch_norm.py)
        ctx.save_for_backward(x, mean.detach())
        ctx.native_ops = native_ops
        ctx.needs_grad = _needs_grad(x)
        return mean, var

    @staticmethod
    def backward(ctx, grad_mean, grad_var):
        x, mean = ctx.saved_tensor()
        if not ctx.needs_grad[0]:
            return None
        n, c, h, w = x.shape
        grad_mean = paddle.zeros_like(mean) if grad_mean is None else grad_mean
        grad_var = paddle.zeros_like(mean) if grad_var is None else grad_var
        if ctx.native_ops is not None:
            return ctx.native_ops[1](x, mean, grad_mean, grad_var, kernels.native_threads())
        positions = n * h * w
        return ((x - mean.reshape([c, 1, 1])) * (grad_var * (2.0 / positions)).reshape([c, 1, 1])
                + (grad_mean / positions).reshape([c, 1, 1]))


class _CenteredCovariance(PyLayer):
    """``(x - mean, cov)`` for ``x`` [N, C, H, W] and its detached per-channel ``mean``: ``centered``
    [N, C, H*W] and ``cov = centered @ centered^T / (N*H*W)`` [C, C].

    The backward is written out because it is much cheaper than Paddle's autograd of the same ops on CPU:
    centring is a symmetric projection (its vector-Jacobian product centres the gradient) and the covariance
    needs one matmul, ``(G + G^T) @ centered / P`` (autograd would do two, plus slow broadcast mean/subtract
    gradients). ``mean`` is treated as a constant: the exact gradient through it is what the centring adds.
    With wb's channel kernels (``channel_ops``) each centring, forward and backward, is their mean and affine
    passes: 2-3x faster than Paddle's mean + broadcast subtract (2.9 vs 5.8 ms on a [32, 64, 12, 80] map).
    """

    @staticmethod
    def forward(ctx, x, mean, channel_ops):
        n, c, h, w = x.shape
        centered = _subtract_channel_values(x, mean, channel_ops).reshape([n, c, h * w])
        positions = n * h * w
        covariance = paddle.matmul(centered, centered, transpose_y=True).sum(axis=0) / positions
        ctx.save_for_backward(centered.detach())  # an output: see _ChannelMoments
        ctx.shape, ctx.positions, ctx.channel_ops = [n, c, h, w], positions, channel_ops
        return centered, covariance

    @staticmethod
    def backward(ctx, grad_centered, grad_covariance):
        (centered,) = ctx.saved_tensor()
        grad_map = grad_centered.reshape(ctx.shape)
        grad = _subtract_channel_values(grad_map, _channel_mean(grad_map, ctx.channel_ops), ctx.channel_ops)
        grad = grad.reshape(centered.shape)
        if grad_covariance is not None:
            symmetric = (grad_covariance + grad_covariance.transpose([1, 0])) / ctx.positions
            grad = grad + paddle.matmul(symmetric, centered)  # rows of `centered` sum to 0: already centred
        return grad.reshape(ctx.shape), None


def _channel_mean(x: paddle.Tensor, channel_ops) -> paddle.Tensor:
    """Per-channel mean of ``x`` [N, C, H, W], not differentiated (wb's moments kernel with ``channel_ops``)."""
    if channel_ops is not None:
        return channel_ops[0](x.contiguous(), kernels.native_threads())[0]
    return x.mean(axis=[0, 2, 3])


def _subtract_channel_values(x: paddle.Tensor, values: paddle.Tensor, channel_ops) -> paddle.Tensor:
    """``x - values[c]``, not differentiated (wb's affine kernel with ``channel_ops``)."""
    c = x.shape[1]
    if channel_ops is not None:
        return channel_ops[2](x.contiguous(), paddle.ones([c], dtype=x.dtype), -values, kernels.native_threads())
    return x - values.reshape([c, 1, 1])  # [C, 1, 1]: Paddle's CPU broadcast is ~4x slower with [1, C, 1, 1]


def centered_covariance(x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """``(x - mean [N, C, H*W], mean [C] (no gradient), covariance [C, C])`` of ``x`` [N, C, H, W] over N, H, W
    (biased), differentiable in ``x`` (through the centring exactly as through a batch mean); wb's channel kernels
    for the centring when training on CPU in float32. The statistics of a pointwise rep layer's branches."""
    channel_ops = kernels.channel_affine_ops() if kernels.training_applies(x) else None
    with paddle.no_grad():
        mean = _channel_mean(x, channel_ops)
    centered, covariance = _CenteredCovariance.apply(x, mean, channel_ops)
    return centered, mean, covariance


def channel_kernels_apply(x: paddle.Tensor, *params: paddle.Tensor) -> bool:
    """Whether :func:`channel_moments` / :func:`channel_affine` run wb's kernels for ``x`` (training on CPU in
    float32). Callers that restructure a computation around them check this first: elsewhere (GPU, AMP) Paddle's
    BatchNorm keeps its statistics in float32 and its tuned kernels."""
    return kernels.training_applies(x, *params) and kernels.channel_affine_ops() is not None


def channel_moments(x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Per-channel mean and biased variance of ``x`` [N, C, H, W] (BatchNorm's batch statistics), differentiable,
    keeping only ``x`` for the backward; wb's kernel when training on CPU in float32 (one pass each way)."""
    ops = kernels.channel_affine_ops() if kernels.training_applies(x) else None
    return _ChannelMoments.apply(x.contiguous() if ops is not None else x, ops)


def channel_affine(x: paddle.Tensor, a: paddle.Tensor, d: paddle.Tensor) -> paddle.Tensor:
    """``a[c] * x + d[c]`` for ``x`` [N, C, H, W]; wb's kernel when training on CPU in float32 (one pass each
    way, only ``x`` and ``a`` kept), else Paddle's broadcast multiply and add."""
    ops = kernels.channel_affine_ops() if kernels.training_applies(x, a, d) else None
    if ops is None:
        c = x.shape[1]
        return x * a.reshape([c, 1, 1]) + d.reshape([c, 1, 1])
    return ops[2](x.contiguous(), a.contiguous(), d.contiguous(), kernels.native_threads())


class _DepthwiseBatchNormSum(PyLayer):
    """``batch_norm_sum(depthwise_conv2d(x, kernel), ...)`` in wb's kernel (``kernels/depthwise_branches.cc``),
    keeping only ``x`` for the backward: the conv output (``groups`` times the size of the layer's output, one map
    per stacked re-param branch) is never held, only recomputed plane by plane in cache."""

    @staticmethod
    def forward(ctx, x, kernel, weight, bias, running_mean, running_var, geometry, epsilon, training, groups,
                statistics: list, residual=None):
        """``statistics`` receives the batch (mean, var): handed out beside the output, not as outputs marked
        non-differentiable, which make ctx and this layer's graph node hold each other (a cycle only the backward
        pass breaks)."""
        forward, _ = kernels.branch_recompute_ops()
        threads = kernels.native_threads()
        y, mean, var = forward(x, kernel, weight, bias, running_mean, running_var, *geometry, epsilon, training,
                               groups, threads)
        if residual is not None:
            # added here, not by autograd: its gradient is grad_y itself, where Paddle's add gradient copies it
            # (5-7 ms a layer at rec batch 32)
            y.add_(residual)
        ctx.save_for_backward(x, kernel, weight, mean, var)
        ctx.settings = (geometry, epsilon, training, groups, threads)
        ctx.needs_grad = _needs_grad(x, kernel, weight, bias)
        ctx.residual = None if residual is None else not residual.stop_gradient  # None: no such input
        statistics += [mean, var]
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, kernel, weight, mean, var = ctx.saved_tensor()
        geometry, epsilon, training, groups, threads = ctx.settings
        _, backward = kernels.branch_recompute_ops()
        grad_y = grad_y.contiguous()
        grads = backward(x, kernel, weight, mean, var, grad_y, *geometry, epsilon, training, groups, threads)
        grads = (*_only_needed(tuple(grads), ctx.needs_grad), None, None)
        if ctx.residual is None:  # Paddle wants one gradient per tensor input given
            return grads
        return (*grads, grad_y if ctx.residual else None)


def batch_norm_sum(z: paddle.Tensor, weight, bias, running_mean, running_var, *, training: bool, momentum: float,
                   epsilon: float, groups: int = 1, depthwise: tuple | None = None,
                   residual: paddle.Tensor | None = None) -> paddle.Tensor:
    """``F.batch_norm(z, ...)`` over ``[N, C*G, H, W]``, then the sum of each group of ``G`` consecutive channels
    (``y[:, c] = sum_g bn(z)[:, c*G + g]``; ``G = 1``: plain BatchNorm). ``training``: batch statistics, and the
    running statistics update in place as Paddle's BN does (momentum, biased variance).

    Groups of ``G > 1`` (stacked re-param branches) training on CPU in float32 (eager, gradients recorded) run
    wb's kernel (:mod:`workbench.kernels`): Paddle 3.3's CPU batch_norm uses one thread whatever the thread
    count, and the strided group sum is a pass of its own. Measured (2 threads, forward + backward,
    ``benchmarks/bench_native_kernels.py``): four stacked branches' BNs summed 103-109 ms -> 39-40 ms. A single BN
    (``G = 1``) keeps Paddle's op: both are bandwidth-bound (15.7 vs 16.6 ms on 32x240x6x80). Elsewhere
    (inference, static graphs, GPU, AMP): Paddle's ops, the same function.

    ``depthwise=(kernel, stride, padding)``: ``z`` is the input of a depthwise conv whose output is normalised
    (``depthwise_conv2d(z, kernel, stride, padding)``: the stacked branches of a re-param layer). With wb's
    kernels (native kernel ``branch_recompute``, ``kernels/depthwise_branches.cc``) that conv output -- ``groups``
    times the size of the layer's output -- is never held: the statistics come from branch planes computed in
    cache, the output from one conv with the BN-weighted kernel sum, and the backward recomputes one channel's
    planes at a time. Forward + backward at 2 threads, batch 32, 4 branches (Xeon, 2026-12-05): 32x240x12x80
    5x5 357 -> 153 ms, 32x32x24x160 3x3 143 -> 60 ms against conv output + BN kernel + recompute.

    ``residual`` (same shape as the result, optional) is added to it: inside the kernel's layer there (the other
    branches of a rep layer), by a plain add elsewhere."""
    if residual is not None and not _recompute_applies(z, weight, bias, depthwise):
        return batch_norm_sum(z, weight, bias, running_mean, running_var, training=training, momentum=momentum,
                              epsilon=epsilon, groups=groups, depthwise=depthwise) + residual
    if depthwise is not None:
        kernel, stride, padding = depthwise
        if not _recompute_applies(z, weight, bias, depthwise):
            z = depthwise_conv2d(z, kernel, stride, padding)
        else:
            (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
            statistics: list = []
            y = _DepthwiseBatchNormSum.apply(z.contiguous(), kernel.contiguous(), weight, bias, running_mean,
                                             running_var, (sh, sw, ph, pw), float(epsilon), bool(training),
                                             int(groups), statistics, residual)
            mean, var = statistics
            if training:
                _update_running_statistics(running_mean, running_var, mean, var, momentum)
            return y
    native_ok = (
        groups > 1  # a single BN: Paddle's is as fast (bandwidth-bound), see above
        and kernels.training_applies(z, weight, bias)
        and z.ndim == 4
    )
    op = kernels.batch_norm_sum_op() if native_ok else None
    if op is None:
        y = F.batch_norm(z, running_mean, running_var, weight, bias, training=training, momentum=momentum,
                         epsilon=epsilon)
        if groups == 1:
            return y
        n, _, height, width = y.shape
        return y.reshape([n, -1, groups, height, width]).sum(axis=2)
    y, mean, var = op(z.contiguous(), weight, bias, running_mean, running_var, float(epsilon), bool(training),
                      int(groups), kernels.native_threads())
    if training:
        _update_running_statistics(running_mean, running_var, mean, var, momentum)
    return y


def _recompute_applies(z, weight, bias, depthwise) -> bool:
    """Whether :func:`batch_norm_sum` runs the depthwise branches in wb's kernel (``_DepthwiseBatchNormSum``)."""
    if depthwise is None:
        return False
    kernel, _, padding = depthwise
    return (
        kernels.training_applies(z, kernel, weight, bias)
        and z.ndim == 4
        and not isinstance(padding, str)
        and kernels.branch_recompute_ops() is not None
    )


@paddle.no_grad()
def _update_running_statistics(running_mean, running_var, mean, var, momentum: float) -> None:
    """As Paddle's BatchNorm: ``running = running * momentum + batch * (1 - momentum)`` (biased variance)."""
    paddle.assign(running_mean * momentum + mean * (1 - momentum), output=running_mean)
    paddle.assign(running_var * momentum + var * (1 - momentum), output=running_var)


class DepthwiseConv2D(paddle.nn.Conv2D):
    """``nn.Conv2D`` with one input channel per group, computed by :func:`depthwise_conv2d` (wb's CPU kernel in
    eager mode). Still an ``nn.Conv2D``: same parameters and state-dict keys, and forward hooks (weight import's
    graph tracing, BatchNorm calibration, FLOP counts) see it as the conv it is."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self._groups != self._in_channels:
            raise ValueError(f"DepthwiseConv2D needs groups == in_channels, got {self._groups} / {self._in_channels}")

    def forward(self, x):
        simple = (
            self._data_format == "NCHW"
            and self._padding_mode == "zeros"
            and self._padding_algorithm == "EXPLICIT"
            and list(self._dilation) == [1, 1]
            and len(self._updated_padding) == 2
        )
        if not simple:
            return super().forward(x)
        y = depthwise_conv2d(x, self.weight, self._stride, self._updated_padding)
        return y if self.bias is None else add_channel_bias(y, self.bias)


class PointwiseConv2D(paddle.nn.Conv2D):
    """``nn.Conv2D`` with a 1x1 kernel (stride 1, no padding, groups 1) computed by :func:`pointwise_conv2d` (wb's
    oneDNN GEMM in CPU training where it is on). Still an ``nn.Conv2D``: same parameters and state-dict keys;
    inference, exported graphs and GPU run Paddle's conv."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if (list(self._kernel_size) != [1, 1] or list(self._stride) != [1, 1] or self._groups != 1
                or list(self._dilation) != [1, 1]):
            raise ValueError(f"PointwiseConv2D needs a 1x1 kernel, stride 1, groups 1: got kernel "
                             f"{self._kernel_size}, stride {self._stride}, groups {self._groups}")

    def forward(self, x):
        plain = (self._data_format == "NCHW" and self._padding_mode == "zeros"
                 and self._padding_algorithm == "EXPLICIT" and not any(self._updated_padding))
        if not plain:
            return super().forward(x)
        y = pointwise_conv2d(x, self.weight)
        return y if self.bias is None else add_channel_bias(y, self.bias)


def same_conv2d(x: paddle.Tensor, weight: paddle.Tensor, padding) -> Optional[paddle.Tensor]:
    """A stride-1, groups-1 conv of ``x`` [N, C, H, W] with an odd square ``weight`` [O, C, K, K] (K > 1) and "same"
    ``padding`` K // 2 by wb's kernel (``kernels/dense_conv.cc``) when training on CPU in float32, else None (the
    caller runs Paddle's conv).

    Why: Paddle's CPU conv (im2col + GEMM) runs the DB neck's and head's 3x3 convs (96 -> 24 / 48 channels at 160x160,
    batch 4) at 12-13 GFLOP/s; with the DB head's stacked conv they were a quarter of a PP-OCRv5_mobile_det training
    step. The kernel: one 96 -> 24 layer fwd + bwd 161 + 354 -> 75 + 188 ms (2 threads)."""
    k = weight.shape[-1]
    applies = (
        len(x.shape) == 4
        and weight.shape[-2] == k and k % 2 == 1 and k > 1  # 1x1: Paddle's is as fast (a GEMM)
        and list(_pair(padding)) == [k // 2, k // 2]
        and kernels.training_applies(x, weight)
    )
    op = kernels.dense_conv2d_op() if applies else None
    return None if op is None else op(x.contiguous(), weight.contiguous(), kernels.native_threads())


class Conv2D(paddle.nn.Conv2D):
    """``nn.Conv2D`` whose "same" convolutions (groups 1, stride 1, dilation 1, zero padding, NCHW) run
    :func:`same_conv2d` in CPU training. Every other case, and inference, exported graphs and GPU: Paddle's conv.
    Same parameters and state-dict keys as ``nn.Conv2D``."""

    def forward(self, x):
        plain = (
            self._data_format == "NCHW"
            and self._padding_mode == "zeros"
            and self._padding_algorithm == "EXPLICIT"
            and self._groups == 1
            and list(self._stride) == [1, 1]
            and list(self._dilation) == [1, 1]
        )
        y = same_conv2d(x, self.weight, self._updated_padding) if plain else None
        if y is None:
            return super().forward(x)
        return y if self.bias is None else add_channel_bias(y, self.bias)


class Conv2DTranspose(paddle.nn.Conv2DTranspose):
    """``nn.Conv2DTranspose`` whose bias, in CPU training, is added by :func:`add_channel_bias` (a ``[C, 1, 1]``
    broadcast) instead of Paddle's ``[1, C, 1, 1]`` one. Why: the DB head's 2x-up transposed convs (24 channels at
    320x320, batch 4) spent 52 + 37 ms adding their biases and 54 + 52 ms in the adds' gradients, 6 % of a det step.
    Inference, exported graphs and GPU: Paddle's layer (its bias fused into the conv). Same parameters and
    state-dict keys."""

    def forward(self, x, output_size=None):
        if output_size is not None or self.bias is None or not kernels.training_applies(x, self.weight, self.bias):
            return super().forward(x, output_size)
        y = F.conv2d_transpose(x, self.weight, bias=None, padding=self._padding, output_padding=self.output_padding,
                               stride=self._stride, dilation=self._dilation, groups=self._groups,
                               data_format=self._data_format)
        return add_channel_bias(y, self.bias)


def rec_feature_row(x: paddle.Tensor, *, training: bool, train_time_steps: int | None,
                    eval_pool=(3, 2)) -> paddle.Tensor:
    """The last step of every rec backbone: the feature map ``[N, C, H, W']`` as one row of time steps.

    Upstream training pools to a fixed ``train_time_steps`` (40: the same as inference only at 48x320); inference
    pools a fixed window (3x2 for 48-pixel lines: ``T = W / 8`` follows the width). ``train_time_steps=None``
    trains with inference's pooling, so keep-ratio crops get as many steps in training as when read."""
    if training and train_time_steps:
        return F.adaptive_avg_pool2d(x, [1, train_time_steps])
    return F.avg_pool2d(x, list(eval_pool), list(eval_pool))


def spatial_mean(x: paddle.Tensor) -> paddle.Tensor:
    """Mean over H and W (``[N, C, H, W] -> [N, C, 1, 1]``), averaging rows first and then the row means.

    The same function as ``x.mean([2, 3])`` / ``adaptive_avg_pool2d(x, 1)`` with far less rounding: Paddle's CPU
    kernels accumulate a float32 mean over the whole map in one running sum, which over a 136x240 stride-4 map
    was off by 3.7e-4 relative to float64 (onnxruntime's ReduceMean: 2e-5); two short sums are off by 2e-6. A
    squeeze-excite gate built on that mean carries the error into everything after it: PPLCNetV4's SE layers
    (``x.mean`` upstream, ``ReduceMean`` in ONNX) use this. Layers written with ``adaptive_avg_pool2d`` upstream
    keep it: onnxruntime's ``GlobalAveragePool`` rounds exactly as Paddle's pooling does, so that is the function
    the stock graphs compute.
    """
    return x.mean(axis=3, keepdim=True).mean(axis=2, keepdim=True)


def upsample_nearest(x: paddle.Tensor, factor: int) -> paddle.Tensor:
    """Nearest-neighbour upsampling by an integer ``factor`` (``[N, C, H, W] -> [N, C, fH, fW]``), the same values
    as ``F.interpolate(x, scale_factor=factor, mode="nearest")``, computed as a depthwise transposed convolution
    with a ``factor x factor`` kernel of ones and stride ``factor``: each output pixel is one input pixel times 1.0,
    exactly.

    Why not ``interpolate``: its ``nearest_interp`` op carries a float scale list that Paddle 3.3's oneDNN executor
    cannot convert ("ConvertPirAttribute2RuntimeAttribute not support"), so a det graph holding it crashes
    Paddle Inference's oneDNN mode -- PaddleX's CPU default. Why not expand + flatten (the previous form): it
    writes the map twice; in Paddle Inference with oneDNN (2 threads) it took 91 / 88 / 113 ms for the x8 / x4 / x2
    upsamplings of a 24-channel map on a 4000x2816 receipt page against 27 / 28 / 28 ms here, 17 % of the whole
    PP-OCRv5_mobile_det evaluation. Eager training is faster too (batch 4 at 640^2, forward + backward: 9.6 vs
    17.7 ms for the x8 of 24x20x20).
    """
    if factor == 1:
        return x
    channels = x.shape[1]
    kernel = paddle.ones([channels, 1, factor, factor], dtype=x.dtype)
    return F.conv2d_transpose(x, kernel, stride=factor, groups=channels)
