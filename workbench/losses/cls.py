"""Cross-entropy for the orientation classifiers (PaddleClas's ``CELoss`` without label smoothing)."""

from __future__ import annotations

import paddle
import paddle.nn.functional as F


class ClassificationLoss:
    """``loss(logits [N, C], batch with "label" [N] int64) -> {"loss": mean cross-entropy}``."""

    def __call__(self, logits, batch) -> dict:
        labels = batch["label"]
        if not isinstance(labels, paddle.Tensor):
            labels = paddle.to_tensor(labels)
        return {"loss": F.cross_entropy(logits, labels.astype("int64").reshape([-1, 1]))}
