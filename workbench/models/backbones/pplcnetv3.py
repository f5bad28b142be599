"""PPLCNetV3: the mobile backbone of PP-OCRv4/v5 detection (scale 0.75) and recognition (scale 0.95).

Every depthwise-separable block is two :class:`LearnableRepLayer` s. During training each one is a sum of
parallel branches (``num_branches`` kxk conv+BN, a 1x1 conv+BN, and a BN "identity" when shapes allow),
followed by a learnable affine (``lab``) and a learnable-affine hard-swish (``act``). For export,
:meth:`LearnableRepLayer.rep` folds the branches into one biased conv (``reparam_conv``), exactly as
upstream's inference graphs are built.

State-dict names (``conv1``, ``blocks2``..``blocks6``, ``dw_conv``/``pw_conv``, ``identity``, ``conv_kxk``,
``conv_1x1``, ``lab``, ``act.lab``, ``se``, ``layer_list``) and creation order follow the official training
graph, so the official ``*_pretrained.pdparams`` load unchanged.

Output:
* det mode: four feature maps (strides 4, 8, 16, 32), each projected by a 1x1 conv of ``layer_list``.
* rec mode: one map ``[N, C, 1, T]``. In **training** it is adaptive-average-pooled to a fixed ``[1, 40]``
  (``train_time_steps``); in **eval/export** it is average-pooled with kernel = stride = ``[3, 2]``, i.e.
  ``T = width / 8``. The two agree exactly only for 48x320 inputs (the eval/export shape); training on other
  sizes (e.g. the multi-scale sampler's 32/64-high crops) still yields 40 steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.autograd import PyLayer
from paddle.nn.initializer import Constant, KaimingNormal
from paddle.regularizer import L2Decay

from workbench import kernels
from workbench.models.ops import (DepthwiseConv2D, activation_affine, add_channel_bias, batch_norm_sum,
                                  centered_covariance, channel_affine, channel_kernels_apply, channel_moments,
                                  conv2d_channel_bias, conv2d_no_bias, rec_feature_row)

__all__ = [
    "BlockSpec",
    "DET_STAGES",
    "REC_STAGES",
    "ConvBN",
    "ConstantAffine",
    "LearnableAffineBlock",
    "LearnableActivation",
    "LearnableRepLayer",
    "SqueezeExcite",
    "LCNetV3Block",
    "PPLCNetV3",
    "make_divisible",
]


@dataclass(frozen=True)
class BlockSpec:
    """One depthwise-separable block: depthwise kernel, channels before ``scale``, stride, squeeze-excite."""

    kernel: int
    in_channels: int
    out_channels: int
    stride: int | tuple[int, int]
    use_se: bool


def _stage(*rows) -> tuple[BlockSpec, ...]:
    return tuple(BlockSpec(*row) for row in rows)


# Stages blocks2..blocks6. Det halves both axes at each stage; rec keeps the width long (stride (2,1)) and
# halves the width once (stride (1,2)) so a 48x320 line becomes 3x80 before the final pooling.
DET_STAGES: tuple[tuple[BlockSpec, ...], ...] = (
    _stage((3, 16, 32, 1, False)),
    _stage((3, 32, 64, 2, False), (3, 64, 64, 1, False)),
    _stage((3, 64, 128, 2, False), (3, 128, 128, 1, False)),
    _stage((3, 128, 256, 2, False), *[(5, 256, 256, 1, False)] * 4),
    _stage((5, 256, 512, 2, True), (5, 512, 512, 1, True), (5, 512, 512, 1, False), (5, 512, 512, 1, False)),
)
REC_STAGES: tuple[tuple[BlockSpec, ...], ...] = (
    _stage((3, 16, 32, 1, False)),
    _stage((3, 32, 64, 1, False), (3, 64, 64, 1, False)),
    _stage((3, 64, 128, (2, 1), False), (3, 128, 128, 1, False)),
    _stage((3, 128, 256, (1, 2), False), *[(5, 256, 256, 1, False)] * 4),
    _stage((5, 256, 512, (2, 1), True), (5, 512, 512, 1, True), (5, 512, 512, (2, 1), False), (5, 512, 512, 1, False)),
)
# Unscaled output widths of the det 1x1 projections (``layer_list``), multiplied by ``scale`` and truncated.
DET_PROJECTION_CHANNELS = (16, 24, 56, 480)


def make_divisible(value: float, divisor: int = 16, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (never below ``min_value``, never < 90 %)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class LearnableAffineBlock(nn.Layer):
    """``y = scale * x + bias`` with scalar parameters (trained at ``lr_mult * lab_lr`` of the base lr)."""

    def __init__(self, scale_value: float = 1.0, bias_value: float = 0.0, lr_mult: float = 1.0, lab_lr: float = 0.1):
        super().__init__()
        self.scale = self.create_parameter(
            shape=[1], default_initializer=Constant(scale_value), attr=ParamAttr(learning_rate=lr_mult * lab_lr)
        )
        self.bias = self.create_parameter(
            shape=[1], default_initializer=Constant(bias_value), attr=ParamAttr(learning_rate=lr_mult * lab_lr)
        )

    def forward(self, x):
        return self.scale * x + self.bias

    def constants(self) -> tuple[float, float]:
        """``(scale, bias)`` as Python floats: what :class:`ConstantAffine` bakes into an inference graph."""
        return float(self.scale.numpy().reshape(-1)[0]), float(self.bias.numpy().reshape(-1)[0])


class ConstantAffine(nn.Layer):
    """``y = scale * x + bias`` with constants: a deployed :class:`LearnableAffineBlock` (no parameters).

    One ``scale`` op with float attributes instead of a multiply and an add with [1]-shaped tensors: half the
    passes over the activation (Paddle Inference's oneDNN passes fuse a ``scale`` into matmul / elementwise ops
    only, and only without bias, so it stays one op). The identity (1, 0) is no op at all."""

    def __init__(self, scale: float, bias: float):
        super().__init__()
        self.scale, self.bias = float(scale), float(bias)

    def forward(self, x):
        if self.scale == 1.0 and self.bias == 0.0:
            return x
        return paddle.scale(x, scale=self.scale, bias=self.bias)


class LearnableActivation(nn.Layer):
    """Hard-swish (or ReLU) followed by a :class:`LearnableAffineBlock` (state-dict name ``lab``)."""

    def __init__(self, act: str = "hswish", lr_mult: float = 1.0, lab_lr: float = 0.1):
        super().__init__()
        if act not in ("hswish", "relu"):
            raise ValueError(f"LearnableActivation: act must be 'hswish' or 'relu', got {act!r}")
        self.fn = nn.Hardswish() if act == "hswish" else nn.ReLU()
        self.lab = LearnableAffineBlock(lr_mult=lr_mult, lab_lr=lab_lr)

    def forward(self, x, channel_bias=None):
        """``channel_bias`` ([C], optional): added per channel to ``x`` first (a pointwise rep layer's folded BN
        shift), inside the kernel where it runs."""
        if isinstance(self.lab, LearnableAffineBlock):  # training on CPU: keeps only x (models.ops.activation_affine)
            fused = activation_affine(x, self.lab.scale, self.lab.bias, relu=isinstance(self.fn, nn.ReLU),
                                      channel_bias=channel_bias)
            if fused is not None:
                return fused
        if channel_bias is not None:
            x = add_channel_bias(x, channel_bias)
        return self.lab(self.fn(x))


class ConvBN(nn.Layer):
    """Bias-free conv (Kaiming-normal init) + BatchNorm; the BN affine parameters are exempt from weight decay."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, lr_mult: float = 1.0):
        super().__init__()
        conv = DepthwiseConv2D if groups > 1 and groups == in_channels else nn.Conv2D  # wb's CPU kernel
        self.conv = conv(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            weight_attr=ParamAttr(initializer=KaimingNormal(), learning_rate=lr_mult),
            bias_attr=False,
        )
        self.bn = nn.BatchNorm2D(
            out_channels,
            weight_attr=ParamAttr(regularizer=L2Decay(0.0), learning_rate=lr_mult),
            bias_attr=ParamAttr(regularizer=L2Decay(0.0), learning_rate=lr_mult),
        )

    def forward(self, x):
        return self.bn(self.conv(x))


