"""PP-LCNet (v1): the classifier of PaddleX's orientation modules, with PaddleClas's parameter names.

PaddleX 3.7 ships three orientation models of this family: ``PP-LCNet_x0_25_textline_ori`` and
``PP-LCNet_x1_0_textline_ori`` (2 classes, input 80×160) and ``PP-LCNet_x1_0_doc_ori`` (4 classes, 224×224).
They are PaddleClas's ``PPLCNetBaseNet``: a 3×3 stem, five stages of depthwise-separable blocks (``blocks2`` ..
``blocks6``; squeeze-excitation in ``blocks6``), global average pooling, a 1×1 ``last_conv`` to 1280 channels,
hardswish, dropout, and the ``fc`` classifier. The text-line models use ``stride_list [2, [2, 1], [2, 1], [2, 1],
[2, 1]]``: after the stem only the height is halved, so a 80×160 line keeps 80 columns of horizontal detail.

State-dict keys, shapes and order are the official training graph's (``conv1.conv.weight``, ``conv1.bn._mean``,
``blocks5.3.dw_conv.conv.weight``, ``blocks6.0.se.conv1.bias``, ``last_conv.weight``, ``fc.weight`` ...), so the
official ``*_pretrained.pdparams`` load as they are. ``tests/test_models_classifiers.py`` checks this against
PaddleX's own implementation of the model (renamed by the converter PaddleX applies to the official weights) and
compares the two forwards.

Dropout is PaddleClas's ``downscale_in_infer``: training zeroes activations without rescaling, evaluation
multiplies by ``1 - p``; both graphs (ours and the exported one) do the same.
"""

from __future__ import annotations

from typing import Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["PPLCNet", "TEXTLINE_STRIDES", "make_divisible"]

# (kernel, in channels, out channels, stride, squeeze-excitation) per block at scale 1.0
STAGES: dict[str, tuple[tuple[int, int, int, int, bool], ...]] = {
    "blocks2": ((3, 16, 32, 1, False),),
    "blocks3": ((3, 32, 64, 2, False), (3, 64, 64, 1, False)),
    "blocks4": ((3, 64, 128, 2, False), (3, 128, 128, 1, False)),
    "blocks5": ((3, 128, 256, 2, False),) + ((5, 256, 256, 1, False),) * 5,
    "blocks6": ((5, 256, 512, 2, True), (5, 512, 512, 1, True)),
}
#: PaddleClas ``stride_list`` of the text-line orientation models: stem, then the first block of blocks3..6
TEXTLINE_STRIDES = (2, (2, 1), (2, 1), (2, 1), (2, 1))
IMAGENET_STRIDES = (2, 2, 2, 2, 2)


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Channels rounded to a multiple of ``divisor``, never below 90 % of ``v`` (PaddleClas's rounding)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvBNLayer(nn.Layer):
    """conv (no bias) → BatchNorm → hardswish; ``padding = (k - 1) // 2``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride=1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                              groups=groups, weight_attr=nn.initializer.KaimingNormal(), bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        return F.hardswish(self.bn(self.conv(x)))


class SEModule(nn.Layer):
    """Squeeze-excitation: pooled → 1×1 conv (/4) → ReLU → 1×1 conv → hardsigmoid (slope 1/6) → scale."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x):
        w = F.adaptive_avg_pool2d(x, 1)
        w = F.hardsigmoid(self.conv2(F.relu(self.conv1(w))))
        return x * w


class DepthwiseSeparable(nn.Layer):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride, use_se: bool):
        super().__init__()
        self.dw_conv = ConvBNLayer(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.se = SEModule(in_channels) if use_se else None
        self.pw_conv = ConvBNLayer(in_channels, out_channels, 1)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw_conv(x)


class PPLCNet(nn.Layer):
    """PP-LCNet with its classifier. ``scale``: channel multiplier (0.25, 1.0, ...); ``strides``: PaddleClas's
    ``stride_list`` (stem, first block of blocks3..6); ``num_classes``: 2 (text line) / 4 (document)."""

    def __init__(self, num_classes: int, *, scale: float = 1.0, strides: Sequence = IMAGENET_STRIDES,
                 class_expand: int = 1280, dropout: float = 0.2):
        super().__init__()
        if len(strides) != 5:
            raise ValueError(f"strides needs 5 entries (stem, blocks3..6), got {strides}")
        self.num_classes = int(num_classes)
        self.conv1 = ConvBNLayer(3, make_divisible(16 * scale), 3, stride=_stride(strides[0]))
        first_stride = dict(zip(("blocks3", "blocks4", "blocks5", "blocks6"), strides[1:]))
        for stage, blocks in STAGES.items():
            layers = []
            for i, (k, c_in, c_out, s, se) in enumerate(blocks):
                if i == 0 and stage in first_stride:
                    s = first_stride[stage]
                layers.append(DepthwiseSeparable(make_divisible(c_in * scale), make_divisible(c_out * scale), k,
                                                 _stride(s), se))
            setattr(self, stage, nn.Sequential(*layers))
        self.last_conv = nn.Conv2D(make_divisible(STAGES["blocks6"][-1][2] * scale), class_expand, 1,
                                   bias_attr=False)
        self.dropout = nn.Dropout(p=dropout, mode="downscale_in_infer")
        self.fc = nn.Linear(class_expand, self.num_classes)

    def features(self, x):
        x = self.conv1(x)
        for stage in STAGES:
            x = getattr(self, stage)(x)
        return x

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        x = self.dropout(F.hardswish(self.last_conv(x)))
        logits = self.fc(paddle.flatten(x, 1))
        return logits if self.training else F.softmax(logits, axis=-1)


def _stride(s):
    return tuple(int(v) for v in s) if isinstance(s, (list, tuple)) else int(s)
