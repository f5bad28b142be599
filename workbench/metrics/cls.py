"""Classification metrics for the orientation modules: top-1 accuracy, per-class recall and precision, and the
confusion matrix.

``acc`` is PaddleClas's ``TopkAcc`` with k = 1 (what PaddleX's model list reports: "Top-1 Accuracy"): the share of
samples whose most probable class is the labelled one. There is no upstream twist to reproduce here, and no
``1e-5`` in the denominator. Per class (``name`` = the class's PaddleX name):

======================  =================================================================================
``acc``                 top-1 accuracy over all samples
``recall_<name>``       share of the samples of class ``name`` predicted as ``name`` (its confusion row)
``precision_<name>``    share of the predictions ``name`` that are right (its confusion column); 0 when
                        ``name`` was never predicted
``n``, ``n_<name>``     samples seen, per class
======================  =================================================================================

A task whose classes are balanced by construction (every upright crop also turned by 180°) has ``acc`` equal to
the mean recall; with user-labelled class files the per-class rows say which direction fails.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


class ClassificationMetric:
    """Top-1 accuracy and confusion of one evaluation. ``classes``: the class names, index = class id."""

    def __init__(self, classes: Sequence[str]):
        self.classes = tuple(str(c) for c in classes)
        self._gt: list[int] = []
        self._pred: list[int] = []
        self._score: list[float] = []
        self._ids: list = []

    def update(self, preds: Sequence[int], targets: Sequence[int], scores: Optional[Sequence[float]] = None,
               ids: Optional[Sequence] = None) -> None:
        """``preds`` / ``targets``: class indices; ``scores``: the predicted class's probability."""
        preds, targets = [int(p) for p in preds], [int(t) for t in targets]
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        k = len(self.classes)
        bad = [v for v in preds + targets if not 0 <= v < k]
        if bad:
            raise ValueError(f"class index {bad[0]} outside 0..{k - 1} ({', '.join(self.classes)})")
        self._gt += targets
        self._pred += preds
        self._score += [float(s) for s in scores] if scores is not None else [float("nan")] * len(preds)
        self._ids += list(ids) if ids is not None else list(range(len(self._ids), len(self._ids) + len(preds)))

    def confusion(self) -> np.ndarray:
        """``[k, k]`` counts, rows = labelled class, columns = predicted class."""
        k = len(self.classes)
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (np.asarray(self._gt, dtype=np.int64), np.asarray(self._pred, dtype=np.int64)), 1)
        return matrix

    def compute(self) -> dict[str, float]:
        m = self.confusion()
        n = int(m.sum())
        out: dict[str, float] = {"acc": float(np.trace(m) / n) if n else 0.0, "n": n}
        for i, name in enumerate(self.classes):
            row, col = int(m[i].sum()), int(m[:, i].sum())
            out[f"recall_{name}"] = float(m[i, i] / row) if row else 0.0
            out[f"precision_{name}"] = float(m[i, i] / col) if col else 0.0
            out[f"n_{name}"] = row
        return out

    def records(self) -> list[dict]:
        """One row per sample, in update order: ``id``, labelled and predicted class (index and name), ``correct``,
        ``score``."""
        return [{"id": i, "gt_class": g, "pred_class": p, "gt_label": self.classes[g], "pred_label": self.classes[p],
                 "correct": g == p, "score": s}
                for i, g, p, s in zip(self._ids, self._gt, self._pred, self._score)]
