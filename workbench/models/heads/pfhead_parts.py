"""The PFHeadLocal-specific pieces of PP-OCRv5 server det (upstream ``PFHeadLocal(k=50, mode="large")``).

PFHeadLocal is a DBHead (two branch blocks ``binarize`` and ``thresh``, owned by ``heads/db.py``) plus a local
refinement module ``cbn_layer`` that re-predicts the shrink map at full resolution from the binarize branch's
intermediate feature and its own first guess. This file holds only that extra part; the lead assembles the head.

How upstream's PFHeadLocal computes its outputs (x = neck output, [N, C, H/4, W/4], C = 256):

    shrink, f = binarize(x, return_f=True)
        # shrink: sigmoid probability map [N, 1, H, W]
        # f: the binarize branch's feature *after conv_bn2 + ReLU and before conv3* (the last transposed conv),
        #    [N, C/4, H/2, W/2]
    cbn = sigmoid(cbn_layer(upsample_nearest_2x(f), shrink))            # [N, 1, H, W]
    eval:  {"maps": 0.5 * (shrink + cbn)}                                 # -> DetModel returns this tensor
    train: thresh = thresh_branch(x); binary = 1 / (1 + exp(-k * (shrink - thresh)))   # k = 50, uses *shrink*
           {"maps": concat([cbn, thresh, binary], axis=1),   # channel 0 is the REFINED map, not shrink
            "distance_maps": cbn,
            "cbn_maps": binary}                               # sic: upstream's "cbn_maps" is the binary map

``refine_shrink_map``, ``fuse_eval_maps`` and ``train_outputs`` below implement exactly those three steps.

Why the train keys matter: upstream's DBLoss reads ``maps`` channel 0/1/2 (BCE x alpha / L1 x beta / Dice) and,
when the dict has ``distance_maps``, adds ``BCE(predicts["cbn_maps"][:, 0], shrink_label, shrink_mask)`` with
weight 1, i.e. a second balanced-BCE term on the *binary* map. So in training the refined map is supervised
through ``maps[:, 0]``, the raw shrink map only indirectly (through ``binary`` and as the refinement input), and
``distance_maps`` is not used by the loss at all. Keep the keys and their contents as they are and a DBLoss that
follows upstream reproduces the official objective.

State dict: ``head.cbn_layer.last_3.conv.weight [64, 65, 3, 3]``, ``head.cbn_layer.last_3.bn.{weight, bias,
_mean, _variance} [64]``, ``head.cbn_layer.last_1.{weight [1, 64, 1, 1], bias [1]}``; the head creates
``binarize``, ``thresh`` and then ``cbn_layer`` (that order is the official state-dict order).
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from workbench.errors import ConfigError
from workbench.models.ops import upsample_nearest

__all__ = [
    "ConvBNReLU",
    "LocalRefineModule",
    "build_cbn_layer",
    "upsample_feature",
    "refine_shrink_map",
    "fuse_eval_maps",
    "train_outputs",
]


class ConvBNReLU(nn.Layer):
    """Conv (no bias) -> BatchNorm -> ReLU with state-dict names ``conv.*`` / ``bn.*``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, padding=padding, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.relu(self.bn(self.conv(x)))


class LocalRefineModule(nn.Layer):
    """Upstream ``LocalModule`` (held as ``head.cbn_layer``): refine a first probability map with local features.

    ``forward(feature, init_map)`` concatenates ``[init_map, feature]`` on channels (the map first), applies
    ``last_3`` (3x3 conv + BN + ReLU, ``in+1 -> mid``) and ``last_1`` (1x1 conv with bias, ``mid -> 1``) and
    returns **logits** (no sigmoid; ``refine_shrink_map`` applies it).
    """

    def __init__(self, in_channels: int, mid_channels: int):
        super().__init__()
        self.last_3 = ConvBNReLU(in_channels + 1, mid_channels, 3, padding=1)
        self.last_1 = nn.Conv2D(mid_channels, 1, 1)

    def forward(self, feature: paddle.Tensor, init_map: paddle.Tensor) -> paddle.Tensor:
        return self.last_1(self.last_3(paddle.concat([init_map, feature], axis=1)))


def build_cbn_layer(in_channels: int, mode: str = "large") -> LocalRefineModule:
    """The ``cbn_layer`` of ``PFHeadLocal(in_channels, mode)``: the refinement reads the binarize feature
    (in_channels/4 channels); ``mode="large"`` keeps that width inside, ``"small"`` halves it."""
    if mode == "large":
        return LocalRefineModule(in_channels // 4, in_channels // 4)
    if mode == "small":
        return LocalRefineModule(in_channels // 4, in_channels // 8)
    raise ConfigError(f"PFHeadLocal: mode must be 'large' or 'small', got {mode!r}")


def upsample_feature(feature: paddle.Tensor) -> paddle.Tensor:
    """The head's ``up_conv``: nearest 2x upsampling of the half-resolution binarize feature to map size."""
    return upsample_nearest(feature, 2)


def refine_shrink_map(
    cbn_layer: LocalRefineModule, shrink_maps: paddle.Tensor, feature: paddle.Tensor
) -> paddle.Tensor:
    """``sigmoid(cbn_layer(up(feature), shrink_maps))``: the refined probability map [N, 1, H, W] (same for
    train and eval)."""
    return F.sigmoid(cbn_layer(upsample_feature(feature), shrink_maps))


def fuse_eval_maps(shrink_maps: paddle.Tensor, cbn_maps: paddle.Tensor) -> paddle.Tensor:
    """Eval / export output of PFHeadLocal: the mean of the first and the refined probability maps."""
    return 0.5 * (shrink_maps + cbn_maps)


def train_outputs(
    cbn_maps: paddle.Tensor, threshold_maps: paddle.Tensor, binary_maps: paddle.Tensor
) -> dict[str, paddle.Tensor]:
    """Train-mode dict exactly as upstream (see the module docstring for what the loss does with each key).

    ``binary_maps`` must be the DB step function of the *unrefined* shrink map and the threshold map.
    """
    return {
        "maps": paddle.concat([cbn_maps, threshold_maps, binary_maps], axis=1),
        "distance_maps": cbn_maps,
        "cbn_maps": binary_maps,
    }
