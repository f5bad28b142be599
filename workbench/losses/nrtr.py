"""NRTR (attention branch) loss: label-smoothed cross-entropy, mean over non-pad target positions.

The logits are either ``[R, V]`` with their targets ``predictions["gtc_targets"]`` [R] (the non-pad positions only:
what ``NRTRDecoder`` gives in training), or ``[N, S, V]`` (every position, as upstream's head gives them), produced
by teacher forcing on ``label_gtc[:, :S]``; then the targets are ``label_gtc[:, 1:S+1]`` (the next token;
``S = max(length) + 1``, so the longest text's ``</s>`` is the last target). Smoothing as upstream: the target
distribution is ``1 - eps`` on the true class and ``eps / (V - 1)`` on every other class. Positions whose target is 0 (padding) are excluded from the mean;
``</s>`` counts.

Speed: no ``log_softmax`` (pathologically slow on Paddle CPU for ~18k classes) and no dense one-hot. Paddle's
fused ``cross_entropy`` with ``label_smoothing`` uses ``(1 - e) onehot + e / V``; ``e = eps * V / (V - 1)``
turns that into exactly upstream's distribution.
"""

from __future__ import annotations

from collections.abc import Mapping

import paddle
import paddle.nn.functional as F

from workbench.losses._util import batch_tensor

__all__ = ["NRTRLoss", "smoothed_cross_entropy"]


def smoothed_cross_entropy(logits, targets, eps: float = 0.1):
    """Per-row loss ``[R]`` for ``logits`` [R, V] and int64 ``targets`` [R] (upstream's smoothing)."""
    num_classes = logits.shape[-1]
    if eps == 0:
        return F.cross_entropy(logits, targets, reduction="none").squeeze(-1)
    paddle_eps = eps * num_classes / (num_classes - 1)
    return F.cross_entropy(logits, targets, reduction="none", label_smoothing=paddle_eps).squeeze(-1)


class NRTRLoss:
    def __init__(self, smoothing: float = 0.1):
        self.smoothing = smoothing

    def __call__(self, predictions, batch: Mapping) -> dict[str, paddle.Tensor]:
        logits = predictions["gtc"] if isinstance(predictions, Mapping) else predictions
        if isinstance(predictions, Mapping) and "gtc_targets" in predictions:  # non-pad positions only (NRTRDecoder)
            return {"loss": smoothed_cross_entropy(logits, predictions["gtc_targets"], self.smoothing).mean()}
        steps, vocab = logits.shape[1], logits.shape[2]
        targets = batch_tensor(batch, "label_gtc", "int64")[:, 1 : steps + 1].reshape([-1])
        per_position = smoothed_cross_entropy(logits.reshape([-1, vocab]), targets, self.smoothing)
        keep = (targets != 0).astype(per_position.dtype)
        return {"loss": paddle.sum(per_position * keep) / paddle.sum(keep)}
