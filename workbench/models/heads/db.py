"""Differentiable Binarization (DB) head, https://arxiv.org/abs/1911.08947.

:class:`DBBranch` is one prediction branch (3x3 conv+BN+ReLU, 2x transposed conv+BN+ReLU, 2x transposed conv to
one channel, sigmoid): from the stride-4 neck map it predicts a full-resolution map. :class:`DBHead` has two
of them, ``binarize`` (shrink / probability map P) and ``thresh`` (threshold map T), and in training also the
approximate binary map ``B = 1 / (1 + exp(-k (P - T)))``.

PP-OCRv6 detectors add *auxiliary* branch pairs (``aux_in_channels`` > 0): ``aux_binarize_p{4,3,2}`` /
``aux_thresh_p{4,3,2}`` read the neck's top-down sums at strides 16 / 8 / 4 (bilinearly upsampled to stride 4) and
give three more (shrink, threshold, binary) maps that the loss weights 0.2 / 0.3 / 0.4 (deep supervision). They
exist only for training: eval and export never run them (``drop_training_branches`` removes them).

``PFHeadLocal`` (server detector) reuses :class:`DBBranch` through ``forward(x, return_features=True)``, which
also returns the 2x-upsampled feature map that feeds its local refinement module.
"""

from __future__ import annotations

import math

import numpy as np

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant, KaimingUniform, Uniform

from workbench.models.ops import Conv2DTranspose, same_conv2d  # CPU-training variants of Paddle's
from workbench.models.recompute import recompute_part

__all__ = ["DBBranch", "DBHead", "PFHeadLocal"]


def _uniform_bias(fan_in: int) -> ParamAttr:
    bound = 1.0 / math.sqrt(fan_in)
    return ParamAttr(initializer=Uniform(-bound, bound))


def _zero_nans_after_relu(x):
    """``fix_nan`` on a ReLU's output: a BN over a degenerate batch can yield NaN; upstream zeroes them in training
    (``where(isnan(x), 0, x)``). Skipped where the ReLU already did it: Paddle's CPU ReLU maps NaN to 0 with a zero
    gradient (checked once per device by :func:`_relu_zeroes_nans`), so the ``where`` -- an isnan mask, a zeros map,
    a copy and their gradients on the stride-2 maps -- is the identity there. PP-OCRv5_mobile_det training, batch 4,
    640^2 on CPU: Paddle's tensor peak 1.27 -> 1.14 GB, ``wb train``'s peak RSS 0.07 GB lower at the same speed
    (``benchmarks/bench_det_training.py --only wb``, README "How fast")."""
    if _relu_zeroes_nans(x):
        return x
    return paddle.where(paddle.isnan(x), paddle.zeros_like(x), x)


_RELU_ZEROES_NANS: dict[tuple[str, str], bool] = {}


def _relu_zeroes_nans(x) -> bool:
    """Whether ``F.relu`` on ``x``'s device and dtype (eager) gives 0 for NaN and a zero gradient there -- then the
    ReLU already does what ``fix_nan`` asks. Static graphs (export, compiled evaluation) keep the ``where``."""
    if not paddle.in_dynamic_mode():
        return False
    key = (str(x.place), str(x.dtype))
    if key not in _RELU_ZEROES_NANS:
        with paddle.set_grad_enabled(True):
            probe = paddle.to_tensor([float("nan")] * 2, dtype=x.dtype, place=x.place, stop_gradient=False)
            out = F.relu(probe)
            (grad,) = paddle.grad([out], [probe], grad_outputs=[paddle.ones_like(out)])
        _RELU_ZEROES_NANS[key] = bool((out == 0).all()) and bool((grad == 0).all())
    return _RELU_ZEROES_NANS[key]


