"""What every kind of label check shares: how it runs (:class:`CheckRun`), the :class:`LabelCheck` interface, and
the findings that do not depend on the label format (unreadable images, duplicates, train/val leaks)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Optional

import numpy as np

from workbench.data.check.report import Report, SourceInfo, clip
from workbench.data.check.scan import ImageScan, scan_images
from workbench.data.findings import DataPolicy, Finding


@dataclass
class CheckRun:
    """How a check runs, whatever the label format: the data policy training will use, where relative image
    paths start, and how images are read (``decode_images=False`` reads headers only: faster, cannot see corrupt
    pixel data)."""

    policy: DataPolicy = field(default_factory=DataPolicy)
    root: Optional[str | Path] = None
    decode_images: bool = True
    workers: int = 2
    progress: Optional[bool] = None
    examples: int = 5

    def options(self) -> dict:
        return {"root": str(self.root) if self.root else None, "decode_images": self.decode_images,
                "workers": self.workers}


@dataclass
class Samples:
    """The label files of one check, read: samples (with their split), findings, per-file facts."""

    samples: list = field(default_factory=list)  # (split, sample)
    findings: list[Finding] = field(default_factory=list)
    sources: list[SourceInfo] = field(default_factory=list)
    per_file: list = field(default_factory=list)  # (SourceInfo, samples of that file)

    def scan(self, run: CheckRun) -> dict[str, ImageScan]:
        return scan_images([str(s.image_path) for _, s in self.samples], decode=run.decode_images,
                           workers=run.workers, progress=run.progress)


class LabelCheck:
    """One kind of label file, as ``wb data check <kind>`` and the trainer's pre-flight check see it.

    A subclass holds the options of its kind (dictionary, limits) as fields and implements :meth:`check`; it may
    draw pictures and add its own command-line options. A task names its check in the task registry
    (``workbench.tasks.registry``)."""

    kind: ClassVar[str] = "?"  # Report.kind and the word after `wb data check`
    reader: ClassVar[Callable]  # label file -> (samples, findings), e.g. workbench.data.labels.read_rec_labels
    option_names: ClassVar[tuple[str, ...]] = ()  # the keyword options of from_options

    @classmethod
    def from_options(cls, charset=None, **options) -> "LabelCheck":
        """Built from plain options (``check_sources("<kind>", ..., **options)``); ``charset``: a dictionary for
        kinds that check text against one."""
        return cls(**options)

    def options(self) -> dict:
        """What the report records about this check's settings."""
        return {}

    def check(self, train: list[Path], val: list[Path], run: CheckRun) -> Report:
        raise NotImplementedError

    def pictures(self, report: Report, out_dir: Path, plt) -> list[Path]:
        """Pictures for people (montage, histograms); ``plt`` is matplotlib.pyplot on the Agg backend."""
        return []

    # --- command line -----------------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Options of ``wb data check`` that only this kind uses."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "LabelCheck":
        return cls()

    # --- shared steps -----------------------------------------------------------------------------------------
    def read(self, train: list[Path], val: list[Path], root) -> Samples:
        out = Samples()
        for files, split in ((train, "train"), (val, "val")):
            for f in files:
                s, found = type(self).reader(f, root=root)
                bad_lines = {x.line for x in found if x.severity == "error" and x.line is not None}
                info = SourceInfo(str(f), split, lines=len(s) + len(bad_lines))
                if info.lines == 0 and not any(x.code == "missing_label_file" for x in found):
                    found.append(Finding.make("no_samples", f, None, "the label file has no samples"))
                out.sources.append(info)
                out.per_file.append((info, s))
                out.samples += [(split, x) for x in s]
                out.findings += found
        return out

    def report(self, data: Samples, stats: dict, scans: dict, run: CheckRun) -> Report:
        """The report of ``data``, with each file's usable samples counted under ``run.policy``."""
        report = Report(self.kind, run.policy, data.sources, data.findings, stats, {**run.options(), **self.options()},
                        examples=run.examples, samples=data.samples, images=scans, check=self)
        blocked = {f.key for f in report.errors}
        blocked_files = {f.file for f in report.errors if f.line is None}
        for info, samples in data.per_file:
            if info.file in blocked_files:
                info.usable = 0
            else:
                info.usable = sum(1 for s in samples if (s.file, s.line) not in blocked)
        return report


def run_label_check(check: LabelCheck, train: list[Path], val: list[Path], run: CheckRun) -> Report:
    t0 = time.perf_counter()
    report = check.check(train, val, run)
    report.wall_time_s = time.perf_counter() - t0
    return report


