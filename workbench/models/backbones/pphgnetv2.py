"""PP-HGNetV2 backbone, B4 configuration: the backbone of PP-OCRv5 *server* det and rec.

One network, two layouts (the official configs pick one with a flag):

* ``det=True``  (PP-OCRv5_server_det): a classic stride-32 pyramid. Returns the four stage outputs
  ``[C2, C3, C4, C5]`` with 128 / 512 / 1024 / 2048 channels at strides 4 / 8 / 16 / 32, which is what
  ``LKPAN(in_channels=[128, 512, 1024, 2048], out_channels=256)`` consumes.
* ``text_rec=True`` (PP-OCRv5_server_rec): strides tuned for 48-pixel-high text lines. The stem keeps stride 2,
  stage 1 / 3 / 4 halve only the height, stage 2 only the width, so a 48xW line leaves stage 4 as 3x(W/4) with
  2048 channels. A final pooling makes it one row:
  train ``adaptive_avg_pool(1, 40)`` (always 40 time steps), eval ``avg_pool(3x2)`` (W/8 time steps). Both give
  ``[N, 2048, 1, 40]`` for 48x320 input, the shape the SVTR encoder of the CTC branch (in_channels 2048) reads.

B4 uses neither the learnable affine blocks (``use_lab`` is False for B4) nor any re-parameterisable layer, so this
backbone has no ``rep()``: its exported graph is the training graph with BatchNorm in inference mode.

State-dict compatibility: sub-layer names and creation order follow the official training graph
(``shared/fixtures/manifests/PP-OCRv5_server_{det,rec}.json``): ``stem.stem1..stem4``,
``stages.<i>.downsample``, ``stages.<i>.blocks.<j>.layers.<k>`` and ``.aggregation_{squeeze,excitation}_conv``,
then ``last_conv`` and (rec only) ``fc``.

``last_conv`` (det and rec) and ``fc`` (rec) are leftovers of the ImageNet classifier: they sit in the official
state dict (so pretrained weights load strictly) but **no forward uses them**, so they never get a gradient.
``UNUSED_IN_FORWARD`` names them, for whoever needs to know (``DataParallel(find_unused_parameters=...)``,
optimizer parameter groups, freezing reports).
"""

from __future__ import annotations

from dataclasses import dataclass

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant, KaimingNormal
from paddle.regularizer import L2Decay

from workbench.errors import ConfigError
from workbench.models.ops import rec_feature_row

__all__ = [
    "ConvBNAct",
    "LightConvBNAct",
    "StemBlock",
    "HGV2Block",
    "HGV2Stage",
    "StageConfig",
    "PPHGNetV2",
    "pphgnetv2_b4",
    "B4_DET_STAGES",
    "B4_REC_STAGES",
    "REC_TIME_STEPS_TRAIN",
    "pool_to_sequence",
]

# Rec training pools the stage-4 map to this many time steps whatever the image width (upstream constant).
REC_TIME_STEPS_TRAIN = 40


class ConvBNAct(nn.Layer):
    """Conv (no bias) -> BatchNorm -> optional ReLU. State-dict names: ``conv.weight``, ``bn.*``.

    ``padding=None`` means "same size for odd kernels" ((k-1)//2). ``padding="SAME"`` is Paddle's asymmetric
    SAME padding, used by the 2x2 stem convolutions: it pads one pixel on the right/bottom only.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int | tuple[int, int] = 1,
        groups: int = 1,
        act: bool = True,
        padding: int | str | None = None,
    ):
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2 if padding is None else padding,
            groups=groups,
            weight_attr=ParamAttr(initializer=KaimingNormal()),
            bias_attr=False,
        )
        # Upstream excludes this backbone's BatchNorm scale/shift from weight decay (a per-parameter regulariser
        # overrides the optimizer's global L2); kept so that fine-tuning regularises the same parameters.
        self.bn = nn.BatchNorm2D(
            out_channels,
            weight_attr=ParamAttr(regularizer=L2Decay(0.0), initializer=Constant(1.0)),
            bias_attr=ParamAttr(regularizer=L2Decay(0.0), initializer=Constant(0.0)),
        )
        self.act = nn.ReLU() if act else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


class LightConvBNAct(nn.Layer):
    """Point-wise 1x1 (no activation) followed by a depth-wise kxk with ReLU: the cheap layer of stages 3-4."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 1, act=False)
        self.conv2 = ConvBNAct(out_channels, out_channels, kernel_size, groups=out_channels, act=True)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv2(self.conv1(x))


