"""LKPAN: large-kernel path-aggregation neck of PP-OCRv5 server det (``LKPAN(out_channels=256, mode="large",
intracl=True)`` upstream).

Data flow for backbone maps ``[C2, C3, C4, C5]`` at strides 4/8/16/32 (``c = out_channels``, 256):

1. ``ins_conv[i]``  1x1 -> c channels each; top-down FPN sums (nearest 2x upsampling):
   ``out4 = in4 + up(in5)``, ``out3 = in3 + up(out4)``, ``out2 = in2 + up(out3)``.
2. ``inp_conv[i]``  9x9 -> c/4 on ``out2, out3, out4, in5`` (``f2..f5``).
3. Bottom-up PAN: ``pan3 = f3 + pan_head_conv[0](f2)`` (3x3 stride 2), ``pan4``, ``pan5`` likewise.
4. ``pan_lat_conv[i]`` 9x9 -> c/4 on ``f2, pan3, pan4, pan5`` (``p2..p5``).
5. ``incl1..incl4``: an IntraCL block on ``p2..p5`` (residual, shape preserving).
6. Upsample p3/p4/p5 to stride 4 (2x/4x/8x nearest) and concatenate **in the order p5, p4, p3, p2**.

Output: ``[N, c, H/4, W/4]`` (``out_channels`` = c; [1, 256, 80, 80] for a 320x320 image). Input sides must
be multiples of 32 (the top-down sums need exact 2x ratios), as upstream.

State-dict names and order equal the official graph: ``ins_conv.*``, ``inp_conv.*``, ``pan_head_conv.*``,
``pan_lat_conv.*`` (all bias-free), then ``incl1..incl4``.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
from paddle import ParamAttr
from paddle.nn.initializer import KaimingUniform

from workbench.errors import ConfigError
from workbench.models.ops import upsample_nearest

__all__ = ["IntraCLBlock", "LKPAN"]


class IntraCLBlock(nn.Layer):
    """Intra-class collaborative block (from I3CL): multi-scale square + vertical + horizontal convolutions.

    The input is reduced to ``in/reduce_factor`` channels, then three stages (kernel 7, then 5, then 3) each
    sum a kxk, a kx1 and a 1xk convolution of the previous stage's output. A 1x1 restores the width, then
    BatchNorm + ReLU, and the result is added to the input. Every conv has a bias.
    """

    def __init__(self, in_channels: int = 64, reduce_factor: int = 2):
        super().__init__()
        mid = in_channels // reduce_factor
        # Creation order = state-dict order of the official graph: reduce, return, v (kx1), q (1xk), c (kxk), bn.
        self.conv1x1_reduce_channel = nn.Conv2D(in_channels, mid, 1)
        self.conv1x1_return_channel = nn.Conv2D(mid, in_channels, 1)
        self.v_layer_7x1 = nn.Conv2D(mid, mid, (7, 1), padding=(3, 0))
        self.v_layer_5x1 = nn.Conv2D(mid, mid, (5, 1), padding=(2, 0))
        self.v_layer_3x1 = nn.Conv2D(mid, mid, (3, 1), padding=(1, 0))
        self.q_layer_1x7 = nn.Conv2D(mid, mid, (1, 7), padding=(0, 3))
        self.q_layer_1x5 = nn.Conv2D(mid, mid, (1, 5), padding=(0, 2))
        self.q_layer_1x3 = nn.Conv2D(mid, mid, (1, 3), padding=(0, 1))
        self.c_layer_7x7 = nn.Conv2D(mid, mid, 7, padding=3)
        self.c_layer_5x5 = nn.Conv2D(mid, mid, 5, padding=2)
        self.c_layer_3x3 = nn.Conv2D(mid, mid, 3, padding=1)
        self.bn = nn.BatchNorm2D(in_channels)
        self.relu = nn.ReLU()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.conv1x1_reduce_channel(x)
        y = self.c_layer_7x7(y) + self.v_layer_7x1(y) + self.q_layer_1x7(y)
        y = self.c_layer_5x5(y) + self.v_layer_5x1(y) + self.q_layer_1x5(y)
        y = self.c_layer_3x3(y) + self.v_layer_3x1(y) + self.q_layer_1x3(y)
        y = self.relu(self.bn(self.conv1x1_return_channel(y)))
        return x + y


class LKPAN(nn.Layer):
    """Large-kernel PAN neck (see the module docstring for the data flow).

    Args:
        in_channels: channels of the four backbone maps, finest first ([128, 512, 1024, 2048] for B4).
        out_channels: FPN width c; the output has c channels (4 x c/4).
        mode: only ``"large"`` (plain 9x9 convs) is implemented; upstream's ``"lite"`` (DSConv) is used by no
            PP-OCRv5 config.
        intracl: add the IntraCL blocks ``incl1..4`` (True in PP-OCRv5 server det).
    """

    def __init__(self, in_channels: list[int], out_channels: int = 256, mode: str = "large", intracl: bool = True):
        super().__init__()
        if mode.lower() != "large":
            raise ConfigError(f"LKPAN: mode {mode!r} is not supported (only 'large', the PP-OCRv5 server layout)")
        if len(in_channels) != 4:
            raise ConfigError(f"LKPAN: expects 4 backbone maps, got in_channels={list(in_channels)}")
        if out_channels % 4:
            raise ConfigError(f"LKPAN: out_channels must be a multiple of 4, got {out_channels}")
        self.out_channels = out_channels
        self.intracl = intracl
        branch = out_channels // 4

        def conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2D:
            return nn.Conv2D(
                cin,
                cout,
                k,
                stride=stride,
                padding=k // 2,
                weight_attr=ParamAttr(initializer=KaimingUniform()),
                bias_attr=False,
            )

        self.ins_conv = nn.LayerList()
        self.inp_conv = nn.LayerList()
        self.pan_head_conv = nn.LayerList()
        self.pan_lat_conv = nn.LayerList()
        # Interleaved creation per level, as upstream (the global parameter-creation order then matches, which
        # keeps random initialisation comparable); the state dict groups by list anyway.
        for i, cin in enumerate(in_channels):
            self.ins_conv.append(conv(cin, out_channels, 1))
            self.inp_conv.append(conv(out_channels, branch, 9))
            if i > 0:
                self.pan_head_conv.append(conv(branch, branch, 3, stride=2))
            self.pan_lat_conv.append(conv(branch, branch, 9))
        if intracl:
            self.incl1 = IntraCLBlock(branch, reduce_factor=2)
            self.incl2 = IntraCLBlock(branch, reduce_factor=2)
            self.incl3 = IntraCLBlock(branch, reduce_factor=2)
            self.incl4 = IntraCLBlock(branch, reduce_factor=2)

    def forward(self, features: list[paddle.Tensor]) -> paddle.Tensor:
        c2, c3, c4, c5 = features
        in5 = self.ins_conv[3](c5)
        in4 = self.ins_conv[2](c4)
        in3 = self.ins_conv[1](c3)
        in2 = self.ins_conv[0](c2)

        out4 = in4 + upsample_nearest(in5, 2)  # stride 16
        out3 = in3 + upsample_nearest(out4, 2)  # stride 8
        out2 = in2 + upsample_nearest(out3, 2)  # stride 4

        f5 = self.inp_conv[3](in5)
        f4 = self.inp_conv[2](out4)
        f3 = self.inp_conv[1](out3)
        f2 = self.inp_conv[0](out2)

        pan3 = f3 + self.pan_head_conv[0](f2)
        pan4 = f4 + self.pan_head_conv[1](pan3)
        pan5 = f5 + self.pan_head_conv[2](pan4)

        p2 = self.pan_lat_conv[0](f2)
        p3 = self.pan_lat_conv[1](pan3)
        p4 = self.pan_lat_conv[2](pan4)
        p5 = self.pan_lat_conv[3](pan5)

        if self.intracl:
            p5 = self.incl4(p5)
            p4 = self.incl3(p4)
            p3 = self.incl2(p3)
            p2 = self.incl1(p2)

        return paddle.concat([upsample_nearest(p5, 8), upsample_nearest(p4, 4), upsample_nearest(p3, 2), p2], axis=1)
