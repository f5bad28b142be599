"""MobileNetV1Enhance: the backbone of the PP-OCRv3 mobile recognisers (``scale=0.5, last_conv_stride=[1, 2],
last_pool_type=avg, last_pool_kernel_size=[2, 2]``).

A 3x3 stride-2 conv-BN-hardswish, then 13 depth-wise separable blocks (depth-wise kxk conv-BN-hardswish, optional
squeeze-excite, point-wise 1x1 conv-BN-hardswish); blocks 4, 6 and 12 halve the height only, the last one
``last_conv_stride`` (here the width only); a final pooling (``avg`` 2x2, stride 2x2) leaves one row. A 48x320 line
gives ``[N, 512, 1, 40]``, in train and eval mode alike.

Facts from PaddleOCR's ``ppocr/modeling/backbones/rec_mv1_enhance.py``; layout equals
``../shared/fixtures/manifests/{,en_}PP-OCRv3_mobile_rec.json`` (``conv1``, ``block_list.<i>._depthwise_conv`` /
``._se`` / ``._pointwise_conv``, each with ``_conv`` and ``_batch_norm``).
"""

from __future__ import annotations

import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import KaimingNormal
from paddle.regularizer import L2Decay

from workbench.errors import ConfigError

__all__ = ["ConvBNLayer", "DepthwiseSeparable", "MobileNetV1Enhance"]


class ConvBNLayer(nn.Layer):
    """Bias-free conv (Kaiming-normal) + BatchNorm (no weight decay) + hardswish."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, groups=1):
        super().__init__()
        self._conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride, padding, groups=groups,
                               weight_attr=ParamAttr(initializer=KaimingNormal()), bias_attr=False)
        self._batch_norm = nn.BatchNorm2D(out_channels, weight_attr=ParamAttr(regularizer=L2Decay(0.0)),
                                          bias_attr=ParamAttr(regularizer=L2Decay(0.0)))

    def forward(self, x):
        return F.hardswish(self._batch_norm(self._conv(x)))


class SEModule(nn.Layer):
    """Squeeze-excite: average pool -> 1x1 reduce (/4) -> ReLU -> 1x1 expand -> hard-sigmoid (slope 1/6)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x):
        return x * F.hardsigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(x, 1)))))


class DepthwiseSeparable(nn.Layer):
    def __init__(self, in_channels, mid_channels, out_channels, stride, kernel_size=3, use_se=False):
        super().__init__()
        self.use_se = use_se
        self._depthwise_conv = ConvBNLayer(in_channels, mid_channels, kernel_size, stride, (kernel_size - 1) // 2,
                                           groups=in_channels)
        if use_se:
            self._se = SEModule(mid_channels)
        self._pointwise_conv = ConvBNLayer(mid_channels, out_channels, 1, 1, 0)

    def forward(self, x):
        x = self._depthwise_conv(x)
        if self.use_se:
            x = self._se(x)
        return self._pointwise_conv(x)


# (in, out channels at scale 1, stride, kernel, SE) of the 13 blocks; "last" = last_conv_stride
_BLOCKS = (
    (32, 64, 1, 3, False), (64, 128, 1, 3, False), (128, 128, 1, 3, False), (128, 256, (2, 1), 3, False),
    (256, 256, 1, 3, False), (256, 512, (2, 1), 3, False),
    *[(512, 512, 1, 5, False)] * 5,
    (512, 1024, (2, 1), 5, True), (1024, 1024, "last", 5, True),
)


class MobileNetV1Enhance(nn.Layer):
    #: its final pooling is the same in training and at inference: keep-ratio training needs no change
    train_time_steps = None

    def __init__(self, scale: float = 0.5, last_conv_stride=(1, 2), last_pool_type: str = "avg",
                 last_pool_kernel_size=(2, 2)):
        super().__init__()
        if last_pool_type not in ("avg", "max"):
            raise ConfigError(f"MobileNetV1Enhance: last_pool_type {last_pool_type!r} is not avg or max")
        self.conv1 = ConvBNLayer(3, int(32 * scale), 3, 2, 1)
        blocks = []
        for cin, cout, stride, k, se in _BLOCKS:
            if stride == "last":
                stride = tuple(last_conv_stride) if isinstance(last_conv_stride, (list, tuple)) else last_conv_stride
            blocks.append(DepthwiseSeparable(int(cin * scale), int(cin * scale), int(cout * scale), stride, k, se))
        self.block_list = nn.Sequential(*blocks)
        self.pool_type = last_pool_type
        self.pool_kernel = list(last_pool_kernel_size)
        self.out_channels = int(1024 * scale)

    def forward(self, x):
        x = self.block_list(self.conv1(x))
        if self.pool_type == "avg":
            return F.avg_pool2d(x, self.pool_kernel, self.pool_kernel)
        return F.max_pool2d(x, 2, 2)  # upstream's max pool is always 2x2 (last_pool_kernel_size applies to avg)
