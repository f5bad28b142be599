"""Prepare a trained model for export: the inference graph of the official models.

* Every re-parameterisable layer (anything with a ``rep()`` method, e.g. PPLCNetV3's ``LearnableRepLayer``)
  folds its training branches into one conv, in place. Outputs in eval mode are unchanged up to float32
  rounding (tests hold them to 1e-5).
* The model is put in eval mode (the inference graph is the eval forward: DB probability map / CTC probs).
* Optionally, heads drop branches that only training uses (``drop_training_branches()``: DBHead's ``thresh``,
  MultiHead's NRTR branch), so the state dict holds only what the inference graph reads.

There is no "un-fuse": keep the training checkpoint; fusion is one-way.
"""

from __future__ import annotations

import paddle.nn as nn

__all__ = ["fuse_for_inference", "is_fused"]


def _rep_layers(model: nn.Layer) -> list[nn.Layer]:
    return [layer for layer in model.sublayers(include_self=True) if callable(getattr(layer, "rep", None))]


def fuse_for_inference(model: nn.Layer, *, drop_training_branches: bool = False) -> nn.Layer:
    """Fuse ``model`` in place for export and return it (in eval mode). Idempotent."""
    model.eval()
    for layer in _rep_layers(model):
        layer.rep()
    if drop_training_branches:
        for layer in model.sublayers(include_self=True):
            drop = getattr(layer, "drop_training_branches", None)
            if callable(drop):
                drop()
    return model


def is_fused(model: nn.Layer) -> bool:
    """True when every re-parameterisable layer of ``model`` has been fused."""
    return all(getattr(layer, "is_repped", False) for layer in _rep_layers(model))
