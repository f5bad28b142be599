"""CompactClassifier: plain conv-BN-ReLU stages + a linear classifier, the orientation demos' model (not a PaddleX
architecture).

Why it exists: the demos train *from scratch* on two CPU cores and must visibly learn in minutes. PP-LCNet x0.25
(8-128 channels, depthwise) stays at chance for its first few hundred steps from random weights (measured: 120
steps of 32 synthetic text lines, validation accuracy 0.49-0.51); full 3×3 convolutions leave chance much sooner.
For real use fine-tune the official PP-LCNet models (their weights are trained on millions of crops).

``[N, 3, H, W] → [N, num_classes]``: four stages, each halving both sides, global average pooling, ``fc``. Any input
size works (the text-line demo feeds 80×160, the document demo 224×224); PaddleX's classifier predictor runs the
exported graph under a PP-LCNet name (it reads only the ``[N, C]`` probabilities).
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["CompactClassifier"]


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2D(c_in, c_out, 3, padding=1, bias_attr=False), nn.BatchNorm2D(c_out), nn.ReLU(),
                         nn.Conv2D(c_out, c_out, 3, padding=1, bias_attr=False), nn.BatchNorm2D(c_out), nn.ReLU(),
                         nn.MaxPool2D(2, 2))


class CompactClassifier(nn.Layer):
    def __init__(self, num_classes: int, *, widths: tuple[int, ...] = (16, 32, 64, 96)):
        super().__init__()
        self.num_classes = int(num_classes)
        channels = (3, *widths)
        self.stages = nn.Sequential(*[_stage(channels[i], channels[i + 1]) for i in range(len(widths))])
        self.fc = nn.Linear(widths[-1], self.num_classes)

    def forward(self, x):
        logits = self.fc(paddle.flatten(F.adaptive_avg_pool2d(self.stages(x), 1), 1))
        return logits if self.training else F.softmax(logits, axis=-1)
