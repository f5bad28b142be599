"""PPLCNetV4: the backbone of every PP-OCRv6 model (tiny / small / medium, det and rec).

A MetaFormer-style network of :class:`LCNetV4Block` s: a *token mixer* (3x3 depth-wise conv, optionally followed
by a squeeze-excite) and a *channel mixer* (1x1 expand x2 -> GELU -> 1x1 compress), with a residual around the
channel mixer when the block keeps its width and resolution. Where it does, the depth-wise conv is a
:class:`RepDWConv` (3x3 + 1x1 + identity branches under one BatchNorm), which ``rep()`` folds into one 3x3 conv.

* ``det=True``: a :class:`StemBlock` (stride 4), four stages at strides 4 / 8 / 16 / 32, returning the four
  stage outputs (``out_channels`` = their widths: tiny 32/48/64/160, small 48/96/192/384, medium
  128/256/512/896).
* ``det=False`` (rec): a stride-4 stem (tiny: two plain 3x3 conv-BN with GELU between them; small / medium: the
  branch :class:`StemBlock`), stages ``blocks2..blocks5`` (``blocks4`` / ``blocks5`` halve only the height), then
  one row: train ``adaptive_avg_pool(1, 40)``, eval ``avg_pool(3x2)`` -- ``[N, C, 1, W/8]`` for 48-pixel lines.

Facts from PaddleOCR's ``ppocr/modeling/backbones/rec_lcnetv4.py`` (block tables, layer names, activations,
initialisation); state-dict layout checked against ``../shared/fixtures/manifests/PP-OCRv6_*.json``.

Export form. Upstream's ``rep()`` also folds every conv + BatchNorm pair into a biased conv. Here ``rep()`` fuses
only the multi-branch :class:`RepDWConv`; conv + BatchNorm pairs stay as they are (Paddle Inference folds them
itself), so the inference graph computes the same function and the importer maps an exporter's folded convs back
onto conv + BN (``weights.importers``: un-folding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant
from paddle.regularizer import L2Decay

from workbench.errors import ConfigError
from workbench.models.ops import DepthwiseConv2D, PointwiseConv2D, rec_feature_row, spatial_mean

__all__ = [
    "DET_CONFIGS",
    "REC_CONFIGS",
    "BlockSpec",
    "ConvBN",
    "ConvBNAct",
    "LCNetV4Block",
    "PPLCNetV4",
    "RepDWConv",
    "SELayer",
    "StemBlock",
]


@dataclass(frozen=True)
class BlockSpec:
    """One :class:`LCNetV4Block`: depth-wise kernel, input / output width, stride (int or (h, w)), SE."""

    kernel: int
    in_channels: int
    out_channels: int
    stride: int | tuple[int, int]
    use_se: bool


def _blocks(*rows) -> tuple[BlockSpec, ...]:
    return tuple(BlockSpec(*row) for row in rows)


def _det_config(stem: tuple[int, int], widths: tuple[int, int, int, int]) -> dict:
    c1, c2, c3, c4 = widths
    return {
        "stem": stem,
        "blocks_s1": _blocks((3, c1, c1, 1, True), (3, c1, c1, 1, False)),
        "blocks_s2": _blocks((3, c1, c2, 2, False), (3, c2, c2, 1, True), (3, c2, c2, 1, False)),
        "blocks_s3": _blocks((3, c2, c3, 2, False), (3, c3, c3, 1, True), (3, c3, c3, 1, False),
                             (3, c3, c3, 1, True), (3, c3, c3, 1, False)),
        "blocks_s4": _blocks((3, c3, c4, 2, False), (3, c4, c4, 1, True), (3, c4, c4, 1, False)),
    }


#: det stage tables (stem mid / out widths, then the blocks of each stage), per model size
DET_CONFIGS = {
    "tiny": _det_config((16, 32), (32, 48, 64, 160)),
    "small": _det_config((24, 48), (48, 96, 192, 384)),
    "medium": _det_config((64, 128), (128, 256, 512, 896)),
}

_H2 = (2, 1)  # rec stages 4 and 5 halve the height only

#: rec stage tables; ``stem_type`` "simple" = two 3x3 conv-BN (GELU between), "branch" = :class:`StemBlock`
REC_CONFIGS = {
    "tiny": {
        "stem": (24, 48), "stem_type": "simple",
        "blocks2": _blocks((3, 48, 48, 1, True)),
        "blocks3": _blocks((3, 48, 48, 1, False)),
        "blocks4": _blocks((3, 48, 96, _H2, False), (3, 96, 96, 1, True), (3, 96, 96, 1, False)),
        "blocks5": _blocks((3, 96, 160, _H2, False), (3, 160, 160, 1, True), (3, 160, 160, 1, False),
                           (3, 160, 160, 1, False)),
    },
    "small": {
        "stem": (48, 96), "stem_type": "branch",
        "blocks2": _blocks((3, 96, 96, 1, True)),
        "blocks3": _blocks((3, 96, 96, 1, False), (3, 96, 96, 1, False)),
        "blocks4": _blocks((3, 96, 192, _H2, False), *[(3, 192, 192, 1, i % 2 == 0) for i in range(6)]),
        "blocks5": _blocks((3, 192, 384, _H2, False), (3, 384, 384, 1, True), (3, 384, 384, 1, False)),
    },
    "medium": {
        "stem": (64, 128), "stem_type": "branch",
        "blocks2": _blocks((3, 128, 128, 1, True)),
        "blocks3": _blocks((3, 128, 256, 1, False), (3, 256, 256, 1, False), (3, 256, 256, 1, True)),
        "blocks4": _blocks((3, 256, 512, _H2, False), *[(3, 512, 512, 1, i % 2 == 0) for i in range(6)]),
        "blocks5": _blocks((3, 512, 768, _H2, False), (3, 768, 768, 1, True), (3, 768, 768, 1, False)),
    },
}

#: rec training pools the last map to this many time steps whatever the width (upstream constant)
REC_TIME_STEPS_TRAIN = 40


def _no_decay() -> ParamAttr:
    return ParamAttr(regularizer=L2Decay(0.0))


class ConvBN(nn.Layer):
    """Bias-free conv + BatchNorm (upstream ``Conv2D_BN``). ``zero_gamma`` starts the BN scale at 0 (the
    compress conv of a residual block: the block starts as the identity)."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=0, groups=1,
                 zero_gamma: bool = False):
        super().__init__()
        if groups > 1 and groups == in_channels:
            conv = DepthwiseConv2D  # wb's CPU kernels in training
        elif kernel_size == 1 and stride == 1 and padding == 0 and groups == 1:
            conv = PointwiseConv2D
        else:
            conv = nn.Conv2D
        self.conv = conv(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels, weight_attr=ParamAttr(initializer=Constant(0.0 if zero_gamma else 1.0)),
                                 bias_attr=ParamAttr(initializer=Constant(0.0)))

    def forward(self, x):
        return self.bn(self.conv(x))


