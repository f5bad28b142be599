"""``wb data check det``: detection label files (``image<TAB>[{"transcription", "points"}, ...]``): JSON, polygon
geometry against the image, box sizes against the DB targets' ``min_text_size``."""

from __future__ import annotations

import argparse
import collections
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.data.check.common import CheckRun, LabelCheck, describe, duplicate_findings, image_findings, montage, \
    pick_samples
from workbench.data.check.report import Report
from workbench.data.labels import DetSample, read_det_labels, validate_det_geometry


@dataclass
class DetLabelCheck(LabelCheck):
    """``min_text_size``: the DB targets' smallest trainable box side, in original pixels."""

    min_text_size: int = 8

    kind = "det"
    reader = staticmethod(read_det_labels)
    option_names = ("min_text_size",)

    @classmethod
    def from_options(cls, charset=None, *, min_text_size: int = 8) -> "DetLabelCheck":
        return cls(min_text_size)

    def options(self) -> dict:
        return {"min_text_size": self.min_text_size}

    def check(self, train: list[Path], val: list[Path], run: CheckRun) -> Report:
        data = self.read(train, val, run.root)
        samples, findings = data.samples, data.findings
        scans = data.scan(run)
        findings += image_findings(samples, scans)
        for _, s in samples:
            scan = scans[str(s.image_path)]
            if scan.usable_size:
                findings += validate_det_geometry(s, scan.width, scan.height, self.min_text_size)
        findings += duplicate_findings(samples, scans, _label_signature)
        boxes_per_image = [len(s.polys) for _, s in samples]
        short_sides = [float(min(np.ptp(p[:, 0]), np.ptp(p[:, 1]))) for _, s in samples
                       for p, ign in zip(s.polys, s.ignore_tags) if not ign]
        points = collections.Counter(len(p) for _, s in samples for p in s.polys)
        stats = {
            "images": len(scans),
            "boxes": int(sum(boxes_per_image)),
            "ignored_boxes": int(sum(sum(s.ignore_tags) for _, s in samples)),
            "boxes_per_image": describe(boxes_per_image),
            "box_short_side": describe(short_sides),
            "points_per_polygon": {str(k): v for k, v in sorted(points.items())},
            "transcription_length": describe([len(t) for _, s in samples for t, i in zip(s.texts, s.ignore_tags)
                                              if not i]),
            "image_width": describe([x.width for x in scans.values() if x.usable_size]),
            "image_height": describe([x.height for x in scans.values() if x.usable_size]),
        }
        return self.report(data, stats, scans, run)

    # --- pictures ---------------------------------------------------------------------------------------------
    def pictures(self, report: Report, out_dir: Path, plt) -> list[Path]:
        return [_montage(report, out_dir / "montage.png", plt), _histograms(report, out_dir / "box_size_hist.png", plt)]

    # --- command line -----------------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--min-text-size", type=int, default=8, help="det: the DB targets' min_text_size (8)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "DetLabelCheck":
        return cls(args.min_text_size)


def _label_signature(s: DetSample) -> str:
    return json.dumps([[t, np.round(p, 1).tolist()] for t, p in zip(s.texts, s.polys)], ensure_ascii=False)


def _montage(report: Report, path: Path, plt) -> Path | None:
    import cv2

    def draw(img, s):
        scale = min(1.0, 900 / max(img.shape[:2]))
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else img.copy()
        for pts, ign in zip(s.polys, s.ignore_tags):
            color = (0, 0, 255) if ign else (0, 200, 0)
            cv2.polylines(img, [np.round(pts * scale).astype(np.int32)], True, color, 2)
        return img, f"{Path(s.rel_path).name}: {len(s.polys)} boxes"

    return montage(pick_samples(report, 6), path, plt, cols=3, cell=(4.2, 3.2), dpi=80,
                   title="random training images (green: text, red: don't care)", draw=draw)


def _histograms(report: Report, path: Path, plt) -> Path:
    sides = [float(min(np.ptp(p[:, 0]), np.ptp(p[:, 1]))) for _, s in report.samples
             for p, ign in zip(s.polys, s.ignore_tags) if not ign]
    per_image = [len(s.polys) for _, s in report.samples]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    if sides:
        bins = np.logspace(0, np.log10(max(max(sides), 2)), 40)
        a.hist(np.maximum(sides, 1), bins=bins, color="#4a78b5")
        a.set_xscale("log")
    mts = report.options.get("min_text_size")
    if mts:
        a.axvline(mts, color="#c0392b", linestyle="--", label=f"min_text_size {mts}")
        a.legend(fontsize=8)
    a.set_xlabel("box short side (px, original image)")
    a.set_ylabel("boxes (not don't-care)")
    if per_image:
        b.hist(per_image, bins=min(40, max(per_image) + 1), color="#4a78b5")
    b.set_xlabel("boxes per image")
    b.set_ylabel("images")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
