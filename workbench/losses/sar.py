"""SAR loss (upstream ``SARLoss``): cross-entropy of the SAR branch's teacher-forced predictions, padding ignored.

``predictions["sar"]`` ``[N, L, K]`` (``K`` = SAR classes - 1: no padding class), ``batch["label_sar"]`` ``[N, L]``
(``<BOS> c1 .. cn <EOS> <PAD>...``, ``data.charset.Charset.encode_sar``): step ``i`` predicts label ``i + 1``, so the
last prediction and the first label are dropped, and ``<PAD>`` (= K) targets are ignored; mean over the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

import paddle
import paddle.nn.functional as F

from workbench.losses._util import batch_tensor

__all__ = ["SARLoss"]


class SARLoss:
    def __call__(self, predictions: Mapping, batch: Mapping) -> dict[str, paddle.Tensor]:
        logits = predictions["sar"][:, :-1, :]
        label = batch_tensor(batch, "label_sar", "int64")[:, 1:]
        classes = logits.shape[-1]
        loss = F.cross_entropy(logits.reshape([-1, classes]), label.reshape([-1]), ignore_index=classes,
                               reduction="mean")
        return {"loss": loss}