class DBBranch(nn.Layer):
    """conv1 (k0 x k0) -> conv_bn1 + ReLU -> conv2 (2x up) -> conv_bn2 + ReLU -> conv3 (2x up, 1 channel)."""

    def __init__(self, in_channels: int, kernel_list: tuple[int, int, int] = (3, 2, 2), fix_nan: bool = False):
        super().__init__()
        mid = in_channels // 4
        self.padding = kernel_list[0] // 2
        self.conv1 = nn.Conv2D(in_channels, mid, kernel_list[0], padding=self.padding, bias_attr=False)
        self.conv_bn1 = nn.BatchNorm2D(
            mid, weight_attr=ParamAttr(initializer=Constant(1.0)), bias_attr=ParamAttr(initializer=Constant(1e-4))
        )
        self.conv2 = Conv2DTranspose(
            mid, mid, kernel_list[1], stride=2,
            weight_attr=ParamAttr(initializer=KaimingUniform()), bias_attr=_uniform_bias(mid),
        )
        self.conv_bn2 = nn.BatchNorm2D(
            mid, weight_attr=ParamAttr(initializer=Constant(1.0)), bias_attr=ParamAttr(initializer=Constant(1e-4))
        )
        self.conv3 = Conv2DTranspose(
            mid, 1, kernel_list[2], stride=2,
            weight_attr=ParamAttr(initializer=KaimingUniform()), bias_attr=_uniform_bias(mid),
        )
        self.fix_nan = fix_nan

    # model.recompute may name "<branch>.tail": conv_bn2 + ReLU + conv3 run again in the backward pass from conv2's
    # output, so the ReLU's output (24 x 320^2 per image at 640^2, which conv3 keeps for its weight gradient) is not
    # held from the forward. PP-OCRv5_mobile_det, batch 4, 640^2, both branches: 78 MB less at the end of the
    # forward (1,123 -> 1,045 MB) for a BN, a ReLU and a 1-channel transposed conv again, within the step's noise
    # (2.638 vs 2.635 s, median of 6 alternating)
    recompute_parts = ("tail",)

    def features(self, x):
        """The stride-2 feature map after ``conv_bn2`` + ReLU (input of ``conv3``)."""
        return self.features_after_conv1(self.conv1(x))

    def features_after_conv1(self, x):
        return self._bn2_relu(self._up_after_conv1(x))

    def _up_after_conv1(self, x):
        """conv_bn1 + ReLU + conv2 (2x up) on conv1's output."""
        x = F.relu(self.conv_bn1(x))
        if self.fix_nan and self.training:
            x = _zero_nans_after_relu(x)
        return self.conv2(x)

    def _bn2_relu(self, x):
        x = F.relu(self.conv_bn2(x))
        if self.fix_nan and self.training:
            x = _zero_nans_after_relu(x)
        return x

    def _tail(self, x):
        return self.conv3(self._bn2_relu(x))

    def logits_after_conv1(self, x):
        """Pre-sigmoid full-resolution map from conv1's output (the ``tail`` part recomputed when chosen)."""
        return recompute_part(self, "tail", self._tail, self._up_after_conv1(x), (self.conv_bn2, self.conv3))

    @paddle.no_grad()
    def fold_for_deployment(self) -> None:
        """Deployment only (eval mode): fold ``conv_bn2`` into the transposed conv before it, which Paddle
        Inference's oneDNN passes leave as a separate ``batch_norm`` (4 % of PP-OCRv5_mobile_det's evaluation of a
        receipt page). Per output channel ``a = gamma / sqrt(var + eps)``: ``W[:, o] *= a[o]``,
        ``b = a (b - mean) + beta``. Idempotent."""
        bn = self.conv_bn2
        if not isinstance(bn, nn.BatchNorm2D):
            return
        a = bn.weight.numpy().astype(np.float64) / np.sqrt(bn._variance.numpy().astype(np.float64) + bn._epsilon)
        weight = self.conv2.weight.numpy().astype(np.float64)  # [in, out, k, k] (groups 1)
        bias = self.conv2.bias.numpy().astype(np.float64)
        self.conv2.weight.set_value((weight * a[None, :, None, None]).astype(np.float32))
        self.conv2.bias.set_value((a * (bias - bn._mean.numpy()) + bn.bias.numpy()).astype(np.float32))
        self.conv_bn2 = nn.Identity()

    def logits(self, x):
        """Pre-sigmoid full-resolution map ``[N, 1, H, W]``."""
        return self.logits_after_conv1(self.conv1(x))

    def forward(self, x, return_features: bool = False):
        if return_features:  # the stride-2 features are kept for the caller: no part to recompute
            f = self.features(x)
            return F.sigmoid(self.conv3(f)), f
        return F.sigmoid(self.logits(x))


#: neck output key -> upsampling factor to stride 4, in the order the auxiliary branches are created
AUX_LEVELS = {"p4": 4, "p3": 2, "p2": 1}