class StemBlock(nn.Layer):
    """Stride-4 (det) or stride-2 (rec) stem.

    stem1 (3x3, s2) feeds two paths that are concatenated: a 2x2 max-pool and two 2x2 convolutions (stem2a/b).
    The 2x2 kernels use SAME padding (one extra pixel right/bottom) so that spatial size is preserved; the max
    pool follows stem1's ReLU, so its padding can never win the max. stem3 (3x3) downsamples again in det mode
    only; stem4 (1x1) sets the output width.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, text_rec: bool = False):
        super().__init__()
        self.stem1 = ConvBNAct(in_channels, mid_channels, 3, stride=2)
        self.stem2a = ConvBNAct(mid_channels, mid_channels // 2, 2, padding="SAME")
        self.stem2b = ConvBNAct(mid_channels // 2, mid_channels, 2, padding="SAME")
        self.stem3 = ConvBNAct(mid_channels * 2, mid_channels, 3, stride=1 if text_rec else 2)
        self.stem4 = ConvBNAct(mid_channels, out_channels, 1)
        self.pool = nn.MaxPool2D(kernel_size=2, stride=1, ceil_mode=True, padding="SAME")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem1(x)
        conv_path = self.stem2b(self.stem2a(x))
        x = paddle.concat([self.pool(x), conv_path], axis=1)
        return self.stem4(self.stem3(x))


class HGV2Block(nn.Layer):
    """``layer_num`` chained convs whose outputs (and the input) are all concatenated, then squeezed (1x1 to
    out/2) and excited (1x1 to out). Blocks after the first of a stage add their input back (``residual``)."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        kernel_size: int,
        layer_num: int,
        residual: bool,
        light_block: bool,
    ):
        super().__init__()
        self.residual = residual
        self.layers = nn.LayerList()
        for i in range(layer_num):
            layer_in = in_channels if i == 0 else mid_channels
            if light_block:
                self.layers.append(LightConvBNAct(layer_in, mid_channels, kernel_size))
            else:
                self.layers.append(ConvBNAct(layer_in, mid_channels, kernel_size))
        total_channels = in_channels + layer_num * mid_channels
        self.aggregation_squeeze_conv = ConvBNAct(total_channels, out_channels // 2, 1)
        self.aggregation_excitation_conv = ConvBNAct(out_channels // 2, out_channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        features = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            features.append(y)
        y = self.aggregation_excitation_conv(self.aggregation_squeeze_conv(paddle.concat(features, axis=1)))
        return y + x if self.residual else y


@dataclass(frozen=True)
class StageConfig:
    """One row of the upstream ``stage_config`` table."""

    in_channels: int
    mid_channels: int
    out_channels: int
    num_blocks: int
    downsample: bool
    light_block: bool
    kernel_size: int
    layer_num: int
    stride: int | tuple[int, int]  # of the depth-wise downsample conv; (h, w) in rec mode


class HGV2Stage(nn.Layer):
    """Optional depth-wise 3x3 downsample (BN, no activation), then ``num_blocks`` HGV2 blocks."""

    def __init__(self, cfg: StageConfig):
        super().__init__()
        if cfg.downsample:
            self.downsample = ConvBNAct(
                cfg.in_channels, cfg.in_channels, 3, stride=cfg.stride, groups=cfg.in_channels, act=False
            )
        else:
            self.downsample = None
        self.blocks = nn.Sequential(
            *[
                HGV2Block(
                    cfg.in_channels if i == 0 else cfg.out_channels,
                    cfg.mid_channels,
                    cfg.out_channels,
                    cfg.kernel_size,
                    cfg.layer_num,
                    residual=i > 0,
                    light_block=cfg.light_block,
                )
                for i in range(cfg.num_blocks)
            ]
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


# B4 stage tables (upstream PPHGNetV2_B4). Det: plain stride-2 pyramid, no downsample in stage 1 (the stem is
# already stride 4). Rec: every stage downsamples, height-only except stage 2 (width-only).
B4_STEM_CHANNELS = (3, 32, 48)
B4_DET_STAGES = (
    StageConfig(48, 48, 128, 1, False, False, 3, 6, 2),
    StageConfig(128, 96, 512, 1, True, False, 3, 6, 2),
    StageConfig(512, 192, 1024, 3, True, True, 5, 6, 2),
    StageConfig(1024, 384, 2048, 1, True, True, 5, 6, 2),
)
B4_REC_STAGES = (
    StageConfig(48, 48, 128, 1, True, False, 3, 6, (2, 1)),
    StageConfig(128, 96, 512, 1, True, False, 3, 6, (1, 2)),
    StageConfig(512, 192, 1024, 3, True, True, 5, 6, (2, 1)),
    StageConfig(1024, 384, 2048, 1, True, True, 5, 6, (2, 1)),
)


class PPHGNetV2(nn.Layer):
    """PP-HGNetV2 (no LAB variant).

    Args:
        stages: stage table (``B4_DET_STAGES`` / ``B4_REC_STAGES``).
        stem_channels: (in, mid, out) of the stem.
        det: return the multi-scale list ``[C2, C3, C4, C5]`` (``out_channels`` is then a list).
        text_rec: rec layout of the stem and the final pooling to one row (``out_channels`` is an int).
        class_expand / class_num: sizes of the unused classifier leftovers ``last_conv`` / ``fc``
            (``fc`` exists only when ``det`` is False, as upstream).

    With neither flag the forward returns the last stage map (upstream's classification layout minus the
    classifier); the official OCR configs always set one flag.
    """

    UNUSED_IN_FORWARD = ("last_conv", "fc")

    def __init__(
        self,
        stages: tuple[StageConfig, ...],
        stem_channels: tuple[int, int, int] = B4_STEM_CHANNELS,
        det: bool = False,
        text_rec: bool = False,
        class_expand: int = 2048,
        class_num: int = 1000,
    ):
        super().__init__()
        # rec training pools to REC_TIME_STEPS_TRAIN steps (upstream); None pools as at inference (keep-ratio)
        self.train_time_steps = REC_TIME_STEPS_TRAIN
        if det and text_rec:
            raise ConfigError("PPHGNetV2: det=True and text_rec=True are exclusive (pick the det or the rec layout)")
        self.det = det
        self.text_rec = text_rec
        self.stem = StemBlock(*stem_channels, text_rec=text_rec)
        self.stages = nn.LayerList([HGV2Stage(cfg) for cfg in stages])
        last_channels = stages[-1].out_channels
        self.out_channels: list[int] | int = [s.out_channels for s in stages] if det else last_channels
        # Classifier leftovers, kept only for state-dict compatibility (see module docstring).
        self.last_conv = nn.Conv2D(
            last_channels,
            class_expand,
            1,
            weight_attr=ParamAttr(initializer=KaimingNormal()),
            bias_attr=False,
        )
        if not det:
            self.fc = nn.Linear(class_expand, class_num, bias_attr=ParamAttr(initializer=Constant(0.0)))

    def forward(self, x: paddle.Tensor) -> list[paddle.Tensor] | paddle.Tensor:
        x = self.stem(x)
        if self.det:
            features = []
            for stage in self.stages:
                x = stage(x)
                features.append(x)
            return features
        for stage in self.stages:
            x = stage(x)
        if self.text_rec:
            x = pool_to_sequence(x, self.train_time_steps if self.training else None)
        return x


def pool_to_sequence(x: paddle.Tensor, train_time_steps: int | None) -> paddle.Tensor:
    """Rec mode: stage-4 map [N, C, 3, W/4] (48-pixel lines) -> one row [N, C, 1, T].

    ``train_time_steps`` (training, upstream: ``REC_TIME_STEPS_TRAIN`` = 40): adaptive average pooling to exactly
    that many steps, whatever H and W (the multi-scale sampler feeds heights 32/48/64 at width 320). None (eval /
    export, or keep-ratio training): a fixed 3x2 average pool, so T = W/8 follows the image width; it needs the
    stage-4 height to be 3 (a 48-pixel input). The two agree only for 48x320 input.
    """
    if train_time_steps:
        return rec_feature_row(x, training=True, train_time_steps=train_time_steps)
    height = x.shape[2]
    # height is -1 only while tracing a graph with a dynamic height; any known value other than 3 would make the
    # fixed 3x2 pool drop rows silently (H=4, 5) or emit several rows that the CTC encoder cannot read.
    if height not in (-1, 3):
        raise ConfigError(
            f"PPHGNetV2 text_rec eval: stage-4 height is {height}, expected 3; eval/export input must be "
            f"48 pixels high (got a feature map of shape {list(x.shape)})"
        )
    return rec_feature_row(x, training=False, train_time_steps=None)


def pphgnetv2_b4(det: bool = False, text_rec: bool = False) -> PPHGNetV2:
    """The PP-OCRv5 server backbone: ``det=True`` for PP-OCRv5_server_det, ``text_rec=True`` for _rec."""
    return PPHGNetV2(B4_DET_STAGES if det else B4_REC_STAGES, B4_STEM_CHANNELS, det=det, text_rec=text_rec)
