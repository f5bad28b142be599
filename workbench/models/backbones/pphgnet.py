"""PP-HGNet (v1), ``small`` configuration: the backbone of PP-OCRv4 *server* det and rec.

* a stem of three 3x3 conv-BN-ReLU (64, 64, 128 channels; the first with stride 2);
* det (``det=True``): a 3x3 stride-2 max-pool, then four stages at strides 4 / 8 / 16 / 32 returning
  ``[256, 512, 768, 1024]`` channels (what ``LKPAN(in_channels=..., 256)`` consumes);
* rec: four stages whose depth-wise downsampling halves the height only (stages 1, 3, 4) or the width only
  (stage 2): a 48xW line leaves stage 4 as 3x(W/4) with 1024 channels, pooled to one row: train
  ``adaptive_avg_pool(1, 40)``, eval ``avg_pool(3x2)``.

A stage: optional depth-wise 3x3 conv-BN downsampling, then HG blocks. An HG block chains ``layer_num`` (6) 3x3
conv-BN-ReLU, concatenates the input and every output, squeezes them with a 1x1 conv-BN-ReLU
(``aggregation_conv``) and re-weights channels with an effective squeeze-excite (``att``: global average ->
biased 1x1 conv -> sigmoid); all but the first block of a stage add their input.

Facts from PaddleOCR's ``ppocr/modeling/backbones/rec_hgnet.py`` (``PPHGNet_small``); the layout equals
``../shared/fixtures/manifests/PP-OCRv4_server_{det,rec,rec_doc}.json``. No re-parameterisable layers.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant, KaimingNormal
from paddle.regularizer import L2Decay

from workbench.models.ops import rec_feature_row

__all__ = ["ConvBNAct", "ESEModule", "HGBlock", "HGStage", "PPHGNet", "pphgnet_small"]

# in, mid, out channels, blocks, downsample, stride of the downsampling conv
_SMALL_DET = ((128, 128, 256, 1, False, 2), (256, 160, 512, 1, True, 2), (512, 192, 768, 2, True, 2),
              (768, 224, 1024, 1, True, 2))
_SMALL_REC = ((128, 128, 256, 1, True, (2, 1)), (256, 160, 512, 1, True, (1, 2)), (512, 192, 768, 2, True, (2, 1)),
              (768, 224, 1024, 1, True, (2, 1)))


class ConvBNAct(nn.Layer):
    """Bias-free conv + BatchNorm (no weight decay on its scale / shift) + optional ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, use_act=True):
        super().__init__()
        self.use_act = use_act
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2,
                              groups=groups, bias_attr=False, weight_attr=ParamAttr(initializer=KaimingNormal()))
        self.bn = nn.BatchNorm2D(out_channels,
                                 weight_attr=ParamAttr(regularizer=L2Decay(0.0), initializer=Constant(1.0)),
                                 bias_attr=ParamAttr(regularizer=L2Decay(0.0), initializer=Constant(0.0)))
        if use_act:
            self.act = nn.ReLU()

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.act(x) if self.use_act else x


class ESEModule(nn.Layer):
    """Effective squeeze-excite: ``x * sigmoid(conv1x1(avg_pool(x)))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2D(channels, channels, 1, weight_attr=ParamAttr(initializer=KaimingNormal()))

    def forward(self, x):
        return x * F.sigmoid(self.conv(F.adaptive_avg_pool2d(x, 1)))


class HGBlock(nn.Layer):
    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, layer_num: int, identity: bool):
        super().__init__()
        self.identity = identity
        self.layers = nn.LayerList([ConvBNAct(in_channels if i == 0 else mid_channels, mid_channels, 3)
                                    for i in range(layer_num)])
        self.aggregation_conv = ConvBNAct(in_channels + layer_num * mid_channels, out_channels, 1)
        self.att = ESEModule(out_channels)

    def forward(self, x):
        outputs = [x]
        h = x
        for layer in self.layers:
            h = layer(h)
            outputs.append(h)
        h = self.att(self.aggregation_conv(paddle.concat(outputs, axis=1)))
        return h + x if self.identity else h


class HGStage(nn.Layer):
    def __init__(self, in_channels, mid_channels, out_channels, block_num, layer_num, downsample, stride):
        super().__init__()
        self.has_downsample = downsample
        if downsample:
            self.downsample = ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, use_act=False)
        self.blocks = nn.Sequential(*[HGBlock(in_channels if i == 0 else out_channels, mid_channels, out_channels,
                                              layer_num, identity=i > 0) for i in range(block_num)])

    def forward(self, x):
        if self.has_downsample:
            x = self.downsample(x)
        return self.blocks(x)


class PPHGNet(nn.Layer):
    """``out_channels``: 4 widths (det) or one (rec)."""

    def __init__(self, stem_channels=(64, 64, 128), stages=_SMALL_REC, layer_num: int = 6, det: bool = False):
        super().__init__()
        # rec training pools to 40 steps (upstream); None pools as at inference (W/8: keep-ratio training)
        self.train_time_steps = 40
        self.det = det
        widths = (3, *stem_channels)
        self.stem = nn.Sequential(*[ConvBNAct(widths[i], widths[i + 1], 3, stride=2 if i == 0 else 1)
                                    for i in range(len(stem_channels))])
        if det:
            self.pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.stages = nn.LayerList([HGStage(*cfg[:4], layer_num, cfg[4], cfg[5]) for cfg in stages])
        self.out_channels: list[int] | int = [cfg[2] for cfg in stages] if det else stages[-1][2]

    def forward(self, x):
        x = self.stem(x)
        if self.det:
            x = self.pool(x)
            features = []
            for stage in self.stages:
                x = stage(x)
                features.append(x)
            return features
        for stage in self.stages:
            x = stage(x)
        return rec_feature_row(x, training=self.training, train_time_steps=self.train_time_steps)


def pphgnet_small(det: bool = False) -> PPHGNet:
    """The PP-OCRv4 server backbone (``PPHGNet_small`` upstream)."""
    return PPHGNet((64, 64, 128), _SMALL_DET if det else _SMALL_REC, layer_num=6, det=det)
