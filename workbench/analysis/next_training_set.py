"""Close the loop: the samples the pipeline fails on, written as PaddleOCR label files to review and train on.

``NextTrainingSet(out_dir)`` is filled image by image during an analysis (:meth:`NextTrainingSet.add`) and writes::

    <out_dir>/
      rec/label.txt     crops/<image>_<line>_<gt>.png<TAB>GT text     (PaddleOCR rec format)
      rec/crops/        the GT boxes cropped exactly as the pipeline crops a detected box
      textline_ori/label.txt  crops/<image>_<line>_<gt>.png<TAB>0_degree | 180_degree   (PaddleX class list)
      textline_ori/crops/     the wrongly oriented crops, as the pipeline cut them (before any orientation model)
      det/label.txt     <image path><TAB>[{"transcription": ..., "points": ...}, ...]   (PaddleOCR det format)
      det/<image path>  copies of the failing images (their path inside the source label file, when it is a plain
                        relative path; else images/<line>_<name>)
      manifest.jsonl    one row per written sample: which file, the source label line, GT index and outcome

Paths in each label file are relative to that file, so the folders can be moved, reviewed and listed in a recipe's
``data.train`` as they are. Both files round-trip through ``read_rec_labels`` / ``read_det_labels`` and the
datasets.

What goes where:

* **rec** — a care GT text the recogniser fails on *from the GT box itself*: outcome ``misread_rec``; ``orientation``
  and the GT lost by detection (missed / merged / split / misread_crop) whose perfect crop is misread too (fixing
  detection or the crop's orientation alone would not recover them); and ``below_threshold`` (read right, but with
  too little confidence). An upside-down crop that the GT box fixes is no recognition data: it is not written.
* **det** — an image with at least one detection error (missed, merged, split, misread_crop, or a false positive
  that passed the score threshold), with its complete original annotation (don't-care boxes included).
* **textline_ori** — a text the pipeline misread because its crop was upside down when it reached the recogniser
  (outcome ``orientation``): the detected box's crop as cut, labelled with its true orientation -- ``0_degree``
  when the orientation model turned an upright crop (the crop as cut reads right), ``180_degree`` when the crop
  was upside down and nothing (no model, or the model) turned it; else the GT box's crop, ``180_degree``, when it
  reads right only turned. Train with it and your rec data (every rec crop gives both classes):
  ``wb train recipe=textline_ori_finetune data.train=[.../textline_ori/label.txt, my_rec_train.txt]``.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Optional, Sequence

import cv2
import numpy as np

from workbench.analysis.attribution import (
    BELOW_THRESHOLD, DETECTION, FALSE_POSITIVE, MODULE_OF, MISREAD_REC, ORIENTATION,
)
from workbench.data.orientation import TEXTLINE_CLASSES

REC_DIR, DET_DIR, LABEL_FILE, MANIFEST = "rec", "det", "label.txt", "manifest.jsonl"
ORI_DIR = "textline_ori"


def orientation_label(outcome: dict, box_crops: dict) -> Optional[tuple[str, str]]:
    """(which crop: ``box`` / ``gt``, class name) of a text misread for its orientation, or None."""
    if outcome["outcome"] != ORIENTATION:
        return None
    if outcome.get("pred_rotated_correct") and outcome.get("pred") in box_crops:
        return "box", TEXTLINE_CLASSES.names[0 if outcome.get("pred_angle") == 1 else 1]
    if outcome.get("rotated_correct"):
        return "gt", TEXTLINE_CLASSES.names[1]
    return None


def rec_reason(outcome: dict) -> Optional[str]:
    """Why a GT (an :class:`~workbench.analysis.attribution.GTOutcome` dict) goes into the rec set, or None."""
    o = outcome["outcome"]
    if o in (MISREAD_REC, BELOW_THRESHOLD):
        return o
    if outcome.get("perfect_correct") is False and (o == ORIENTATION or MODULE_OF.get(o) == DETECTION):
        return f"{o}, and misread from the GT box"
    return None


def det_errors(outcomes: Sequence[dict], pred_status: Sequence[str]) -> list[str]:
    """The detection errors of an image: one entry per GT lost by detection and per kept false positive."""
    errors = [o["outcome"] for o in outcomes if MODULE_OF.get(o["outcome"]) == DETECTION]
    return errors + [FALSE_POSITIVE] * sum(s == FALSE_POSITIVE for s in pred_status)


def _points(poly) -> list:
    """Polygon points for the JSON label: integers when they are whole numbers (as they were written)."""
    arr = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    return [[int(v) if float(v).is_integer() else float(v) for v in pt] for pt in arr]


def _safe_relative(rel: str) -> Optional[str]:
    """``rel`` as a POSIX relative path when it stays below its folder, else None."""
    if not rel:
        return None
    p = PurePosixPath(rel.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return None
    return str(p)


class NextTrainingSet:
    """Collects failing samples while an analysis runs; see the module docstring for the layout."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.rec_dir, self.det_dir, self.ori_dir = self.out_dir / REC_DIR, self.out_dir / DET_DIR, self.out_dir / ORI_DIR
        for d in (self.rec_dir / "crops", self.det_dir, self.ori_dir / "crops"):
            d.mkdir(parents=True, exist_ok=True)
        self._rec = open(self.rec_dir / LABEL_FILE, "w", encoding="utf-8")
        self._det = open(self.det_dir / LABEL_FILE, "w", encoding="utf-8")
        self._ori = open(self.ori_dir / LABEL_FILE, "w", encoding="utf-8")
        self.n_ori = 0
        self._manifest = open(self.out_dir / MANIFEST, "w", encoding="utf-8")
        self._det_paths: set[str] = set()
        self.n_rec = 0
        self.n_det = 0

    # -- writing -----------------------------------------------------------------------------------------------------
    def add(self, sample, *, outcomes: Sequence[dict], pred_status: Sequence[str],
            gt_crops: Sequence[Optional[np.ndarray]], box_crops: Optional[dict] = None) -> None:
        """One analysed image: its label line (``sample``: a ``workbench.data.labels.DetSample``: image, label file
        and line, GT boxes and texts), its GT outcomes (dicts with ``index``, ``text``, ``outcome``,
        ``perfect_correct``), the status of its predictions, the perfect crop of each GT (None where there is
        none) and the crops as cut of the detected boxes that were re-read turned (box index → crop)."""
        image_path, rel_path, label_file, line = sample.image_path, sample.rel_path, sample.file, sample.line
        gt_polys, gt_texts = sample.polys, list(sample.texts)
        source = {"label_file": str(label_file), "line": int(line), "image_path": str(image_path)}
        stem = Path(str(image_path)).stem
        for o in outcomes:
            reason = rec_reason(o)
            crop = gt_crops[o["index"]] if o["index"] < len(gt_crops) else None
            if reason is None or crop is None or "\t" in o["text"] or "\n" in o["text"]:
                continue
            name = f"crops/{stem}_{line}_{o['index']}.png"
            ok, buf = cv2.imencode(".png", crop)
            if not ok:
                continue
            (self.rec_dir / name).write_bytes(buf.tobytes())
            self._rec.write(f"{name}\t{o['text']}\n")
            self.n_rec += 1
            self._write_manifest({"set": "rec", "file": f"{REC_DIR}/{name}", **source, "gt_index": o["index"],
                                  "text": o["text"], "outcome": o["outcome"], "reason": reason})
        for o in outcomes:
            found = orientation_label(o, box_crops or {})
            if found is None:
                continue
            which, label = found
            crop = box_crops[o["pred"]] if which == "box" else (gt_crops[o["index"]] if o["index"] < len(gt_crops)
                                                                 else None)
            ok, buf = cv2.imencode(".png", crop) if crop is not None and crop.size else (False, None)
            if not ok:
                continue
            name = f"crops/{stem}_{line}_{o['index']}.png"
            (self.ori_dir / name).write_bytes(buf.tobytes())
            self._ori.write(f"{name}\t{label}\n")
            self.n_ori += 1
            self._write_manifest({"set": ORI_DIR, "file": f"{ORI_DIR}/{name}", **source, "gt_index": o["index"],
                                  "text": o["text"], "outcome": o["outcome"], "label": label,
                                  "crop": "detected box" if which == "box" else "GT box"})
        errors = det_errors(outcomes, pred_status)
        if errors:
            self._add_det(image_path, rel_path, line, gt_polys, gt_texts, errors, source)

    def _add_det(self, image_path, rel_path, line, gt_polys, gt_texts, errors, source) -> None:
        rel = _safe_relative(rel_path) or f"images/{line}_{Path(str(image_path)).name}"
        if rel in self._det_paths:  # the same image on two label lines: keep the first
            return
        self._det_paths.add(rel)
        dest = self.det_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        _copy(Path(image_path), dest)
        boxes = [{"transcription": t, "points": _points(p)} for p, t in zip(gt_polys, gt_texts)]
        self._det.write(f"{rel}\t{json.dumps(boxes, ensure_ascii=False)}\n")
        self.n_det += 1
        counts: dict[str, int] = {}
        for e in errors:
            counts[e] = counts.get(e, 0) + 1
        self._write_manifest({"set": "det", "file": f"{DET_DIR}/{rel}", **source, "errors": counts})

    def _write_manifest(self, row: dict) -> None:
        self._manifest.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> dict:
        """Close the files; returns what was written (paths and counts)."""
        for f in (self._rec, self._det, self._ori, self._manifest):
            f.close()
        return {"rec_label_file": str(self.rec_dir / LABEL_FILE), "rec_samples": self.n_rec,
                "det_label_file": str(self.det_dir / LABEL_FILE), "det_images": self.n_det,
                "textline_ori_label_file": str(self.ori_dir / LABEL_FILE), "textline_ori_samples": self.n_ori,
                "manifest": str(self.out_dir / MANIFEST)}

    def __enter__(self) -> "NextTrainingSet":
        return self

    def __exit__(self, *exc) -> None:
        if not self._rec.closed:
            self.close()


def _copy(src: Path, dest: Path) -> None:
    """A real copy (not a link): reviewing may mean editing, and that must never touch the source set."""
    import shutil

    shutil.copyfile(src, dest)
