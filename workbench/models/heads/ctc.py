"""CTC head: one linear layer over the sequence features. Softmax only in eval (the CTC loss wants logits)."""

from __future__ import annotations

import math

import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Uniform
from paddle.regularizer import L2Decay

__all__ = ["CTCHead", "SequenceCTCHead"]


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
        logits = self.fc(x)
        return logits if self.training else F.softmax(logits, axis=-1)


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