def image_findings(samples: list[tuple[str, object]], scans: dict[str, ImageScan]) -> list[Finding]:
    out = []
    for _, s in samples:
        scan = scans[str(s.image_path)]
        if scan.problem:
            out.append(Finding.make(scan.problem, s.file, s.line, f"{s.image_path}: {scan.detail}"))
        if scan.exif_orientation:
            out.append(Finding.make("exif_orientation", s.file, s.line,
                                    f"{s.image_path}: EXIF orientation {scan.exif_orientation}"))
    return out


def duplicate_findings(samples: list[tuple[str, object]], scans: dict[str, ImageScan], label_of) -> list[Finding]:
    """duplicate_image / conflicting_labels within a split, train_val_leak across."""
    out = []
    first: dict[tuple[str, str], object] = {}
    train_by_digest: dict[str, object] = {}
    for split, s in samples:
        digest = scans[str(s.image_path)].digest
        if digest is None:
            continue
        if split == "train":
            train_by_digest.setdefault(digest, s)
        prev = first.get((split, digest))
        if prev is None:
            first[(split, digest)] = s
            continue
        if label_of(prev) != label_of(s):
            out.append(Finding.make("conflicting_labels", s.file, s.line,
                                    f"{s.rel_path}: same image as {prev.file}:{prev.line} ({prev.rel_path}) with "
                                    f"another label: {clip(label_of(s), 40)!r} vs {clip(label_of(prev), 40)!r}"))
        else:
            out.append(Finding.make("duplicate_image", s.file, s.line,
                                    f"{s.rel_path}: same image as {prev.file}:{prev.line} ({prev.rel_path})"))
    for split, s in samples:
        if split != "val":
            continue
        digest = scans[str(s.image_path)].digest
        twin = train_by_digest.get(digest) if digest else None
        if twin is not None:
            out.append(Finding.make("train_val_leak", s.file, s.line,
                                    f"{s.rel_path}: also in the training set at {twin.file}:{twin.line}"))
    leaked = {(f.file, f.line) for f in out if f.code == "train_val_leak"}
    return out + document_leak_findings(samples, already=leaked)


def document_leak_findings(samples: list[tuple[str, object]], already=frozenset()) -> list[Finding]:
    """document_leak: validation images whose source document (``data.split.group_id``) has training images
    (``already``: (file, line) of val samples reported as the very same image, not reported twice)."""
    from workbench.data.split import group_id

    in_train: dict[str, list] = {}
    for split, s in samples:
        if split == "train":
            in_train.setdefault(group_id(s.rel_path), []).append(s)
    out = []
    for split, s in samples:
        twins = in_train.get(group_id(s.rel_path)) if split == "val" and (s.file, s.line) not in already else None
        if twins:
            out.append(Finding.make("document_leak", s.file, s.line,
                                    f"{s.rel_path}: document {group_id(s.rel_path)!r} has {len(twins)} training "
                                    f"image(s), e.g. {twins[0].file}:{twins[0].line} ({twins[0].rel_path})"))
    return out


def describe(values) -> dict:
    if len(values) == 0:
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64)
    q = np.percentile(a, [1, 50, 99])
    return {"n": int(a.size), "min": _num(a.min()), "p1": _num(q[0]), "median": _num(q[1]), "p99": _num(q[2]),
            "max": _num(a.max()), "mean": _num(a.mean())}


def _num(x: float):
    x = float(x)
    return int(x) if x.is_integer() else round(x, 3)


def pick_samples(report: Report, n: int) -> list:
    """Up to ``n`` readable training samples, drawn reproducibly (for montages)."""
    ok = [s for split, s in report.samples
          if split == "train" and report.images.get(str(s.image_path)) and report.images[str(s.image_path)].usable_size
          and not report.images[str(s.image_path)].problem]
    if not ok:
        return []
    idx = np.random.default_rng(0).choice(len(ok), size=min(n, len(ok)), replace=False)
    return [ok[i] for i in sorted(idx)]


def montage(picks: list, path: Path, plt, *, cols: int, cell: tuple[float, float], dpi: int, title: str,
            draw) -> Path | None:
    """A grid of ``picks``; ``draw(image, sample) -> (image, caption)`` decorates each cell."""
    import cv2

    if not picks:
        return None
    rows = int(np.ceil(len(picks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell[0], rows * cell[1]), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, s in zip(axes.ravel(), picks):
        img = cv2.imread(str(s.image_path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        img, caption = draw(img, s)
        ax.imshow(img[:, :, ::-1])
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
