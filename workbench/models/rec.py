"""RecModel: backbone -> head (state-dict prefixes ``backbone.``, ``head.``; the CTC neck lives in the head).

``forward(x [N, 3, 48, W], targets=None)``:
* eval -> CTC probabilities ``[N, T, C]`` (softmax; C = dictionary lines + 2: blank 0, dictionary, space last);
* train -> ``{"ctc": logits [N, T, C], "ctc_neck": [N, T, D], "gtc": NRTR logits [R, V], "gtc_targets": [R]}``
  (R: the non-pad target positions). ``targets`` is a mapping with ``label_gtc`` ``[N, Lmax]`` int64 and ``length`` ``[N]`` int64
  (teacher forcing).
"""

from __future__ import annotations

from collections.abc import Mapping

import paddle.nn as nn

__all__ = ["NRTR_PE_KEY", "RecModel"]

#: the NRTR sinusoidal position table: a buffer the model builds deterministically, so weight files may omit it
#: (inference exports and imports have no NRTR branch at all)
NRTR_PE_KEY = "head.gtc_head.positional_encoding.pe"


class RecModel(nn.Layer):
    def __init__(self, backbone: nn.Layer, head: nn.Layer):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def pool_like_inference(self) -> None:
        """Training pools the backbone map as inference does (``T = W / 8``) instead of upstream's fixed 40 steps,
        so crops trained at their own width (keep-ratio batches) get as many time steps as at inference. Identical
        to upstream's pooling at 48x320."""
        if not hasattr(self.backbone, "train_time_steps"):
            raise ValueError(f"{type(self.backbone).__name__} cannot train on variable widths (fixed time steps)")
        self.backbone.train_time_steps = None

    def forward(self, x, targets: Mapping | None = None):
        return self.head(self.backbone(x), targets)
