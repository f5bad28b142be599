"""MobileNetV3 (det layout): the backbone of the PP-OCRv3 mobile detector (``scale=0.5, model_name=large,
disable_se=True``).

A 3x3 stride-2 conv-BN-hardswish stem, then the "large" inverted-residual table (expand 1x1 -> depth-wise kxk ->
optional squeeze-excite -> linear 1x1, residual when shape is kept), cut into four stages before each stride-2
block after the third; the last stage ends with a 1x1 conv-BN-hardswish. Returns the four stage outputs at strides
4 / 8 / 16 / 32 (``[16, 24, 56, 480]`` channels at scale 0.5) for RSEFPN.

Facts from PaddleOCR's ``ppocr/modeling/backbones/det_mobilenet_v3.py``; layout equals
``../shared/fixtures/manifests/PP-OCRv3_mobile_det.json``.
"""

from __future__ import annotations

import paddle.nn as nn
import paddle.nn.functional as F

from workbench.errors import ConfigError
from workbench.models.necks.rsefpn import SEModule

__all__ = ["ConvBNLayer", "MobileNetV3", "ResidualUnit", "make_divisible"]

# kernel, expansion, out channels, squeeze-excite, activation, stride
LARGE = (
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2), (3, 200, 80, False, "hardswish", 1), (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1), (3, 480, 112, True, "hardswish", 1), (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2), (5, 960, 160, True, "hardswish", 1), (5, 960, 160, True, "hardswish", 1),
)
LARGE_LAST = 960
SCALES = (0.35, 0.5, 0.75, 1.0, 1.25)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class ConvBNLayer(nn.Layer):
    """Bias-free conv + BatchNorm + optional relu / hardswish."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, act: str | None = None):
        super().__init__()
        if act not in (None, "relu", "hardswish"):
            raise ConfigError(f"MobileNetV3: activation {act!r} is not relu or hardswish")
        self.act = act
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.act == "relu":
            return F.relu(x)
        if self.act == "hardswish":
            return F.hardswish(x)
        return x


class ResidualUnit(nn.Layer):
    def __init__(self, in_channels, mid_channels, out_channels, kernel_size, stride, use_se, act):
        super().__init__()
        self.shortcut = stride == 1 and in_channels == out_channels
        self.use_se = use_se
        self.expand_conv = ConvBNLayer(in_channels, mid_channels, 1, act=act)
        self.bottleneck_conv = ConvBNLayer(mid_channels, mid_channels, kernel_size, stride, (kernel_size - 1) // 2,
                                           groups=mid_channels, act=act)
        if use_se:
            self.mid_se = SEModule(mid_channels)
        self.linear_conv = ConvBNLayer(mid_channels, out_channels, 1)

    def forward(self, x):
        y = self.bottleneck_conv(self.expand_conv(x))
        if self.use_se:
            y = self.mid_se(y)
        y = self.linear_conv(y)
        return x + y if self.shortcut else y


class MobileNetV3(nn.Layer):
    """Det layout (``model_name="large"``): ``out_channels`` = the 4 stage widths."""

    def __init__(self, scale: float = 0.5, model_name: str = "large", disable_se: bool = False):
        super().__init__()
        if model_name != "large":
            raise ConfigError(f"MobileNetV3: only the 'large' table is implemented (PP-OCRv3), got {model_name!r}")
        if scale not in SCALES:
            raise ConfigError(f"MobileNetV3: scale {scale} is not one of {SCALES}")
        inplanes = make_divisible(16 * scale)
        self.conv = ConvBNLayer(3, inplanes, 3, 2, 1, act="hardswish")
        stages, blocks, self.out_channels = [], [], []
        for i, (k, exp, c, se, act, s) in enumerate(LARGE):
            if s == 2 and i > 2:  # a new stage starts before each stride-2 block after the first two
                self.out_channels.append(inplanes)
                stages.append(blocks)
                blocks = []
            out = make_divisible(scale * c)
            blocks.append(ResidualUnit(inplanes, make_divisible(scale * exp), out, k, s, se and not disable_se, act))
            inplanes = out
        last = make_divisible(scale * LARGE_LAST)
        blocks.append(ConvBNLayer(inplanes, last, 1, act="hardswish"))
        stages.append(blocks)
        self.out_channels.append(last)
        self.stage_names = []
        for index, stage in enumerate(stages):
            self.add_sublayer(f"stage{index}", nn.Sequential(*stage))
            self.stage_names.append(f"stage{index}")

    def forward(self, x):
        x = self.conv(x)
        features = []
        for name in self.stage_names:
            x = getattr(self, name)(x)
            features.append(x)
        return features
