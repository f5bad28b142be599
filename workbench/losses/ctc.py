"""CTC loss with Paddle ``nn.CTCLoss(blank=0, reduction='none')`` semantics, averaged over the batch.

Input: the CTC logits ``[N, T, C]`` (``predictions["ctc"]``, or the tensor itself), **not** log-probabilities:
the loss normalises them itself. Per sample it is the plain negative log-likelihood of the label sequence
(not divided by the label length, no focal weighting); the batch mean is returned. Every sample uses all T
input steps (training pools the backbone to a fixed T).

Batch keys: ``label_ctc`` ``[N, Lmax]`` (class indices, 0-padded) and ``length`` ``[N]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import paddle
import paddle.nn.functional as F

from workbench.losses._util import batch_tensor

__all__ = ["CTCLoss", "ctc_loss"]


def ctc_loss(logits, labels, label_lengths, blank: int = 0):
    """Per-sample CTC negative log-likelihood ``[N]`` of ``labels`` given unnormalised ``logits`` [N, T, C].

    Paddle's warp-ctc kernel normalises with its own softmax (never a slow ``log_softmax`` over ~18k classes)
    and computes the gradient w.r.t. the logits during the forward pass.
    """
    n, t = logits.shape[0], logits.shape[1]
    input_lengths = paddle.full([n], t, dtype="int64")
    return F.ctc_loss(
        logits.transpose([1, 0, 2]),
        labels.astype("int32"),
        input_lengths,
        label_lengths.astype("int64"),
        blank=blank,
        reduction="none",
    )


class CTCLoss:
    def __init__(self, blank: int = 0):
        self.blank = blank

    def __call__(self, predictions, batch: Mapping) -> dict[str, paddle.Tensor]:
        logits = predictions["ctc"] if isinstance(predictions, Mapping) else predictions
        labels = batch_tensor(batch, "label_ctc")
        lengths = batch_tensor(batch, "length")
        return {"loss": ctc_loss(logits, labels, lengths, self.blank).mean()}