def _bn_scale_shift(bn: nn.BatchNorm2D) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode BN as ``y = x * scale + shift`` (float64, so fused weights carry no extra rounding)."""
    gamma = bn.weight.numpy().astype(np.float64)
    beta = bn.bias.numpy().astype(np.float64)
    mean = bn._mean.numpy().astype(np.float64)
    var = bn._variance.numpy().astype(np.float64)
    scale = gamma / np.sqrt(var + bn._epsilon)
    return scale, beta - mean * scale


def _batch_norm(bn: nn.BatchNorm2D, x, weight, bias, running_mean=None, running_var=None, groups: int = 1,
                depthwise=None, residual=None):
    """``bn`` applied to ``x`` with substitute affine parameters (its running statistics update in place); with
    ``groups`` > 1, summed over groups of that many consecutive channels; with ``depthwise``, applied to that
    depthwise conv of ``x``; plus ``residual`` when given (``ops.batch_norm_sum``)."""
    return batch_norm_sum(
        x,
        weight,
        bias,
        bn._mean if running_mean is None else running_mean,
        bn._variance if running_var is None else running_var,
        training=bn.training,
        momentum=bn._momentum,
        epsilon=bn._epsilon,
        groups=groups,
        depthwise=depthwise,
        residual=residual,
    )


def _fold_branches(layer, include_lab: bool):
    """(kernel, bias): each branch's BN folded into its kernel (``scale = gamma / sqrt(var + eps)``,
    ``shift = beta - mean * scale``), the 1x1 kernel padded to kxk, summed in branch order, then the learnable
    affine -- in Paddle ops (differentiable)."""
    pad = layer.kernel_size // 2
    kernel = bias = None
    for kind, weight, bn in layer._fold_terms():
        scale = bn.weight / paddle.sqrt(bn._variance + bn._epsilon)
        shift = bn.bias - bn._mean * scale
        k = weight * scale.reshape([-1, 1, 1, 1])
        if kind == "1x1":
            k = F.pad(k, [pad, pad, pad, pad])
        kernel = k if kernel is None else kernel + k
        bias = shift if bias is None else bias + shift
    if include_lab:
        kernel = kernel * layer.lab.scale
        bias = bias * layer.lab.scale + layer.lab.bias
    return kernel, bias


class _NativeFold(PyLayer):
    """A rep layer's fold (:func:`_fold_branches` with the learnable affine) as one autograd node around wb's
    ``wb_rep_fold`` / ``wb_rep_fold_bwd`` (``kernels/rep_fold.cc``: the same float32 operations in the same order,
    each correctly rounded -- within an ulp of Paddle's ops, whose CPU sqrt is not -- and the analytic gradient of
    every branch weight, BN affine and the learnable affine). The running statistics get none.
    ``params``: the branch weights, the BN scales, the BN shifts (``counts`` of each), then the affine's two."""

    @staticmethod
    def forward(ctx, ops, statistics, attrs, has_1x1, counts, *params):
        n_w, n_bn = counts
        weights, gammas, betas = params[:n_w], params[n_w:n_w + n_bn], params[n_w + n_bn:n_w + 2 * n_bn]
        lab_scale, lab_bias = params[-2:]
        means, variances = statistics
        kernel, bias = ops[0](list(weights), list(gammas), list(betas), means, variances, lab_scale, lab_bias, *attrs)
        ctx.ops, ctx.attrs, ctx.has_1x1 = ops, attrs, has_1x1
        ctx.needs = [not p.stop_gradient for p in params]  # a frozen parameter (model.freeze) must get None
        ctx.inputs = (list(weights), list(gammas), list(betas), means, variances, lab_scale)
        return kernel, bias

    @staticmethod
    def backward(ctx, d_kernel, d_bias):
        g_kxk, g_1x1, g_gamma, g_beta, g_lab = ctx.ops[1](*ctx.inputs, d_kernel, d_bias, *ctx.attrs)
        weights = list(g_kxk.unbind(0)) + ([g_1x1] if ctx.has_1x1 else [])
        grads = (*weights, *g_gamma.unbind(0), *g_beta.unbind(0), *g_lab.reshape([2, 1]).unbind(0))
        return tuple(g if need else None for g, need in zip(grads, ctx.needs))


