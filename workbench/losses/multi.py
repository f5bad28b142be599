"""The PP-OCR recognition loss: CTC (on ``predictions["ctc"]``) + NRTR (on ``predictions["gtc"]``, v4-v6) or SAR
(on ``predictions["sar"]``, v3)."""

from __future__ import annotations

from collections.abc import Mapping

import paddle

from workbench.losses.ctc import CTCLoss
from workbench.losses.nrtr import NRTRLoss

__all__ = ["MultiLoss"]


class MultiLoss:
    """``loss = ctc_weight * CTC + nrtr_weight * NRTR``; also returns ``loss_ctc`` and ``loss_nrtr`` (weighted)."""

    def __init__(self, ctc_weight: float = 1.0, nrtr_weight: float = 1.0, smoothing: float = 0.1):
        self.ctc_weight = ctc_weight
        self.nrtr_weight = nrtr_weight
        self.ctc = CTCLoss()
        self.nrtr = NRTRLoss(smoothing)

    def __call__(self, predictions: Mapping, batch: Mapping) -> dict[str, paddle.Tensor]:
        loss_ctc = self.ctc(predictions, batch)["loss"] * self.ctc_weight
        if "sar" in predictions:  # PP-OCRv3: SAR instead of NRTR (same weight, as upstream's MultiLoss)
            from workbench.losses.sar import SARLoss

            loss_sar = SARLoss()(predictions, batch)["loss"] * self.nrtr_weight
            return {"loss": loss_ctc + loss_sar, "loss_ctc": loss_ctc, "loss_sar": loss_sar}
        if "gtc" not in predictions:  # a CTC-only model (the demo's): nothing for NRTR to score
            loss_nrtr = paddle.zeros_like(loss_ctc)
        else:
            loss_nrtr = self.nrtr(predictions, batch)["loss"] * self.nrtr_weight
        return {"loss": loss_ctc + loss_nrtr, "loss_ctc": loss_ctc, "loss_nrtr": loss_nrtr}
