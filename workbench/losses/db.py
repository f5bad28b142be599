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

PP-OCRv6 (``main_loss_type="DiceFocalLoss"``): the shrink and binary maps are scored by Dice + focal loss
(``dice_focal_loss``: focal on the probability map turned back into a logit, ``alpha`` 0.25, ``gamma`` 2.5,
averaged over the mask), unbalanced; and each auxiliary map set ``aux_maps_p4 / p3 / p2`` the head returns adds
``aux_weight * (alpha * L(shrink) + beta * L1(threshold) + L(binary))`` (weights 0.2 / 0.3 / 0.4), reported as
``loss_aux_maps_p4`` ... (unweighted). Upstream: ``DBLoss`` / ``DiceFocalLoss`` in ``ppocr/losses``.

Batch keys: ``shrink_map``, ``shrink_mask``, ``threshold_map``, ``threshold_mask`` (``[N, H, W]`` float32).
Returns 0-d tensors: ``loss``, ``loss_shrink_maps``, ``loss_threshold_maps``, ``loss_binary_maps``, ``loss_cbn``.
"""

from __future__ import annotations

from collections.abc import Mapping

import paddle

from workbench.losses._util import batch_tensor

__all__ = ["dice_loss", "balanced_dice_loss", "dice_focal_loss", "masked_focal_loss", "masked_l1_loss", "DBLoss"]


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


def masked_focal_loss(pred, gt, mask, alpha: float = 0.25, gamma: float = 2.0, eps: float = 1e-6):
    """Binary focal loss of a probability map, averaged over ``mask``: the map is clipped to [eps, 1 - eps] and
    turned back into a logit for Paddle's numerically stable ``sigmoid_focal_loss`` (as upstream)."""
    import paddle.nn.functional as F

    pred = paddle.clip(pred, eps, 1.0 - eps)
    logit = paddle.log(pred / (1.0 - pred))
    loss = F.sigmoid_focal_loss(logit, gt, normalizer=None, alpha=alpha, gamma=gamma, reduction="none")
    return paddle.sum(loss * mask) / (paddle.sum(mask) + eps)


def dice_focal_loss(pred, gt, mask, alpha: float = 0.25, gamma: float = 2.0, dice_weight: float = 1.0,
                    focal_weight: float = 1.0, eps: float = 1e-6):
    return dice_weight * dice_loss(pred, gt, mask, eps) + focal_weight * masked_focal_loss(pred, gt, mask, alpha,
                                                                                          gamma, eps)


AUX_KEYS = ("aux_maps_p4", "aux_maps_p3", "aux_maps_p2")


class DBLoss:
    """``main_loss_type``: ``"DiceLoss"`` (v3/v4/v5: balanced Dice) or ``"DiceFocalLoss"`` (v6). ``aux_weights``:
    weight per auxiliary map set (``{"p4": 0.2, "p3": 0.3, "p2": 0.4}`` for v6); maps without a weight are
    ignored, as upstream."""

    def __init__(self, alpha: float = 5.0, beta: float = 10.0, ohem_ratio: float = 3.0, eps: float = 1e-6,
                 main_loss_type: str = "DiceLoss", focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 dice_weight: float = 1.0, focal_weight: float = 1.0, aux_weights: Mapping | None = None):
        if main_loss_type not in ("DiceLoss", "DiceFocalLoss"):
            raise ValueError(f"DBLoss: main_loss_type {main_loss_type!r} is not DiceLoss or DiceFocalLoss")
        self.alpha = alpha
        self.beta = beta
        self.ohem_ratio = ohem_ratio
        self.eps = eps
        self.main_loss_type = main_loss_type
        self.focal = dict(alpha=focal_alpha, gamma=focal_gamma, dice_weight=dice_weight, focal_weight=focal_weight)
        self.aux_weights = {f"aux_maps_{k}": float(v) for k, v in dict(aux_weights or {}).items()}
        unknown = set(self.aux_weights) - set(AUX_KEYS)
        if unknown:
            raise ValueError(f"DBLoss: unknown auxiliary levels {sorted(unknown)} (known: p4, p3, p2)")

    def _shrink_loss(self, pred, gt, mask):
        if self.main_loss_type == "DiceFocalLoss":
            return dice_focal_loss(pred, gt, mask, eps=self.eps, **self.focal)
        return balanced_dice_loss(pred, gt, mask, self.ohem_ratio, self.eps)

    def _binary_loss(self, pred, gt, mask):
        if self.main_loss_type == "DiceFocalLoss":
            return dice_focal_loss(pred, gt, mask, eps=self.eps, **self.focal)
        return dice_loss(pred, gt, mask, self.eps)

    def _map_losses(self, maps, shrink_map, shrink_mask, threshold_map, threshold_mask):
        # unbind: its gradient is one stack; three slices' gradients each zero-fill the whole map (30 ms each, det bs 4)
        shrink, threshold, binary = paddle.unbind(maps, axis=1)[:3]
        return (self.alpha * self._shrink_loss(shrink, shrink_map, shrink_mask),
                self.beta * masked_l1_loss(threshold, threshold_map, threshold_mask, self.eps),
                self._binary_loss(binary, shrink_map, shrink_mask))

    def __call__(self, predictions: Mapping, batch: Mapping) -> dict[str, paddle.Tensor]:
        targets = [batch_tensor(batch, key, "float32")
                   for key in ("shrink_map", "shrink_mask", "threshold_map", "threshold_mask")]
        shrink_map, shrink_mask = targets[0], targets[1]
        loss_shrink, loss_threshold, loss_binary = self._map_losses(predictions["maps"], *targets)
        if "cbn_maps" in predictions:
            cbn = predictions["cbn_maps"][:, 0]
            loss_cbn = self._shrink_loss(cbn, shrink_map, shrink_mask)
        else:
            loss_cbn = paddle.zeros([], dtype="float32")
        out = {
            "loss": loss_shrink + loss_threshold + loss_binary + loss_cbn,
            "loss_shrink_maps": loss_shrink,
            "loss_threshold_maps": loss_threshold,
            "loss_binary_maps": loss_binary,
            "loss_cbn": loss_cbn,
        }
        for key, weight in self.aux_weights.items():
            if weight > 0 and key in predictions:
                aux = sum(self._map_losses(predictions[key], *targets))
                out[f"loss_{key}"] = aux
                out["loss"] = out["loss"] + weight * aux
        return out
