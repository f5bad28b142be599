"""MultiHead: the PP-OCRv4/v5/v6 recognition head = a CTC branch and an NRTR (GTC) branch on one backbone map.

* CTC branch: ``ctc_encoder`` (v4/v5: SVTR neck, detached input when ``use_guide``; v6 small / medium: light SVTR;
  v6 tiny: a plain reshape) -> ``ctc_head`` (a linear layer; v6 tiny: guide layer + two linear layers). The
  builders pass the two layers in; without them the v4/v5 SVTR + linear pair is built from ``svtr``.
* GTC branch (training only): ``before_gtc`` (flatten + bias-free linear C -> nrtr_dim) -> ``gtc_head`` (NRTR).

:meth:`MultiHead.protect_backbone` rewires training for starting weights whose NRTR branch is untrained (an
imported inference model has none): the CTC loss trains the backbone and NRTR learns on detached features, so a
random decoder cannot reshape pretrained features. Eval (and export) is unaffected.

Eval returns the CTC probabilities ``[N, T, C]`` only (the export graph); train returns
``{"ctc": logits, "ctc_neck": [N, T, dims], "gtc": NRTR logits [R, vocab], "gtc_targets": [R]}`` (R: the non-pad
target positions) and needs the targets.
"""

from __future__ import annotations

from collections.abc import Mapping

import paddle
import paddle.nn as nn

from workbench.models.heads.ctc import CTCHead
from workbench.models.heads.nrtr import NRTRDecoder
from workbench.models.necks.svtr import SVTRSequenceEncoder

__all__ = ["SequenceProjection", "MultiHead"]


class SequenceProjection(nn.Layer):
    """``[N, C, T] -> [N, T, out]`` with a bias-free linear layer (upstream ``FCTranspose``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.fc = nn.Linear(in_channels, out_channels, bias_attr=False)

    def forward(self, x):
        return self.fc(x.transpose([0, 2, 1]))


def _as_tensor(value, name: str):
    if isinstance(value, paddle.Tensor):
        return value
    if value is None:
        raise ValueError(f"MultiHead (train mode): targets[{name!r}] is missing")
    return paddle.to_tensor(value)


class MultiHead(nn.Layer):
    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        svtr: Mapping | None = None,
        ctc_encoder: nn.Layer | None = None,
        ctc_head: nn.Layer | None = None,
        fc_decay: float = 1e-5,
        nrtr_dim: int = 384,
        nrtr_layers: int = 4,
        nrtr_heads: int | None = None,
        max_text_length: int = 25,
        sar: Mapping | None = None,
    ):
        """``num_classes``: CTC classes (dictionary lines + 2). NRTR vocabulary = ``num_classes + 4``.
        ``sar``: the PP-OCRv3 layout, a SAR branch (``heads.sar.SARHead`` arguments; ``num_classes + 2`` classes)
        instead of NRTR."""
        super().__init__()
        self.num_classes = num_classes
        self.ctc_encoder = ctc_encoder if ctc_encoder is not None else SVTRSequenceEncoder(in_channels,
                                                                                            **dict(svtr or {}))
        self.ctc_head = ctc_head if ctc_head is not None else CTCHead(self.ctc_encoder.out_channels, num_classes,
                                                                      fc_decay=fc_decay)
        self.gtc_detached = False
        self.gtc_enabled = True  # False: the training-only branch (NRTR / SAR) is not computed (skip_nrtr)
        if sar is not None:
            from workbench.models.heads.sar import SARHead

            self.sar_head = SARHead(in_channels, num_classes + 2, max_text_length=max_text_length, **dict(sar))
            return
        self.before_gtc = nn.Sequential(nn.Flatten(2), SequenceProjection(in_channels, nrtr_dim))
        self.gtc_head = NRTRDecoder(
            vocab_size=num_classes + 4,
            d_model=nrtr_dim,
            nhead=nrtr_heads,
            num_layers=nrtr_layers,
            max_text_length=max_text_length,
        )

    def skip_nrtr(self) -> None:
        """Train without the NRTR branch: CTC trains the backbone (no guide) and NRTR is not computed at all. For
        starting weights whose NRTR branch is untrained (imports): the branch is never exported, and detached it
        could not help the CTC branch anyway, so computing it is pure cost (its output projection alone is
        nrtr_dim x ~18k classes per target position). Its weights stay in the state dict, untouched: they stop
        training (``stop_gradient``), so the optimizer and the weights' average leave them alone."""
        encoder = getattr(self.ctc_encoder, "encoder", None)  # v6 tiny's ReshapeSequence has no SVTR encoder
        if encoder is not None and hasattr(encoder, "use_guide"):
            encoder.use_guide = False
        self.gtc_enabled = False
        for name in ("before_gtc", "gtc_head", "sar_head"):
            for p in getattr(self, name).parameters() if hasattr(self, name) else ():
                p.stop_gradient = True

    def protect_backbone(self) -> None:
        """CTC trains the backbone (no guide), NRTR's gradient stops at its input. See the module docstring."""
        encoder = getattr(self.ctc_encoder, "encoder", None)
        if encoder is not None and hasattr(encoder, "use_guide"):
            encoder.use_guide = False
        self.gtc_detached = True

    def forward(self, x, targets: Mapping | None = None):
        neck = self.ctc_encoder(x)
        ctc = self.ctc_head(neck)
        if not self.training:
            return ctc
        if not self.gtc_enabled:
            return {"ctc": ctc, "ctc_neck": neck}
        if targets is None:
            raise ValueError("MultiHead in train mode needs targets with 'label_gtc' and 'length' (SAR: 'label_sar'"
                             " and 'valid_ratio')")
        if getattr(self, "sar_head", None) is not None:
            feat = x.detach() if self.gtc_detached else x
            sar = self.sar_head(feat, _as_tensor(targets.get("label_sar"), "label_sar"),
                                _as_tensor(targets.get("valid_ratio"), "valid_ratio"))
            return {"ctc": ctc, "ctc_neck": neck, "sar": sar}
        label_gtc = _as_tensor(targets.get("label_gtc"), "label_gtc")
        length = _as_tensor(targets.get("length"), "length")
        gtc, gtc_targets = self.gtc_head(self.before_gtc(x.detach() if self.gtc_detached else x), label_gtc, length)
        return {"ctc": ctc, "ctc_neck": neck, "gtc": gtc, "gtc_targets": gtc_targets}

    def drop_training_branches(self) -> None:
        """Remove the NRTR / SAR branch (unused in eval) before export."""
        for name in ("before_gtc", "gtc_head", "sar_head"):
            if getattr(self, name, None) is not None:
                setattr(self, name, None)
