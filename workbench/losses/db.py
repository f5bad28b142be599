"""DB detection loss (upstream ``DBLoss`` with ``balance_loss=True, main_loss_type=DiceLoss``).

* shrink map P:    ``alpha * balanced(dice(P))``
* threshold map T: ``beta * masked L1(T, threshold_map, threshold_mask)``
* binary map B:    ``dice(B)`` (not scaled)
* cbn map (PFHeadLocal only, ``predictions["cbn_maps"]``): ``balanced(dice(cbn))``, else 0.

About "balanced" -- upstream wraps the main loss in an OHEM balancer meant for per-pixel losses (keep all
positive pixels and the ``ohem_ratio`` x as many hardest negatives). With Dice the "per-pixel loss" is one
scalar, so the top-k over negatives picks ``Nn`` pixels that all carry the same value and the balancer only
rescales Dice by ``(sum(pos) + Nn) / (Np + Nn + eps)`` with ``Np = int(sum(pos))``,
``Nn = int(min(sum(neg), ohem_ratio * Np))`` (``sum(pos) / (Np + eps)`` if ``Nn == 0``) -- about 1. We compute
that factor directly instead of sorting every pixel, which is exact for binary shrink maps/masks (what the
target generator produces). Sums run over the whole batch, as upstream.

Batch keys: ``shrink_map``, ``shrink_mask``, ``threshold_map``, ``threshold_mask`` (``[N, H, W]`` float32).
Returns 0-d tensors: ``loss``, ``loss_shrink_maps``, ``loss_threshold_maps``, ``loss_binary_maps``, ``loss_cbn``.
"""

from __future__ import annotations

from collections.abc import Mapping

import paddle

from workbench.losses._util import batch_tensor

__all__ = ["dice_loss", "balanced_dice_loss", "masked_l1_loss", "DBLoss"]


def dice_loss(pred, gt, mask, eps: float = 1e-6):
    """``1 - 2 sum(pred*gt*mask) / (sum(pred*mask) + sum(gt*mask) + eps)``."""
    intersection = paddle.sum(pred * gt * mask)
    union = paddle.sum(pred * mask) + paddle.sum(gt * mask) + eps
    return 1 - 2.0 * intersection / union


def balanced_dice_loss(pred, gt, mask, negative_ratio: float = 3.0, eps: float = 1e-6):
    """Dice scaled by upstream's OHEM balance factor (see the module docstring)."""
    loss = dice_loss(pred, gt, mask, eps)
    positive_sum = float(paddle.sum(gt * mask))
    negative_sum = float(paddle.sum((1 - gt) * mask))
    positive_count = int(positive_sum)
    negative_count = int(min(negative_sum, positive_count * negative_ratio))
    if negative_count > 0:
        factor = (positive_sum + negative_count) / (positive_count + negative_count + eps)
    else:
        factor = positive_sum / (positive_count + eps)
    return loss * factor


def masked_l1_loss(pred, gt, mask, eps: float = 1e-6):
    return paddle.sum(paddle.abs(pred - gt) * mask) / (paddle.sum(mask) + eps)


class DBLoss:
    def __init__(self, alpha: float = 5.0, beta: float = 10.0, ohem_ratio: float = 3.0, eps: float = 1e-6):
        self.alpha = alpha
        self.beta = beta
        self.ohem_ratio = ohem_ratio
        self.eps = eps

    def __call__(self, predictions: Mapping, batch: Mapping) -> dict[str, paddle.Tensor]:
        maps = predictions["maps"]
        shrink, threshold, binary = maps[:, 0], maps[:, 1], maps[:, 2]
        shrink_map = batch_tensor(batch, "shrink_map", "float32")
        shrink_mask = batch_tensor(batch, "shrink_mask", "float32")
        threshold_map = batch_tensor(batch, "threshold_map", "float32")
        threshold_mask = batch_tensor(batch, "threshold_mask", "float32")

        loss_shrink = self.alpha * balanced_dice_loss(shrink, shrink_map, shrink_mask, self.ohem_ratio, self.eps)
        loss_threshold = self.beta * masked_l1_loss(threshold, threshold_map, threshold_mask, self.eps)
        loss_binary = dice_loss(binary, shrink_map, shrink_mask, self.eps)
        if "cbn_maps" in predictions:
            cbn = predictions["cbn_maps"][:, 0]
            loss_cbn = balanced_dice_loss(cbn, shrink_map, shrink_mask, self.ohem_ratio, self.eps)
        else:
            loss_cbn = paddle.zeros([], dtype="float32")
        return {
            "loss": loss_shrink + loss_threshold + loss_binary + loss_cbn,
            "loss_shrink_maps": loss_shrink,
            "loss_threshold_maps": loss_threshold,
            "loss_binary_maps": loss_binary,
            "loss_cbn": loss_cbn,
        }
