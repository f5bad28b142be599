"""CompactCNN: a plain conv-BN-ReLU recogniser backbone for the built-in demo (not a PP-OCR architecture).

Why it exists: the demo trains *from scratch* on two CPU cores and must visibly learn in minutes. The small
PP-OCR configs (PPLCNetV3 x0.25 + SVTR) spend their first thousands of steps on CTC's all-blank plateau: narrow
depthwise stages are a poor start without pretrained weights. Full 3x3 convolutions at 32-128 channels leave the
plateau after a few hundred steps. For fine-tuning use the official architectures and their weights.

``[N, 3, 48, W] -> [N, C, 1, W/8]``, the sequence layout of the PP-OCR rec backbones, so the same heads, CTC loss,
decoder and export (PaddleX ``CTCLabelDecode`` on ``[N, T, C]`` probabilities) apply.
"""

from __future__ import annotations

import paddle.nn as nn

__all__ = ["CompactCNN"]


def _stage(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2D(in_channels, out_channels, 3, padding=1, bias_attr=False), nn.BatchNorm2D(out_channels), nn.ReLU()
    )


class CompactCNN(nn.Layer):
    train_time_steps = None  # training pools like inference (W/8 steps): variable-width batches work as they are

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 128, 128)):
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"CompactCNN needs 5 stage widths, got {widths}")
        c = (3, *widths)
        # H: 48 -> 24 -> 12 -> 6 -> 3 (then averaged); W: /2 /2 /2 /1 -> W/8 time steps, as PP-OCR's rec backbones.
        pools = ((2, 2), (2, 2), (2, 2), (2, 1), None)
        layers = []
        for i, pool in enumerate(pools):
            layers.append(_stage(c[i], c[i + 1]))
            if pool is not None:
                layers.append(nn.MaxPool2D(pool, pool))
        self.stages = nn.Sequential(*layers)
        self.out_channels = widths[-1]

    def forward(self, x):
        return self.stages(x).mean(axis=2, keepdim=True)  # [N, C, 1, W/8]
