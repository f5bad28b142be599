"""``wb data check textline_ori`` / ``doc_ori``: orientation label files -- class lists (``image<TAB>class``) and
the rec / det label files whose upright images are turned into every class (``workbench.data.orientation``).

It reports the format each file is read as, the samples per class, unknown class labels, unreadable images,
duplicates (a conflict: the same image with two classes) and train/val leaks, and draws a montage of training
samples as the model sees them (turned by their class's angle)."""

from __future__ import annotations

import argparse
import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from workbench.data.check.common import CheckRun, LabelCheck, Samples, describe, duplicate_findings, image_findings, \
    montage, pick_samples
from workbench.data.check.report import Report, SourceInfo
from workbench.data.findings import Finding
from workbench.data.orientation import (
    DOC_CLASSES, LABEL_FORMATS, TEXTLINE_CLASSES, OrientationClasses, read_orientation_labels, turn_clockwise,
)


@dataclass
class OrientationLabelCheck(LabelCheck):
    """``label_format``: how to read the files (``auto`` decides per file). Subclasses name the task's classes
    and which label files may be turned into samples (``derive``)."""

    label_format: str = "auto"
    formats: dict = field(default_factory=dict, repr=False)  # label file -> format it was read as (after check)

    kind: ClassVar[str] = "orientation"
    classes: ClassVar[OrientationClasses]
    derive: ClassVar[tuple[str, ...]] = ()
    option_names = ("label_format",)

    @classmethod
    def from_options(cls, charset=None, *, label_format: str = "auto") -> "OrientationLabelCheck":
        return cls(label_format)

    def options(self) -> dict:
        return {"label_format": self.label_format, "classes": self.classes.describe(),
                "derived_from": ", ".join(self.derive), "formats": dict(self.formats)}

    def read(self, train: list[Path], val: list[Path], root) -> Samples:
        out = Samples()
        for files, split in ((train, "train"), (val, "val")):
            for f in files:
                s, found, fmt = read_orientation_labels(f, self.classes, derive=self.derive,
                                                        label_format=self.label_format, root=root, task=self.kind)
                self.formats[str(f)] = fmt
                bad_lines = {x.line for x in found if x.severity == "error" and x.line is not None}
                info = SourceInfo(str(f), split, lines=len({x.line for x in s} | bad_lines))
                if info.lines == 0 and not any(x.code == "missing_label_file" for x in found):
                    found.append(Finding.make("no_samples", f, None, "the label file has no samples"))
                out.sources.append(info)
                out.per_file.append((info, s))
                out.samples += [(split, x) for x in s]
                out.findings += found
        return out

    def check(self, train: list[Path], val: list[Path], run: CheckRun) -> Report:
        data = self.read(train, val, run.root)
        scans = data.scan(run)
        first = {}
        for split, s in data.samples:  # one entry per label line (derived samples share their line and image)
            first.setdefault((s.file, s.line), (split, s))
        lines = list(first.values())
        data.findings += image_findings(lines, scans)
        labelled = [(split, s) for split, s in lines if not s.derived]
        data.findings += duplicate_findings(labelled, scans, lambda s: str(s.angle))
        per_class = collections.Counter((split, self.classes.names[self.classes.index_of(s.angle)])
                                        for split, s in data.samples)
        stats = {
            "label_files": {Path(f).name: fmt for f, fmt in self.formats.items()},
            "samples": len(data.samples),
            "label_lines": len(lines),
            "samples_per_class": {split: {c: per_class[(split, c)] for c in self.classes.names}
                                  for split in ("train", "val")},
            "image_width": describe([x.width for x in scans.values() if x.usable_size]),
            "image_height": describe([x.height for x in scans.values() if x.usable_size]),
        }
        return self.report(data, stats, scans, run)

    def report(self, data: Samples, stats: dict, scans: dict, run: CheckRun) -> Report:
        report = super().report(data, stats, scans, run)
        for info, samples in data.per_file:  # usable label lines, not derived samples
            blocked = {f.key for f in report.errors}
            info.usable = 0 if info.usable == 0 else len({s.line for s in samples if (s.file, s.line) not in blocked})
        return report

    def pictures(self, report: Report, out_dir: Path, plt) -> list[Path]:
        picks = pick_samples(report, 16)

        def draw(image, s):
            name = self.classes.names[self.classes.index_of(s.angle)]
            return turn_clockwise(image, s.angle), f"{name}{' (turned)' if s.derived else ''}"

        return [montage(picks, out_dir / "montage.png", plt, cols=4, cell=(3.0, 2.0), dpi=80,
                        title=f"{len(picks)} random training samples as the model sees them", draw=draw)]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--label-format", choices=LABEL_FORMATS, default="auto",
                            help="orientation: read the files as class lists, rec or det files (auto: per file)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "OrientationLabelCheck":
        return cls(args.label_format)


@dataclass
class TextlineOriLabelCheck(OrientationLabelCheck):
    kind: ClassVar[str] = "textline_ori"
    classes: ClassVar[OrientationClasses] = TEXTLINE_CLASSES
    derive: ClassVar[tuple[str, ...]] = ("rec",)


@dataclass
class DocOriLabelCheck(OrientationLabelCheck):
    kind: ClassVar[str] = "doc_ori"
    classes: ClassVar[OrientationClasses] = DOC_CLASSES
    derive: ClassVar[tuple[str, ...]] = ("det",)
