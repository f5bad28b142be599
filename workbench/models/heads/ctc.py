"""CTC head: one linear layer over the sequence features. Softmax only in eval (the CTC loss wants logits)."""

from __future__ import annotations

import math

import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Uniform
from paddle.regularizer import L2Decay

from workbench.models.ops import training_linear

__all__ = ["CTCHead", "GuidedCTCHead", "ReshapeSequence", "SequenceCTCHead"]


class CTCHead(nn.Layer):
    """``[N, T, in_channels] -> [N, T, num_classes]``; ``num_classes`` = dictionary lines + 2 (blank, space).

    ``fc_decay`` is the L2 weight decay of this layer, which overrides the optimizer's global one (upstream
    config: 1e-5). Init: uniform(+-1/sqrt(in_channels)) for weight and bias.
    """

    def __init__(self, in_channels: int, num_classes: int, fc_decay: float = 1e-5):
        super().__init__()
        bound = 1.0 / math.sqrt(in_channels)

        def attr():
            return ParamAttr(regularizer=L2Decay(fc_decay), initializer=Uniform(-bound, bound))

        self.fc = nn.Linear(in_channels, num_classes, weight_attr=attr(), bias_attr=attr())
        self.num_classes = num_classes

    def forward(self, x):
        if self.training:
            return training_linear(x, self.fc)  # CPU: the bias inside the GEMM
        return F.softmax(self.fc(x), axis=-1)


class SequenceCTCHead(nn.Layer):
    """``[N, C, 1, T]`` backbone map -> :class:`CTCHead`. A CTC-only rec head (no NRTR branch, no neck): train
    returns ``{"ctc": logits}``, eval the probabilities."""

    def __init__(self, in_channels: int, num_classes: int, fc_decay: float = 1e-5):
        super().__init__()
        self.ctc_head = CTCHead(in_channels, num_classes, fc_decay=fc_decay)
        self.num_classes = num_classes

    def forward(self, x, targets=None):
        out = self.ctc_head(x.squeeze(2).transpose([0, 2, 1]))
        return {"ctc": out} if self.training else out


class ReshapeSequence(nn.Layer):
    """``[N, C, 1, T] -> [N, T, C]``: upstream's ``SequenceEncoder(encoder_type="reshape")`` (no parameters)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.out_channels = in_channels

    def forward(self, x):
        return x.squeeze(2).transpose([0, 2, 1])


class GuidedCTCHead(nn.Layer):
    """The PP-OCRv6 tiny CTC head: a *guide layer* over the sequence, then two linear layers.

    ``[N, T, C]`` -> depth-wise 1-D conv (kernel 5) -> BN -> hard-swish -> 1x1 1-D conv -> BN -> hard-swish ->
    ``fc1`` (C -> ``mid_channels``) -> ``fc2`` (-> classes); softmax in eval. State-dict names are upstream's
    (``guide_layer.0/1/3/4``, ``fc1``, ``fc2``); the eval computation is the one of the stock inference graph and of
    PaddleX's own PP-OCRv6 tiny implementation. Upstream calls the layer's presence ``use_guide``; whether its
    training also detaches the input is not in any source we have, so nothing is detached here: the CTC loss
    trains the backbone.
    """

    def __init__(self, in_channels: int, num_classes: int, mid_channels: int = 80, fc_decay: float = 1e-5,
                 guide_kernel: int = 5):
        super().__init__()

        def attr(fan_in):
            bound = 1.0 / math.sqrt(fan_in)
            return ParamAttr(regularizer=L2Decay(fc_decay), initializer=Uniform(-bound, bound))

        self.guide_layer = nn.Sequential(
            nn.Conv1D(in_channels, in_channels, guide_kernel, padding=guide_kernel // 2, groups=in_channels,
                      bias_attr=False),
            nn.BatchNorm1D(in_channels),
            nn.Hardswish(),
            nn.Conv1D(in_channels, in_channels, 1, bias_attr=False),
            nn.BatchNorm1D(in_channels),
            nn.Hardswish(),
        )
        self.fc1 = nn.Linear(in_channels, mid_channels, weight_attr=attr(in_channels), bias_attr=attr(in_channels))
        self.fc2 = nn.Linear(mid_channels, num_classes, weight_attr=attr(mid_channels), bias_attr=attr(mid_channels))
        self.num_classes = num_classes

    def forward(self, x):
        x = self.fc1(self.guide_layer(x.transpose([0, 2, 1])).transpose([0, 2, 1]))
        if self.training:
            return training_linear(x, self.fc2)  # as CTCHead
        return F.softmax(self.fc2(x), axis=-1)