class DBHead(nn.Layer):
    """Eval: probability map ``[N, 1, H, W]``. Train: ``{"maps": [N, 3, H, W]}`` = shrink, threshold, binary,
    plus ``aux_maps_p4 / p3 / p2`` (same layout) when ``aux_in_channels`` > 0 and the neck gives ``aux_*`` maps.

    The input is the neck's map, or (a PP-OCRv6 neck in training) ``{"fuse": map, "aux_p4": ..., ...}``."""

    def __init__(self, in_channels: int, k: int = 50, kernel_list=(3, 2, 2), fix_nan: bool = False,
                 aux_in_channels: int = 0):
        super().__init__()
        self.k = k
        self.binarize = DBBranch(in_channels, kernel_list, fix_nan)
        self.thresh = DBBranch(in_channels, kernel_list, fix_nan)
        self.aux_in_channels = aux_in_channels
        if aux_in_channels > 0:
            for level in AUX_LEVELS:
                setattr(self, f"aux_binarize_{level}", DBBranch(aux_in_channels, kernel_list, fix_nan))
                setattr(self, f"aux_thresh_{level}", DBBranch(aux_in_channels, kernel_list, fix_nan))

    def step_function(self, shrink, threshold):
        """Approximate binarisation ``1 / (1 + exp(-k (P - T)))`` (upstream's exact formula, not ``sigmoid``)."""
        return paddle.reciprocal(1 + paddle.exp(-self.k * (shrink - threshold)))

    def forward(self, x):
        aux = {}
        if isinstance(x, dict):
            aux = {key[4:]: value for key, value in x.items() if key.startswith("aux_")}
            x = x["fuse"]
        if not self.training:
            return self.binarize(x)
        out = self._train_maps(x)
        if self.aux_in_channels > 0:
            for level, factor in AUX_LEVELS.items():
                if level not in aux:
                    continue
                feature = aux[level]
                if factor > 1:
                    feature = F.interpolate(feature, scale_factor=factor, mode="bilinear", align_corners=False)
                shrink = getattr(self, f"aux_binarize_{level}")(feature)
                threshold = getattr(self, f"aux_thresh_{level}")(feature)
                out[f"aux_maps_{level}"] = paddle.concat([shrink, threshold, self.step_function(shrink, threshold)],
                                                         axis=1)
        return out

    def _train_maps(self, x):
        # Both branches open with a 3x3 conv on the same input: one conv with both kernels stacked shares the
        # im2col work (~25 % less head time on CPU); each branch then continues with its own BN.
        kernels = paddle.concat([self.binarize.conv1.weight, self.thresh.conv1.weight], axis=0)
        stacked = same_conv2d(x, kernels, self.binarize.padding)  # wb's kernel in CPU training, else Paddle's
        if stacked is None:
            stacked = F.conv2d(x, kernels, padding=self.binarize.padding)
        first, second = paddle.split(stacked, 2, axis=1)
        shrink = F.sigmoid(self.binarize.logits_after_conv1(first))
        threshold = F.sigmoid(self.thresh.logits_after_conv1(second))
        binary = self.step_function(shrink, threshold)
        return {"maps": paddle.concat([shrink, threshold, binary], axis=1)}

    def drop_training_branches(self) -> None:
        """Remove ``thresh`` and the auxiliary branches (unused in eval) before export."""
        self.thresh = None
        if self.aux_in_channels > 0:
            for level in AUX_LEVELS:
                setattr(self, f"aux_binarize_{level}", None)
                setattr(self, f"aux_thresh_{level}", None)


class PFHeadLocal(DBHead):
    """The PP-OCRv5 server det head: a DBHead whose shrink map is refined by a local module (``cbn_layer``).

    Eval returns ``0.5 * (shrink + refined)``. Train returns upstream's dict (see ``pfhead_parts``): channel 0 of
    ``maps`` is the refined map, and ``cbn_maps`` carries the binary map, which DBLoss scores a second time.
    """

    def __init__(self, in_channels: int, k: int = 50, mode: str = "large", fix_nan: bool = False):
        from workbench.models.heads.pfhead_parts import build_cbn_layer

        super().__init__(in_channels, k=k, fix_nan=fix_nan)
        self.cbn_layer = build_cbn_layer(in_channels, mode)

    def forward(self, x):
        from workbench.models.heads import pfhead_parts as parts

        shrink, feature = self.binarize(x, return_features=True)
        refined = parts.refine_shrink_map(self.cbn_layer, shrink, feature)
        if not self.training:
            return parts.fuse_eval_maps(shrink, refined)
        threshold = self.thresh(x)
        return parts.train_outputs(refined, threshold, self.step_function(shrink, threshold))
