"""``wb data check rec``: recognition label files (``image<TAB>text``) against the model's dictionary and limits."""

from __future__ import annotations

import argparse
import collections
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.data.charset import Charset
from workbench.data.check.common import CheckRun, LabelCheck, describe, duplicate_findings, image_findings, montage, \
    pick_samples
from workbench.data.check.report import Report, clip
from workbench.data.findings import Finding
from workbench.data.labels import read_rec_labels, validate_rec_text
from workbench.errors import ConfigError

# Thresholds of the heuristic findings (documented in the code table's descriptions).
MAX_ASPECT = 20.0  # w/h above this: squeezed more than 3x into 48x320
MIN_ASPECT_MULTICHAR = 0.5  # w/h below this with >= 2 characters: vertical or rotated text
MIN_CASED_LABELS = 10  # all_upper_case / all_lower_case need at least this many labels with letters


def load_charset(charset, use_space_char: bool = True) -> Charset:
    if isinstance(charset, Charset):
        return charset
    if charset is None:
        raise ConfigError("checking rec labels needs the model's dictionary (--dict)")
    return Charset.from_file(charset, use_space_char=use_space_char)


@dataclass
class RecLabelCheck(LabelCheck):
    """``charset``: the model's dictionary (a :class:`Charset` or a path). ``nrtr``: the model trains the NRTR
    branch (labels may then have ``max_text_length - 2`` characters)."""

    charset: Charset
    max_text_length: int = 25
    nrtr: bool = True
    max_aspect: float = MAX_ASPECT  # crops wider than this (w/h) are squeezed by the training resize

    kind = "rec"
    reader = staticmethod(read_rec_labels)
    option_names = ("max_text_length", "nrtr", "use_space_char")

    @classmethod
    def from_options(cls, charset=None, *, max_text_length: int = 25, nrtr: bool = True,
                     use_space_char: bool = True) -> "RecLabelCheck":
        return cls(load_charset(charset, use_space_char), max_text_length, nrtr)

    def options(self) -> dict:
        cs = self.charset
        return {"dict": cs.source or "<in memory>", "use_space_char": cs.use_space_char,
                "max_text_length": self.max_text_length, "nrtr": self.nrtr,
                "max_chars": Charset.max_chars(self.max_text_length, self.nrtr)}

    def check(self, train: list[Path], val: list[Path], run: CheckRun) -> Report:
        charset = self.charset
        data = self.read(train, val, run.root)
        samples, findings = data.samples, data.findings
        findings += charset.findings
        missing_counter: collections.Counter = collections.Counter()
        missing_samples = 0
        for _, s in samples:
            findings += validate_rec_text(s, charset, self.max_text_length, nrtr=self.nrtr)
            miss = charset.missing_chars(s.text)
            if miss:
                missing_samples += 1
                missing_counter.update(ch for ch in s.text if ch in miss)
        scans = data.scan(run)
        findings += image_findings(samples, scans)
        for _, s in samples:
            findings += _aspect_findings(s, scans[str(s.image_path)], self.max_aspect)
        findings += duplicate_findings(samples, scans, lambda s: s.text)
        for info, file_samples in data.per_file:
            findings += case_findings(info.file, [s.text for s in file_samples])
        total = max(sum(i.lines for i in data.sources), 1)
        lengths = [len(s.text) for _, s in samples]
        sizes = [(scans[str(s.image_path)].width, scans[str(s.image_path)].height) for _, s in samples
                 if scans[str(s.image_path)].usable_size]
        stats = {
            "dict_size": len(charset),
            "num_ctc_classes": charset.num_ctc_classes,
            "dict_sha256": charset.sha256,
            "missing_chars": {c: n for c, n in missing_counter.most_common()},
            "missing_chars_samples": missing_samples,
            "missing_chars_share": round(missing_samples / total, 4),
            "label_length": describe(lengths),
            "label_length_counts": dict(sorted(collections.Counter(lengths).items())),
            "image_height": describe([h for _, h in sizes]),
            "image_width": describe([w for w, _ in sizes]),
            "aspect_ratio": describe([w / h for w, h in sizes]),
            "distinct_chars": len({c for _, s in samples for c in s.text}),
            "images": len(scans),
        }
        return self.report(data, stats, scans, run)

    # --- pictures ---------------------------------------------------------------------------------------------
    def pictures(self, report: Report, out_dir: Path, plt) -> list[Path]:
        picks = pick_samples(report, 24)
        return [montage(picks, out_dir / "montage.png", plt, cols=4, cell=(3.2, 1.1), dpi=90,
                        title=f"{len(picks)} random training crops", draw=lambda img, s: (img, clip(s.text, 30))),
                _label_length_histogram(report, out_dir / "label_length_hist.png", plt),
                _size_histograms(report, out_dir / "image_size_hist.png", plt)]

    # --- command line -----------------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dict", dest="dict_path", type=Path,
                            help="rec: the model's character dictionary (required)")
        parser.add_argument("--no-space-char", action="store_true", help="rec: the model has no space class")
        parser.add_argument("--max-text-length", type=int, default=25, help="rec: the model's max_text_length (25)")
        parser.add_argument("--ctc-only", action="store_true",
                            help="rec: the model has no NRTR branch (labels may then have max_text_length "
                                 "characters, not max_text_length - 2)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RecLabelCheck":
        if args.dict_path is None:
            raise ConfigError("rec labels are checked against the model's dictionary: pass --dict FILE")
        return cls.from_options(args.dict_path, max_text_length=args.max_text_length, nrtr=not args.ctc_only,
                                use_space_char=not args.no_space_char)


def _aspect_findings(s, scan, max_aspect: float = MAX_ASPECT) -> list[Finding]:
    if not scan.usable_size:
        return []
    aspect = scan.width / scan.height
    if aspect > max_aspect:
        return [Finding.make("extreme_aspect_ratio", s.file, s.line,
                             f"{s.rel_path}: {scan.width}x{scan.height} px (w/h {aspect:.1f} > {max_aspect:g}) for "
                             f"{clip(s.text, 40)!r}")]
    if aspect < MIN_ASPECT_MULTICHAR and len(s.text) >= 2:
        return [Finding.make("extreme_aspect_ratio", s.file, s.line,
                             f"{s.rel_path}: {scan.width}x{scan.height} px (w/h {aspect:.2f} < "
                             f"{MIN_ASPECT_MULTICHAR:g}) for {len(s.text)} characters {s.text!r}: "
                             f"vertical or rotated text?")]
    return []


def case_findings(file: str, texts: list[str]) -> list[Finding]:
    cased = [t for t in texts if any(c.isalpha() and c.lower() != c.upper() for c in t)]
    if len(cased) < MIN_CASED_LABELS:
        return []
    has_lower = sum(1 for t in cased if any(c.islower() for c in t))
    has_upper = sum(1 for t in cased if any(c.isupper() for c in t))
    if has_lower == 0:
        return [Finding.make("all_upper_case", file, None,
                             f"none of the {len(cased):,} labels with letters has a lower-case letter")]
    if has_upper == 0:
        return [Finding.make("all_lower_case", file, None,
                             f"none of the {len(cased):,} labels with letters has an upper-case letter")]
    return []


def _label_length_histogram(report: Report, path: Path, plt) -> Path:
    lengths = [len(s.text) for _, s in report.samples]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if lengths:
        ax.hist(lengths, bins=np.arange(0, max(lengths) + 2) - 0.5, color="#4a78b5")
    limit = report.options.get("max_chars")
    if limit:
        ax.axvline(limit + 0.5, color="#c0392b", linestyle="--", label=f"max {limit} characters")
        ax.legend(fontsize=8)
    ax.set_xlabel("label length (characters)")
    ax.set_ylabel("samples")
    ax.set_title("label lengths", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _size_histograms(report: Report, path: Path, plt) -> Path:
    scans = [report.images[str(s.image_path)] for _, s in report.samples]
    scans = [x for x in scans if x.usable_size]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    if scans:
        a.hist([x.height for x in scans], bins=40, color="#4a78b5")
        b.hist([x.width / x.height for x in scans], bins=40, color="#4a78b5")
    a.axvline(48, color="#c0392b", linestyle="--", label="model input height 48")
    a.legend(fontsize=8)
    b.axvline(320 / 48, color="#c0392b", linestyle="--", label="48x320 (wider gets squeezed)")
    b.legend(fontsize=8)
    a.set_xlabel("crop height (px)")
    b.set_xlabel("aspect ratio (w/h)")
    a.set_ylabel("samples")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