class LearnableRepLayer(nn.Layer):
    """Re-parameterisable conv: ``act(lab(identity_bn(x) + conv1x1_bn(x) + sum_i convkxk_bn_i(x)))``.

    The activation is skipped when ``stride == 2`` (an int) -- upstream's rule; rec strides such as ``(2, 1)``
    keep it. After :meth:`rep` the branches are gone and a single biased conv ``reparam_conv`` replaces them
    (followed by ``lab`` and ``act``, the structure of upstream's inference graphs).

    Three forward paths compute the same function (tests hold them to float32 rounding of each other):

    * BN layers in eval mode: the branches are linear, so they are fused on the fly into one conv (Paddle ops,
      so still differentiable) -- one conv instead of up to six.
    * BN layers in train mode (batch statistics, so no fusion): every branch runs, but ``lab`` is folded into
      the BN affine parameters (saves two full-size passes forward and backward), and the depthwise kxk
      branches run as one conv with channel multiplier ``num_branches`` plus one BN over the stacked channels
      (fewer, larger kernels: 1.3-2x faster on CPU). Pointwise layers (1x1, stride 1) go further, see
      :meth:`_pointwise_batch_stats`: one matmul instead of one conv + BN per branch.
    * :meth:`branch_sum`: the literal upstream computation, kept as the reference for tests.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int | tuple[int, int] = 1,
        groups: int = 1,
        num_branches: int = 1,
        lr_mult: float = 1.0,
        lab_lr: float = 0.1,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = (kernel_size - 1) // 2
        self.groups = groups
        self.use_act = stride != 2
        self.is_repped = False
        self.depthwise = groups == in_channels == out_channels and groups > 1
        self.stack_branches = self.depthwise and num_branches > 1
        self.pointwise = kernel_size == 1 and groups == 1 and stride in (1, (1, 1), [1, 1])

        # Creation order = state-dict order of the official graph: identity, conv_kxk, conv_1x1, lab, act.
        has_identity = out_channels == in_channels and stride == 1
        self.identity = (
            nn.BatchNorm2D(
                in_channels,
                weight_attr=ParamAttr(learning_rate=lr_mult),
                bias_attr=ParamAttr(learning_rate=lr_mult),
            )
            if has_identity
            else None
        )
        self.conv_kxk = nn.LayerList(
            [
                ConvBN(in_channels, out_channels, kernel_size, stride, groups=groups, lr_mult=lr_mult)
                for _ in range(num_branches)
            ]
        )
        self.conv_1x1 = (
            ConvBN(in_channels, out_channels, 1, stride, groups=groups, lr_mult=lr_mult) if kernel_size > 1 else None
        )
        self.lab = LearnableAffineBlock(lr_mult=lr_mult, lab_lr=lab_lr)
        self.act = LearnableActivation(lr_mult=lr_mult, lab_lr=lab_lr)
        if has_identity:
            # The identity branch as a conv kernel: channel c reads its own input channel at the centre tap.
            in_per_group = in_channels // groups
            eye = np.zeros((in_channels, in_per_group, kernel_size, kernel_size), dtype=np.float32)
            eye[np.arange(in_channels), np.arange(in_channels) % in_per_group, self.padding, self.padding] = 1
            self.register_buffer("identity_kernel", paddle.to_tensor(eye), persistable=False)

    # ------------------------------------------------------------------------------------------- forward

    def _bn_layers(self):
        layers = [branch.bn for branch in self.conv_kxk]
        if self.conv_1x1 is not None:
            layers.append(self.conv_1x1.bn)
        if self.identity is not None:
            layers.append(self.identity)
        return layers

    def forward(self, x):
        if self.is_repped:
            out = self.lab(self.reparam_conv(x))
            return self.act(out) if self.use_act else out
        training = [bn.training for bn in self._bn_layers()]
        if self.pointwise and all(training):
            out, shift = self._pointwise_batch_stats(x)
            return self.act(out, channel_bias=shift) if self.use_act else add_channel_bias(out, shift)
        if any(training):
            out = self._forward_batch_stats(x)
            return self.act(out) if self.use_act else out
        kernel, bias = self.fused_kernel_bias_tensors(include_lab=True)
        if not self.use_act:
            return conv2d_channel_bias(x, kernel, bias, self.stride, self.padding, groups=self.groups)
        # the folded bias is added inside the activation's kernel (where it runs): no broadcast add and gradient
        # reduction of its own -- Paddle's took 59-70 ms of a 539-637 ms rec fine-tuning step (profiled at widths
        # 152 and 160)
        out = conv2d_no_bias(x, kernel, self.stride, self.padding, groups=self.groups)
        return self.act(out, channel_bias=bias)

    def branch_sum(self, x):
        """Upstream's literal computation (reference for tests): identity + 1x1 + kxk..., lab, act."""
        out = None
        branches = ([self.identity] if self.identity is not None else []) + (
            [self.conv_1x1] if self.conv_1x1 is not None else []
        )
        for branch in (*branches, *self.conv_kxk):
            y = branch(x)
            out = y if out is None else out + y
        out = self.lab(out)
        return self.act(out) if self.use_act else out

    def _forward_batch_stats(self, x):
        # lab(sum_b BN_b(z_b)) = sum_b BN_b'(z_b) with gamma' = scale*gamma, beta' = scale*beta (+ lab bias once)
        scale, lab_bias = self.lab.scale, self.lab.bias
        out = None
        pending_bias = lab_bias

        def folded(bn, z, weight=None, bias=None, running_mean=None, running_var=None, groups=1, depthwise=None,
                   residual=None):
            nonlocal pending_bias
            weight = bn.weight if weight is None else weight
            bias = bn.bias if bias is None else bias
            beta = bias * scale
            if pending_bias is not None:
                beta, pending_bias = beta + pending_bias, None
            return _batch_norm(bn, z, weight * scale, beta, running_mean, running_var, groups, depthwise, residual)

        if (self.depthwise and self.identity is not None and self.conv_1x1 is not None
                and self.identity.training and self.conv_1x1.bn.training
                and channel_kernels_apply(x, self.identity.weight)):
            out, pending_bias = self._identity_and_1x1_batch_stats(x), None
        else:
            if self.identity is not None:
                out = folded(self.identity, x)
            if self.conv_1x1 is not None:
                y = folded(self.conv_1x1.bn, self.conv_1x1.conv(x))
                out = y if out is None else out + y
        if self.stack_branches and len({bn.training for bn in self._bn_layers()}) == 1:
            out = self._stacked_depthwise(x, folded, residual=out)  # the other branches added in its kernel
        else:
            for branch in self.conv_kxk:
                y = folded(branch.bn, branch.conv(x))
                out = y if out is None else out + y
        return out

    def _identity_and_1x1_batch_stats(self, x):
        """``lab`` of the identity BN + the 1x1 depthwise branch's BN (stride 1, batch statistics) as one
        per-channel affine of ``x``: the 1x1 depthwise conv is ``w_c x_c``, so its batch statistics are
        ``w mean`` and ``w^2 var`` of ``x``'s, and ``identity_bn(x) + bn(w x)`` = ``a x + d`` with
        ``a = gamma_id / sqrt(var + eps) + gamma_1 w / sqrt(w^2 var + eps)``. Same function as the two BNs (float32
        rounding aside), running statistics updated as theirs; only ``x`` is kept for the backward, where the two BNs
        keep the conv output ``w x`` (an activation-sized tensor per depthwise layer). Used where wb's channel kernels
        run (training on CPU in float32, ``ops.channel_kernels_apply``); GPU and AMP keep the two BNs."""
        c = self.in_channels
        identity, bn = self.identity, self.conv_1x1.bn
        w = self.conv_1x1.conv.weight.reshape([c])
        mean, var = channel_moments(x)
        var_1x1 = w * w * var
        a = identity.weight / paddle.sqrt(var + identity._epsilon) + bn.weight * w / paddle.sqrt(
            var_1x1 + bn._epsilon)
        scale = self.lab.scale
        a = a * scale
        d = (identity.bias + bn.bias) * scale + self.lab.bias - a * mean
        self._update_running(identity, mean, var)
        self._update_running(bn, w.detach() * mean, var_1x1)
        return channel_affine(x, a, d)

    def _stacked_depthwise(self, x, folded, residual=None):
        """All kxk depthwise branches as one conv with channel multiplier n (output channel c*n + b), plus
        ``residual`` (the other branches' sum) when given."""
        n, c = len(self.conv_kxk), self.in_channels
        branches = self.conv_kxk

        def interleave(tensors):
            return paddle.stack(list(tensors), axis=1).reshape([n * c] + list(tensors[0].shape[1:]))

        kernel = interleave([b.conv.weight for b in branches])
        running_mean = interleave([b.bn._mean for b in branches])
        running_var = interleave([b.bn._variance for b in branches])
        y = folded(  # one BN per branch over the stacked conv channels, summed over the branches: [N, C, H, W]
            branches[0].bn,
            x,
            weight=interleave([b.bn.weight for b in branches]),
            bias=interleave([b.bn.bias for b in branches]),
            running_mean=running_mean,
            running_var=running_var,
            groups=n,
            depthwise=(kernel, self.stride, self.padding),
            residual=residual,
        )
        if branches[0].bn.training:  # the stacked statistics were updated on copies: write them back
            with paddle.no_grad():
                for index, branch in enumerate(branches):
                    paddle.assign(running_mean.reshape([c, n])[:, index], output=branch.bn._mean)
                    paddle.assign(running_var.reshape([c, n])[:, index], output=branch.bn._variance)
        return y

    def _pointwise_batch_stats(self, x):
        """Train-mode pointwise layer with every branch's batch statistics derived from the input covariance.

        For a 1x1 conv ``z_b = W_b x`` the BN batch statistics are linear/quadratic in the input:
        ``mean_b = W_b mu`` and ``var_b = diag(W_b Sigma W_b^T)`` (``mu``, ``Sigma``: per-channel mean and
        covariance of ``x`` over N, H, W). So ``lab(identity_bn(x) + sum_b bn_b(W_b x))`` equals
        ``W_eff (x - mu) + c`` with ``W_eff = sum_b s_b W_b + diag(s_id)``, ``s = lab.scale * gamma /
        sqrt(var + eps)``: one matmul for the covariance and one for the output instead of one conv and one BN
        per branch, and autograd still differentiates through the batch statistics exactly as BN does. Same
        function as upstream's graph (float32 rounding aside); running statistics are updated as Paddle's BN
        does (momentum, biased variance). Returns ``(W_eff (x - mu), c)``: the caller adds ``c`` per channel (in
        the activation's kernel where it runs).
        """
        n, c, h, w = x.shape
        centered, mean, covariance = centered_covariance(x)  # [N, C, H*W], [C] (no gradient), [C, C]

        scale, lab_bias = self.lab.scale, self.lab.bias
        weights = paddle.stack([b.conv.weight.reshape([self.out_channels, c]) for b in self.conv_kxk])
        branch_var = (paddle.matmul(weights, covariance) * weights).sum(axis=-1)  # [branches, C_out]
        gammas = paddle.stack([b.bn.weight for b in self.conv_kxk])
        bn = self.conv_kxk[0].bn
        branch_scale = gammas * scale / paddle.sqrt(branch_var + bn._epsilon)
        effective = (branch_scale.unsqueeze(-1) * weights).sum(axis=0)  # [C_out, C_in]
        shift = paddle.stack([b.bn.bias for b in self.conv_kxk]).sum(axis=0)
        if self.identity is not None:
            identity_var = paddle.diagonal(covariance)
            identity_scale = self.identity.weight * scale / paddle.sqrt(identity_var + self.identity._epsilon)
            effective = effective + paddle.diag(identity_scale)
            shift = shift + self.identity.bias
        shift = shift * scale + lab_bias

        with paddle.no_grad():  # running statistics, exactly as each BN layer would update them
            branch_mean = paddle.matmul(weights, mean.unsqueeze(-1)).squeeze(-1)
            for index, branch in enumerate(self.conv_kxk):
                self._update_running(branch.bn, branch_mean[index], branch_var[index])
            if self.identity is not None:
                self._update_running(self.identity, mean, identity_var)

        # the per-channel shift is returned, not added: the activation adds it in its own pass (forward)
        return paddle.matmul(effective, centered).reshape([n, self.out_channels, h, w]), shift

    @staticmethod
    @paddle.no_grad()
    def _update_running(bn: nn.BatchNorm2D, batch_mean, batch_var) -> None:
        momentum = bn._momentum
        paddle.assign(bn._mean * momentum + batch_mean.detach() * (1 - momentum), output=bn._mean)
        paddle.assign(bn._variance * momentum + batch_var.detach() * (1 - momentum), output=bn._variance)

    # ------------------------------------------------------------------------------------------- fusion

    def _fold_terms(self) -> list:
        """``(kind, weight, bn)`` of each branch, in the order their folded kernels are summed."""
        terms = [("kxk", branch.conv.weight, branch.bn) for branch in self.conv_kxk]
        if self.conv_1x1 is not None:
            terms.append(("1x1", self.conv_1x1.conv.weight, self.conv_1x1.bn))
        if self.identity is not None:
            terms.append(("identity", self.identity_kernel, self.identity))
        return terms

    def fold_parameters(self) -> tuple[list, list, list, list]:
        """The parameters the fold reads: branch weights (kxk, then 1x1), BN scales and BN shifts (one per branch,
        the identity last), the learnable affine's scale and bias."""
        terms = self._fold_terms()
        return ([w for kind, w, _ in terms if kind != "identity"], [bn.weight for _, _, bn in terms],
                [bn.bias for _, _, bn in terms], [self.lab.scale, self.lab.bias])

    def fused_kernel_bias_tensors(self, include_lab: bool = False):
        """Eval-mode branch sum as one conv (weight, bias), in float32 (differentiable).

        Training with frozen BatchNorms computes it every step. Where wb's kernels run (eager, gradients recorded,
        CPU float32) it is one node (:class:`_NativeFold`) instead of ~40 small ops and their ~40 gradient nodes per
        layer, whose cost is the call, not the data. PP-OCRv5_mobile_rec's 28 layers, forward + backward: 63 -> 29 ms;
        a step (NRTR skipped, batch 16, alternating in one process, median of 12): width 96 603 -> 568 ms, width 320
        1,102 -> 1,057 ms, batch 1 165 -> 126 ms. (Not kept: the same node with its backward in Paddle ops, slower
        than the op-by-op fold, 68 -> 77 ms; all 28 layers of a step in one node around a many-layer op, 2026-12-07
        AMD, folds alone in a loop: forward + backward 39-43 ms against 30-31 for the same op a layer at a time: a
        custom op's outputs are a fixed number of tensors, so its gradients came as one fresh 19 MB tensor -- page
        faults: 10.8 ms for the op, 3.8 with glibc keeping freed memory -- split into 470 pieces and reshaped.)"""
        if include_lab:
            weights, gammas, betas, lab = self.fold_parameters()
            if kernels.training_applies(*weights, *gammas, *betas, *lab):
                ops = kernels.rep_fold_ops()
                if ops is not None:
                    bns = self._bn_layers()  # the fold_parameters order: kxk, 1x1, identity
                    statistics = ([bn._mean for bn in bns], [bn._variance for bn in bns])
                    attrs = (float(bns[0]._epsilon), int(self.kernel_size), self.identity is not None,
                             int(self.in_channels // self.groups), kernels.native_threads())
                    return _NativeFold.apply(ops, statistics, attrs, self.conv_1x1 is not None,
                                             (len(weights), len(gammas)), *weights, *gammas, *betas, *lab)
        return _fold_branches(self, include_lab)

    def fused_kernel_bias(self) -> tuple[np.ndarray, np.ndarray]:
        """The eval-mode branch sum as one conv (weight, bias), computed in float64 numpy (used by :meth:`rep`)."""
        k = self.kernel_size
        in_per_group = self.in_channels // self.groups
        kernel = np.zeros((self.out_channels, in_per_group, k, k), dtype=np.float64)
        bias = np.zeros((self.out_channels,), dtype=np.float64)
        for branch in self.conv_kxk:
            scale, shift = _bn_scale_shift(branch.bn)
            kernel += branch.conv.weight.numpy().astype(np.float64) * scale[:, None, None, None]
            bias += shift
        if self.conv_1x1 is not None:
            scale, shift = _bn_scale_shift(self.conv_1x1.bn)
            w = self.conv_1x1.conv.weight.numpy().astype(np.float64) * scale[:, None, None, None]
            kernel[:, :, k // 2, k // 2] += w[:, :, 0, 0]  # a 1x1 kernel is the centre tap of a kxk one
            bias += shift
        if self.identity is not None:
            scale, shift = _bn_scale_shift(self.identity)
            channels = np.arange(self.in_channels)
            kernel[channels, channels % in_per_group, k // 2, k // 2] += scale
            bias += shift
        return kernel, bias

    @paddle.no_grad()
    def rep(self) -> None:
        """Fuse the branches into ``reparam_conv`` in place (export / inference). Idempotent."""
        if self.is_repped:
            return
        kernel, bias = self.fused_kernel_bias()
        self.reparam_conv = nn.Conv2D(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            groups=self.groups,
        )
        self.reparam_conv.weight.set_value(kernel.astype(np.float32))
        self.reparam_conv.bias.set_value(bias.astype(np.float32))
        # Drop the training branches so the fused layer holds each parameter once.
        del self.conv_kxk
        self.conv_1x1 = None
        self.identity = None
        if hasattr(self, "identity_kernel"):
            del self.identity_kernel
        self.is_repped = True


    @paddle.no_grad()
    def fold_for_deployment(self) -> None:
        """Deployment only, after :meth:`rep`: fold ``lab`` into ``reparam_conv`` (``s (W x + b) + c`` =
        ``(s W) x + (s b + c)``) and bake ``act.lab`` into a :class:`ConstantAffine`. The layer is then one conv,
        its activation and one constant affine: what oneDNN runs as a single fused conv.

        Why: the two scalar affines were four full passes over each rep layer's output -- 45-58 % of
        PP-OCRv5_mobile_rec's evaluation time in both Paddle Inference (oneDNN) and onnxruntime on the stock
        graph (profiled, 64 crops 48x320, 1 thread). The state dict no longer has the ``lab`` entries of
        upstream's inference graphs, so importers (which map those) fuse without this step. Idempotent."""
        if not self.is_repped:
            raise RuntimeError("fold_for_deployment() needs the fused layer: call rep() first")
        if isinstance(self.lab, LearnableAffineBlock):
            scale, bias = self.lab.constants()
            self.reparam_conv.weight.set_value(self.reparam_conv.weight * scale)
            self.reparam_conv.bias.set_value(self.reparam_conv.bias * scale + bias)
            self.lab = ConstantAffine(1.0, 0.0)
        if isinstance(self.act.lab, LearnableAffineBlock):
            self.act.lab = ConstantAffine(*self.act.lab.constants())


class SqueezeExcite(nn.Layer):
    """Channel attention: global average -> 1x1 reduce -> ReLU -> 1x1 expand -> hard-sigmoid (slope 1/6)."""

    def __init__(self, channels: int, reduction: int = 4, lr_mult: float = 1.0):
        super().__init__()
        def attr():
            return ParamAttr(learning_rate=lr_mult)

        self.conv1 = nn.Conv2D(channels, channels // reduction, 1, weight_attr=attr(), bias_attr=attr())
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1, weight_attr=attr(), bias_attr=attr())

    def forward(self, x):
        w = F.adaptive_avg_pool2d(x, 1)
        w = F.hardsigmoid(self.conv2(F.relu(self.conv1(w))))
        return x * w


class LCNetV3Block(nn.Layer):
    """Depthwise :class:`LearnableRepLayer` (-> optional squeeze-excite) -> pointwise :class:`LearnableRepLayer`."""

    def __init__(
        self, in_channels, out_channels, stride, kernel, use_se=False, num_branches=4, lr_mult=1.0, lab_lr=0.1
    ):
        super().__init__()
        self.use_se = use_se
        self.dw_conv = LearnableRepLayer(
            in_channels, in_channels, kernel, stride, groups=in_channels, num_branches=num_branches,
            lr_mult=lr_mult, lab_lr=lab_lr,
        )
        if use_se:
            self.se = SqueezeExcite(in_channels, lr_mult=lr_mult)
        self.pw_conv = LearnableRepLayer(
            in_channels, out_channels, 1, 1, num_branches=num_branches, lr_mult=lr_mult, lab_lr=lab_lr
        )

    def forward(self, x):
        x = self.dw_conv(x)
        if self.use_se:
            x = self.se(x)
        return self.pw_conv(x)

    @paddle.no_grad()
    def fold_for_deployment(self) -> None:
        """Deployment only, after ``rep()``: both rep layers fold their affines
        (:meth:`LearnableRepLayer.fold_for_deployment`), then, with no squeeze-excite between them, the depthwise
        activation's constant affine ``s h + c`` moves into the pointwise 1x1 conv after it (``W (s h + c) + b`` =
        ``(s W) h + (b + c W 1)``: exact, a 1x1 conv has no padding). Why: on a receipt page (PP-OCRv5_mobile_det,
        4000x2816) the ``scale`` ops left by the first fold took 15 % of the evaluation in Paddle Inference, oneDNN
        fusing none of them. The pointwise activation's affine stays: the next block's depthwise conv pads with
        zeros, which an affine before it would shift. Idempotent."""
        self.dw_conv.fold_for_deployment()
        self.pw_conv.fold_for_deployment()
        affine = self.dw_conv.act.lab
        if self.use_se or not self.dw_conv.use_act or (affine.scale, affine.bias) == (1.0, 0.0):
            return
        conv = self.pw_conv.reparam_conv
        weight = conv.weight.numpy().astype(np.float64)  # [out, in, 1, 1]
        bias = conv.bias.numpy().astype(np.float64)
        conv.bias.set_value((bias + affine.bias * weight.sum(axis=(1, 2, 3))).astype(np.float32))
        conv.weight.set_value((weight * affine.scale).astype(np.float32))
        self.dw_conv.act.lab = ConstantAffine(1.0, 0.0)


class PPLCNetV3(nn.Layer):
    """PPLCNetV3 backbone. ``det=True``: 4 projected maps; ``det=False``: one pooled rec sequence map.

    ``out_channels`` is a list of 4 ints (det) or one int (rec), for building the neck/head.
    """

    def __init__(
        self,
        scale: float = 1.0,
        det: bool = False,
        num_branches: int = 4,
        lr_mult_list: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
        lab_lr: float = 0.1,
        train_time_steps: int = 40,
        eval_pool: tuple[int, int] = (3, 2),
    ):
        super().__init__()
        if len(lr_mult_list) != 6:
            raise ValueError(f"PPLCNetV3: lr_mult_list needs 6 entries (stem + 5 stages), got {len(lr_mult_list)}")
        self.scale = scale
        self.det = det
        self.train_time_steps = train_time_steps
        self.eval_pool = list(eval_pool)
        stages = DET_STAGES if det else REC_STAGES

        self.conv1 = ConvBN(3, make_divisible(16 * scale), 3, stride=2, lr_mult=lr_mult_list[0])
        for index, specs in enumerate(stages):
            blocks = nn.Sequential(
                *[
                    LCNetV3Block(
                        make_divisible(spec.in_channels * scale),
                        make_divisible(spec.out_channels * scale),
                        spec.stride,
                        spec.kernel,
                        use_se=spec.use_se,
                        num_branches=num_branches,
                        lr_mult=lr_mult_list[index + 1],
                        lab_lr=lab_lr,
                    )
                    for spec in specs
                ]
            )
            setattr(self, f"blocks{index + 2}", blocks)

        if det:
            # Outputs of blocks3..blocks6, each projected by a biased 1x1 conv.
            stage_channels = [make_divisible(stages[i][-1].out_channels * scale) for i in range(1, 5)]
            projected = [int(c * scale) for c in DET_PROJECTION_CHANNELS]
            self.layer_list = nn.LayerList(
                [nn.Conv2D(cin, cout, 1) for cin, cout in zip(stage_channels, projected)]
            )
            self.out_channels: list[int] | int = projected
        else:
            self.out_channels = make_divisible(512 * scale)

    def forward(self, x):
        x = self.blocks2(self.conv1(x))
        if self.det:
            features = []
            for stage, proj in zip((self.blocks3, self.blocks4, self.blocks5, self.blocks6), self.layer_list):
                x = stage(x)
                features.append(proj(x))
            return features
        x = self.blocks6(self.blocks5(self.blocks4(self.blocks3(x))))
        return rec_feature_row(x, training=self.training, train_time_steps=self.train_time_steps,
                               eval_pool=self.eval_pool)
