"""RSEFPN: the feature pyramid of the PP-OCRv3/v4/v5 mobile detectors (residual squeeze-excite FPN).

Four backbone maps (strides 4, 8, 16, 32) are each projected to ``out_channels`` (``ins_conv``), merged
top-down by nearest 2x upsampling + addition, reduced to ``out_channels // 4`` by a 3x3 conv (``inp_conv``),
upsampled to stride 4 and concatenated (deepest first) into one ``[N, out_channels, H/4, W/4]`` map.
Every conv is an :class:`RSELayer`: conv, then ``x + SE(x)`` (``shortcut``) or ``SE(x)``.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import KaimingUniform

from workbench.models.ops import Conv2D, upsample_nearest

__all__ = ["SEModule", "RSELayer", "RSEFPN"]


class SEModule(nn.Layer):
    """Squeeze-excite with the "hard" gate of MobileNetV3 detectors: ``clip(0.2 * x + 0.5, 0, 1)``."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def gate(self, x):
        """The per-channel gate ``[N, C, 1, 1]`` the map is multiplied by."""
        w = F.adaptive_avg_pool2d(x, 1)
        return F.hardsigmoid(self.conv2(F.relu(self.conv1(w))), slope=0.2, offset=0.5)

    def forward(self, x):
        return x * self.gate(x)


class RSELayer(nn.Layer):
    """Bias-free conv (Kaiming-uniform) followed by a (residual) squeeze-excite."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, shortcut: bool = True):
        super().__init__()
        self.in_conv = Conv2D(  # wb's kernel for 3x3 in CPU training (models.ops.same_conv2d)
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            weight_attr=ParamAttr(initializer=KaimingUniform()),
            bias_attr=False,
        )
        self.se_block = SEModule(out_channels)
        self.shortcut = shortcut
        self.gate_plus_one = False  # set by fold_for_deployment() for deployment

    def forward(self, x):
        x = self.in_conv(x)
        if self.shortcut and self.gate_plus_one:
            return x * (1.0 + self.se_block.gate(x))
        return x + self.se_block(x) if self.shortcut else self.se_block(x)

    def fold_for_deployment(self) -> None:
        """Deployment only: compute the residual ``x + x * g`` as ``x * (1 + g)``, the "+ 1" on the [N, C, 1, 1]
        gate: one pass over the map instead of two. On a receipt page (PP-OCRv5_mobile_det, 4000x2816) the residual
        adds were 11 % of the evaluation in Paddle Inference. Training keeps upstream's arithmetic: the rounding
        differs (the forward parity with PaddleX's implementation moved from within 1e-4 to 1.04e-4)."""
        self.gate_plus_one = True


class RSEFPN(nn.Layer):
    """``in_channels``: the 4 backbone widths (stride 4 first). Output width: ``out_channels``."""

    def __init__(self, in_channels: list[int], out_channels: int, shortcut: bool = True):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"RSEFPN expects 4 input widths (strides 4..32), got {in_channels}")
        if out_channels % 4:
            raise ValueError(f"RSEFPN: out_channels must be divisible by 4, got {out_channels}")
        self.out_channels = out_channels
        self.ins_conv = nn.LayerList([RSELayer(c, out_channels, 1, shortcut) for c in in_channels])
        self.inp_conv = nn.LayerList([RSELayer(out_channels, out_channels // 4, 3, shortcut) for _ in in_channels])

    def forward(self, features):
        c2, c3, c4, c5 = features
        in5 = self.ins_conv[3](c5)
        in4 = self.ins_conv[2](c4)
        in3 = self.ins_conv[1](c3)
        in2 = self.ins_conv[0](c2)

        out4 = in4 + upsample_nearest(in5, 2)  # stride 16
        out3 = in3 + upsample_nearest(out4, 2)  # stride 8
        out2 = in2 + upsample_nearest(out3, 2)  # stride 4

        p5 = upsample_nearest(self.inp_conv[3](in5), 8)
        p4 = upsample_nearest(self.inp_conv[2](out4), 4)
        p3 = upsample_nearest(self.inp_conv[1](out3), 2)
        p2 = self.inp_conv[0](out2)
        return paddle.concat([p5, p4, p3, p2], axis=1)
