"""Report rows built from real samples of ../shared/data with made-up predictions (shared by the analysis tests).

Rows are made as the rec / det tasks make them: the real metric's records, extended with where each sample came
from and its size.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from workbench.metrics.det import DetEvaluator
from workbench.metrics.rec import RecMetric

#: icdar2015_det label lines with several care boxes (some with don't-care boxes too)
DET_LINES = (1, 3, 5, 7, 9)


def rec_samples(data_dir: Path, n: int = 20, dataset: str = "sroie_rec") -> list[dict]:
    root = data_dir / dataset
    label_file = root / "label.txt"
    out = []
    for number, line in enumerate(label_file.read_text(encoding="utf-8").splitlines()[:n], 1):
        rel, text = line.split("\t", 1)
        h, w = cv2.imread(str(root / rel)).shape[:2]
        out.append({"image_path": str(root / rel), "label_file": str(label_file), "line": number, "gt": text,
                    "width": w, "height": h})
    return out


def rec_rows(samples: list[dict], preds: dict[int, str], scores: dict[int, float] | None = None,
             dictionary=None) -> tuple[list[dict], dict]:
    """RecMetric rows for ``samples``: prediction = GT unless ``preds`` says otherwise; score 0.99 unless given."""
    scores = scores or {}
    metric = RecMetric(dictionary=dictionary)
    texts = [preds.get(i, s["gt"]) for i, s in enumerate(samples)]
    metric.update([(t, scores.get(i, 0.99)) for i, t in enumerate(texts)], [s["gt"] for s in samples],
                  ids=list(range(len(samples))))
    rows = metric.records()
    for row, s in zip(rows, samples):
        row.update({k: s[k] for k in ("image_path", "label_file", "line", "width", "height")})
    return rows, metric.compute()


def det_samples(data_dir: Path, lines=DET_LINES) -> list[dict]:
    root = data_dir / "icdar2015_det"
    label_file = root / "label.txt"
    all_lines = label_file.read_text(encoding="utf-8").splitlines()
    out = []
    for number in lines:
        rel, js = all_lines[number - 1].split("\t", 1)
        anns = json.loads(js)
        h, w = cv2.imread(str(root / rel)).shape[:2]
        texts = [a["transcription"] for a in anns]
        out.append({"image_path": str(root / rel), "label_file": str(label_file), "line": number,
                    "gt_polys": [a["points"] for a in anns], "gt_texts": texts,
                    "gt_ignore": [t in ("###", "*") for t in texts], "width": w, "height": h})
    return out


def care_indices(sample: dict) -> list[int]:
    return [i for i, ign in enumerate(sample["gt_ignore"]) if not ign]


def perfect_predictions(sample: dict) -> list:
    return [sample["gt_polys"][i] for i in care_indices(sample)]


def shifted(poly, dx: float) -> list:
    return (np.asarray(poly, dtype=np.float64) + [dx, 0.0]).tolist()


def far_box(x: float, y: float) -> list:
    return [[x, y], [x + 60, y], [x + 60, y + 20], [x, y + 20]]


def det_rows(samples: list[dict], predictions: list[list]) -> tuple[list[dict], dict]:
    """DetEvaluator rows for ``samples`` with ``predictions`` (a polygon list per image; scores 0.9)."""
    ev = DetEvaluator()
    for s, preds in zip(samples, predictions):
        ev.update(s["gt_polys"], s["gt_ignore"], preds, [0.9] * len(preds), image_id=s["image_path"])
    rows = ev.records()
    for row, s, preds in zip(rows, samples, predictions):
        row.update(s)
        row["pred_polys"] = preds
        row["pred_scores"] = [0.9] * len(preds)
    return rows, ev.compute()
