"""DetModel: backbone -> neck -> head (state-dict prefixes ``backbone.``, ``neck.``, ``head.``).

``forward(x [N, 3, H, W] float32)``: eval -> probability map ``[N, 1, H, W]``; train -> the head's dict
(``{"maps": [N, 3, H, W]}`` for DBHead, plus ``"cbn_maps"`` for PFHeadLocal and ``"aux_maps_p4/p3/p2"`` for the
PP-OCRv6 heads, whose necks hand them ``{"fuse", "aux_p4", "aux_p3", "aux_p2"}`` in training). H and W must be
multiples of 32.
"""

from __future__ import annotations

import paddle.nn as nn

__all__ = ["DetModel"]


class DetModel(nn.Layer):
    def __init__(self, backbone: nn.Layer, neck: nn.Layer, head: nn.Layer):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head

    def forward(self, x):
        return self.head(self.neck(self.backbone(x)))
