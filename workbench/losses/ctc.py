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
from paddle.autograd import PyLayer

from workbench import kernels
from workbench.losses._util import batch_tensor

__all__ = ["CTCLoss", "ctc_loss"]


def ctc_loss(logits, labels, label_lengths, blank: int = 0):
    """Per-sample CTC negative log-likelihood ``[N]`` of ``labels`` given unnormalised ``logits`` [N, T, C].

    Training on CPU in float32: wb's kernel (``kernels/ctc_loss.cc``: the loss and its gradient in one pass over
    the [N, T, C] logits as they are, alpha-beta over the label's states in double precision). Elsewhere Paddle's
    warp-ctc, which normalises with its own softmax (never a slow ``log_softmax`` over ~18k classes) and also
    computes the gradient during the forward pass. Both are the same function up to float rounding (tests).
    """
    op = kernels.ctc_loss_op() if kernels.training_applies(logits) else None
    if op is not None:
        return _NativeCTC.apply(logits.contiguous(), labels, label_lengths.astype("int64"), blank, op)
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


class _NativeCTC(PyLayer):
    """wb's CTC kernel: the gradient w.r.t. the logits comes with the loss; the backward scales it per sample.
    Measured (2 threads, [32, 40, 18385], forward + backward): see ``kernels/ctc_loss.cc``."""

    @staticmethod
    def forward(ctx, logits, labels, label_lengths, blank, op):
        loss, grad = op(logits, labels, label_lengths, int(blank), kernels.native_threads())
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(grad)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        (grad,) = ctx.saved_tensor()
        # in place: nothing else reads the saved gradient; a new [N, T, C] tensor took 2x as long (73 vs 35 ms at
        # [32, 40, 18385], 2 threads)
        return grad.multiply_(grad_loss.reshape([-1, 1, 1])), None, None


class CTCLoss:
    def __init__(self, blank: int = 0):
        self.blank = blank

    def __call__(self, predictions, batch: Mapping) -> dict[str, paddle.Tensor]:
        logits = predictions["ctc"] if isinstance(predictions, Mapping) else predictions
        labels = batch_tensor(batch, "label_ctc")
        lengths = batch_tensor(batch, "length")
        return {"loss": ctc_loss(logits, labels, lengths, self.blank).mean()}