class ConvBNAct(nn.Layer):
    """Bias-free conv + BatchNorm (no weight decay on its scale / shift) + ReLU: the stem layers.

    ``padding``: an int, or ``"same_upper"`` for the 2x2 stride-1 stem convs (one extra row / column at the
    bottom / right, as Paddle's and ONNX's SAME padding; written out so the graph has explicit pads)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding: int | str | None = None):
        super().__init__()
        if padding == "same_upper":
            total = kernel_size - 1
            pad = [total // 2, total - total // 2, total // 2, total - total // 2]  # top, bottom, left, right
        else:
            pad = (kernel_size - 1) // 2 if padding is None else padding
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride, padding=pad, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels, weight_attr=_no_decay(), bias_attr=_no_decay())
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class StemBlock(nn.Layer):
    """Stride-4 branch stem: stem1 (3x3 s2) feeds a 2x2 max-pool and two 2x2 convs (stem2a / stem2b), which are
    concatenated; stem3 (3x3 s2) and stem4 (1x1) follow. Every conv is a :class:`ConvBNAct`."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int):
        super().__init__()
        self.stem1 = ConvBNAct(in_channels, mid_channels, 3, 2)
        self.stem2a = ConvBNAct(mid_channels, mid_channels // 2, 2, 1, padding="same_upper")
        self.stem2b = ConvBNAct(mid_channels // 2, mid_channels, 2, 1, padding="same_upper")
        self.stem3 = ConvBNAct(mid_channels * 2, mid_channels, 3, 2)
        self.stem4 = ConvBNAct(mid_channels, out_channels, 1, 1)

    def forward(self, x):
        x = self.stem1(x)
        branch = self.stem2b(self.stem2a(x))
        # SAME max-pool, one extra row / column at the end: the input follows a ReLU (>= 0), so zero padding can
        # never win the max and equals Paddle's / ONNX's padded pooling.
        pooled = F.max_pool2d(F.pad(x, [0, 1, 0, 1]), kernel_size=2, stride=1)
        return self.stem4(self.stem3(paddle.concat([pooled, branch], axis=1)))


class SELayer(nn.Layer):
    """Squeeze-excite: mean over H, W -> 1x1 reduce (/4) -> ReLU -> 1x1 expand -> hard-sigmoid (slope 1/6).
    The mean is :func:`~workbench.models.ops.spatial_mean` (same function, less float32 rounding)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x):
        w = spatial_mean(x)
        return x * F.hardsigmoid(self.conv2(F.relu(self.conv1(w))))


def _bn_scale_shift(bn: nn.BatchNorm2D) -> tuple[np.ndarray, np.ndarray]:
    scale = bn.weight.numpy().astype(np.float64) / np.sqrt(bn._variance.numpy().astype(np.float64) + bn._epsilon)
    return scale, bn.bias.numpy().astype(np.float64) - bn._mean.numpy().astype(np.float64) * scale


class RepDWConv(nn.Layer):
    """Re-parameterisable depth-wise conv: ``bn(conv_bn(x) + conv1(x) + x)`` -- a 3x3 conv + BN, a bias-free 1x1
    conv and the identity, summed and normalised by one BatchNorm. ``rep()`` folds it into one biased kxk conv
    (``reparam_conv``); :meth:`unfuse` goes back (import of an inference graph)."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.channels = channels
        self.kernel_size = kernel_size
        self.conv = ConvBN(channels, channels, kernel_size, 1, (kernel_size - 1) // 2, groups=channels)
        self.conv1 = nn.Conv2D(channels, channels, 1, groups=channels, bias_attr=False)
        self.bn = nn.BatchNorm2D(channels, weight_attr=ParamAttr(initializer=Constant(1.0)),
                                 bias_attr=ParamAttr(initializer=Constant(0.0)))
        self.is_repped = False

    def forward(self, x):
        if self.is_repped:
            return self.reparam_conv(x)
        return self.bn(self.conv(x) + self.conv1(x) + x)

    def fused_kernel_bias(self) -> tuple[np.ndarray, np.ndarray]:
        """The kxk kernel and bias of the eval-mode function (float64)."""
        k = self.kernel_size
        inner_scale, inner_shift = _bn_scale_shift(self.conv.bn)
        kernel = self.conv.conv.weight.numpy().astype(np.float64) * inner_scale[:, None, None, None]
        kernel[:, :, k // 2, k // 2] += self.conv1.weight.numpy().astype(np.float64)[:, :, 0, 0] + 1.0
        outer_scale, outer_shift = _bn_scale_shift(self.bn)
        return kernel * outer_scale[:, None, None, None], inner_shift * outer_scale + outer_shift

    @paddle.no_grad()
    def rep(self) -> None:
        if self.is_repped:
            return
        kernel, bias = self.fused_kernel_bias()
        self.reparam_conv = nn.Conv2D(self.channels, self.channels, self.kernel_size, 1, (self.kernel_size - 1) // 2,
                                      groups=self.channels)
        self.reparam_conv.weight.set_value(kernel.astype(np.float32))
        self.reparam_conv.bias.set_value(bias.astype(np.float32))
        del self.conv, self.conv1, self.bn
        self.is_repped = True

    @paddle.no_grad()
    def unfuse(self, kernel: np.ndarray, bias: np.ndarray, **_) -> None:
        """Set the branches so that the eval function is the single conv ``(kernel, bias)``: the outer BN and the
        3x3 branch's BN start as identity affines (the 3x3 BN carrying ``bias``), the 3x3 kernel is ``kernel``
        minus the identity tap, and the 1x1 conv starts at 0 (it gets a gradient, so fine-tuning can grow it).
        Calibration (``models.rep.calibrate_batch_norms``) then gives both BNs real statistics."""
        from workbench.models.rep import set_identity_affine

        if self.is_repped:
            raise ValueError("RepDWConv.unfuse needs the training form (the layer is fused)")
        k = self.kernel_size
        kernel = np.asarray(kernel, dtype=np.float64).copy()
        if kernel.shape != (self.channels, 1, k, k):
            raise ValueError(f"RepDWConv.unfuse: kernel {kernel.shape} does not fit {(self.channels, 1, k, k)}")
        kernel[:, :, k // 2, k // 2] -= 1.0
        self.conv.conv.weight.set_value(kernel.astype(np.float32))
        self.conv1.weight.set_value(np.zeros(self.conv1.weight.shape, np.float32))
        set_identity_affine(self.conv.bn, np.asarray(bias, dtype=np.float64))
        set_identity_affine(self.bn)

    def calibration_batch_norms(self) -> list[nn.Layer]:
        """BatchNorms whose running statistics an import calibrates (eval runs them literally, so their own
        forward sees the real inputs)."""
        return [self.conv.bn, self.bn]


class LCNetV4Block(nn.Layer):
    """token mixer (RepDWConv or a strided conv-BN, + optional SE) -> channel mixer (expand -> GELU -> compress),
    with a residual around the channel mixer when width and resolution are kept."""

    def __init__(self, spec: BlockSpec, expand_ratio: int = 2):
        super().__init__()
        cin, cout, stride, k = spec.in_channels, spec.out_channels, spec.stride, spec.kernel
        self.has_residual = cin == cout and stride == 1
        self.token_mixer = nn.Sequential()
        if self.has_residual:
            self.token_mixer.add_sublayer("rep_dw", RepDWConv(cin, k))
        else:
            self.token_mixer.add_sublayer("dw_conv", ConvBN(cin, cin, k, stride, (k - 1) // 2, groups=cin))
        if spec.use_se:
            self.token_mixer.add_sublayer("se", SELayer(cin))
        hidden = int(cin * expand_ratio)
        self.channel_mixer = nn.Sequential()
        self.channel_mixer.add_sublayer("expand", ConvBN(cin, hidden, 1))
        self.channel_mixer.add_sublayer("act", nn.GELU())
        self.channel_mixer.add_sublayer("compress", ConvBN(hidden, cout, 1, zero_gamma=self.has_residual))

    def forward(self, x):
        x = self.token_mixer(x)
        return x + self.channel_mixer(x) if self.has_residual else self.channel_mixer(x)


def _stage(specs: tuple[BlockSpec, ...]) -> nn.Sequential:
    return nn.Sequential(*[LCNetV4Block(spec) for spec in specs])


class PPLCNetV4(nn.Layer):
    """PPLCNetV4 (see the module docstring). ``out_channels``: 4 widths (det) or one (rec)."""

    def __init__(self, model_size: str = "small", det: bool = False):
        super().__init__()
        # rec training pools to this many steps (upstream); None pools as at inference (W/8: keep-ratio training)
        self.train_time_steps = REC_TIME_STEPS_TRAIN
        table = DET_CONFIGS if det else REC_CONFIGS
        if model_size not in table:
            raise ConfigError(f"PPLCNetV4: model_size {model_size!r} is not one of {sorted(table)}")
        cfg = table[model_size]
        self.det = det
        self.model_size = model_size
        mid, out = cfg["stem"]
        if det:
            self.stem = StemBlock(3, mid, out)
            self.stage_names = ("blocks_s1", "blocks_s2", "blocks_s3", "blocks_s4")
            for name in self.stage_names:
                setattr(self, name, _stage(cfg[name]))
            self.out_channels: list[int] | int = [cfg[name][-1].out_channels for name in self.stage_names]
        else:
            if cfg["stem_type"] == "branch":
                self.conv1 = StemBlock(3, mid, out)
            else:
                self.conv1 = nn.Sequential(ConvBN(3, mid, 3, 2, 1), nn.GELU(), ConvBN(mid, out, 3, 2, 1))
            self.stage_names = ("blocks2", "blocks3", "blocks4", "blocks5")
            for name in self.stage_names:
                setattr(self, name, _stage(cfg[name]))
            self.out_channels = cfg["blocks5"][-1].out_channels

    def forward(self, x):
        if self.det:
            x = self.stem(x)
            features = []
            for name in self.stage_names:
                x = getattr(self, name)(x)
                features.append(x)
            return features
        x = self.conv1(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return rec_feature_row(x, training=self.training, train_time_steps=self.train_time_steps)
