"""``wb data check``: everything that would make training fail or go quietly wrong, found before training.

::

    wb data check rec FILE... --dict D [--max-text-length 25] [--val FILE...] [--out DIR] [--write-clean]
    wb data check det FILE... [--val FILE...] [--min-text-size 8]
    wb data check --list-codes

It prints a short summary, writes ``report.json`` (findings grouped by code: severity, count, samples affected,
the first file:line examples, a fix hint), ``findings.jsonl`` (every finding), pictures (sample montage, label
length and size histograms) and, for rec, ``missing_chars.txt`` (a dictionary extension for the characters the
dictionary lacks). With ``--write-clean`` each label file gets a cleaned copy next to it (``label.clean.txt``:
lines with errors removed, LF line endings, no BOM); an existing file is never overwritten.

Exit code: 0 = the data would train under the chosen policy; 1 = it would not (``strict``: any error; ``skip``:
a label file would be left without samples); 2 = bad command line / unreadable dictionary.

The trainer runs the same check first: :func:`check_sources` returns a :class:`Report` without writing anything.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np

from workbench.errors import ConfigError, DataError, WorkbenchError
from workbench.data.charset import Charset
from workbench.data.findings import CODES, DataPolicy, Finding, code_info
from workbench.data.images import check_image_bytes, is_truncated, sniff_format, too_large
from workbench.data.labels import (
    DetSample, read_det_labels, read_rec_labels, validate_det_geometry, validate_rec_text,
)

# Thresholds of the heuristic findings (documented in the code table's descriptions).
MAX_ASPECT = 20.0  # w/h above this: squeezed more than 3x into 48x320
MIN_ASPECT_MULTICHAR = 0.5  # w/h below this with >= 2 characters: vertical or rotated text
MIN_CASED_LABELS = 10  # all_upper_case / all_lower_case need at least this many labels with letters
PROGRESS_MIN_ITEMS = 500


# ---------------------------------------------------------------------------------------------------------------
# image scan
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class ImageScan:
    """What the check learned about one image file."""

    path: str
    exists: bool = False
    format: str = "unknown"
    width: int = 0
    height: int = 0
    digest: str | None = None
    problem: str | None = None  # a code: missing_image / corrupt_image / truncated_image
    detail: str = ""
    exif_orientation: int | None = None

    @property
    def usable_size(self) -> bool:
        return self.width > 0 and self.height > 0


def _scan_one(path: str, decode: bool) -> ImageScan:
    scan = ImageScan(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        scan.problem, scan.detail = "missing_image", "no such file"
        return scan
    except IsADirectoryError:
        scan.problem, scan.detail = "missing_image", "a directory, not a file"
        return scan
    except OSError as e:
        scan.exists = True
        scan.problem, scan.detail = "corrupt_image", f"cannot read the file: {e.strerror or e}"
        return scan
    scan.exists = True
    scan.digest = hashlib.sha1(data).hexdigest()
    scan.format = sniff_format(data[:16])
    if b"Exif" in data[:65536] and scan.format in ("jpeg", "tiff", "webp", "png"):
        scan.exif_orientation = _exif_orientation(path)
    if decode:
        img, findings = check_image_bytes(data, path, None, allow_truncated=True)
        for f in findings:  # truncated first (if any), then corrupt
            if scan.problem is None or f.code == "corrupt_image":
                scan.problem, scan.detail = f.code, f.message
        if img is not None:
            scan.height, scan.width = img.shape[:2]
    else:
        if is_truncated(scan.format, data):
            scan.problem, scan.detail = "truncated_image", f"the {scan.format.upper()} file ends without its end marker"
        reason = too_large(data)
        if reason is not None:
            scan.problem, scan.detail = "image_too_large", reason
            return scan
        try:
            from PIL import Image
            import io

            with Image.open(io.BytesIO(data)) as im:
                scan.width, scan.height = im.size
            if scan.exif_orientation in (5, 6, 7, 8):
                scan.width, scan.height = scan.height, scan.width
        except Exception as e:  # noqa: BLE001  (any PIL failure means: no readable header)
            scan.problem, scan.detail = "corrupt_image", f"no readable image header ({e})"
    return scan


def _exif_orientation(path: str) -> int | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            value = im.getexif().get(0x0112)
    except Exception:  # noqa: BLE001  (a broken EXIF block is not our finding to make)
        return None
    return int(value) if value and int(value) != 1 else None


def scan_images(paths: Sequence[str], *, decode: bool = True, workers: int = 2,
                progress: bool | None = None) -> dict[str, ImageScan]:
    """Read, hash and (optionally) decode every image, ``workers`` threads at a time (OpenCV and hashlib release
    the GIL). ``progress``: a tqdm bar on stderr (None: only for large sets on a terminal)."""
    from tqdm import tqdm

    unique = list(dict.fromkeys(paths))
    disable = (not progress) if progress is not None else (len(unique) < PROGRESS_MIN_ITEMS or None)
    out: dict[str, ImageScan] = {}
    with tqdm(total=len(unique), desc="images", unit="img", disable=disable, leave=False) as bar:
        if workers <= 1:
            for p in unique:
                out[p] = _scan_one(p, decode)
                bar.update()
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                for scan in pool.map(lambda p: _scan_one(p, decode), unique, chunksize=16):
                    out[scan.path] = scan
                    bar.update()
    return out


# ---------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class SourceInfo:
    file: str
    split: str  # "train" | "val"
    lines: int = 0  # sample lines (each non-blank line that should be a sample)
    usable: int = 0  # samples without (effective) errors

    def to_dict(self) -> dict:
        return {"file": self.file, "split": self.split, "lines": self.lines, "usable": self.usable}


@dataclass
class FindingGroup:
    code: str
    severity: str
    count: int
    samples: int
    share: float | None
    examples: list[str]
    hint: str | None
    description: str

    def to_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass
class Report:
    """The outcome of a data check. ``ok`` says whether training would start under ``policy``."""

    kind: str
    policy: DataPolicy
    sources: list[SourceInfo]
    findings: list[Finding]
    stats: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    wall_time_s: float = 0.0
    examples: int = 5
    # Not serialised: what the pictures need.
    samples: list = field(default_factory=list, repr=False)
    images: dict = field(default_factory=dict, repr=False)
    out_dir: Path | None = None
    written: list[Path] = field(default_factory=list)

    # ---- outcome -----------------------------------------------------------------------------------------------
    def severity(self, finding: Finding) -> str:
        return self.policy.severity(finding)

    @property
    def errors(self) -> list[Finding]:
        return self.policy.blocking(self.findings)

    @property
    def total_lines(self) -> int:
        return sum(s.lines for s in self.sources)

    @property
    def total_usable(self) -> int:
        return sum(s.usable for s in self.sources)

    @property
    def ok(self) -> bool:
        """Would training start? strict: no error at all. skip: every label file keeps at least one sample."""
        if self.policy.mode == "strict":
            return not self.errors
        return all(s.usable > 0 for s in self.sources)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def raise_if_failed(self) -> None:
        """For the trainer: raise :class:`DataError` listing the blocking findings when training would not start."""
        if self.ok:
            return
        if self.policy.mode == "strict":
            raise DataError(f"the {self.kind} data would fail training under the strict data policy "
                            f"(see `wb data check`)", self.errors)
        empty = [s.file for s in self.sources if s.usable == 0]
        raise DataError(f"no usable {self.kind} sample left in {', '.join(empty)} after excluding the ones with "
                        f"errors", [f for f in self.errors if f.file in empty])

    def counts(self) -> dict[str, int]:
        return dict(collections.Counter(f.code for f in self.findings))

    def groups(self) -> list[FindingGroup]:
        """Findings grouped by code, errors first, then by count."""
        by_code: dict[str, list[Finding]] = collections.defaultdict(list)
        for f in self.findings:
            by_code[f.code].append(f)
        total = max(self.total_lines, 1)
        groups = []
        for code, items in by_code.items():
            info = code_info(code)
            keys = {f.key for f in items if f.line is not None and f.file in self._label_files}
            hint = next((f.hint for f in items if f.hint), None) or info.hint
            groups.append(FindingGroup(
                code=code, severity=self.severity(items[0]), count=len(items), samples=len(keys),
                share=round(len(keys) / total, 4) if keys else None,
                examples=[str(f) for f in items[: self.examples]], hint=hint, description=info.description))
        order = {s: i for i, s in enumerate(("error", "warning", "info"))}
        return sorted(groups, key=lambda g: (order[g.severity], -g.count, g.code))

    @property
    def _label_files(self) -> set[str]:
        return {s.file for s in self.sources}

    def to_dict(self) -> dict:
        sev = collections.Counter(self.severity(f) for f in self.findings)
        return {
            "kind": self.kind,
            "result": "pass" if self.ok else "fail",
            "exit_code": self.exit_code,
            "policy": {"mode": self.policy.mode, "accept": sorted(self.policy.accept)},
            "options": self.options,
            "sources": [s.to_dict() for s in self.sources],
            "totals": {"lines": self.total_lines, "usable": self.total_usable, "errors": sev.get("error", 0),
                       "warnings": sev.get("warning", 0), "info": sev.get("info", 0)},
            "findings": [g.to_dict() for g in self.groups()],
            "stats": self.stats,
            "wall_time_s": round(self.wall_time_s, 3),
        }

    def summary(self) -> str:
        """The short text ``wb data check`` prints."""
        train = [s for s in self.sources if s.split == "train"]
        val = [s for s in self.sources if s.split == "val"]
        head = (f"wb data check {self.kind}: {len(train)} train file(s), {sum(s.lines for s in train):,} samples"
                + (f"; {len(val)} val file(s), {sum(s.lines for s in val):,} samples" if val else ""))
        if self.options.get("dict"):
            head += f"; dictionary {self.options['dict']} ({self.stats.get('dict_size', 0):,} chars)"
        lines = [head]
        groups = self.groups()
        if groups:
            width = max(len(g.code) for g in groups)
            for g in groups:
                smp = f"{g.samples:>6,} samples" if g.samples else " " * 14
                lines.append(f"  {g.severity.upper():7s} {g.code:{width}s} {g.count:>6,}  {smp}  e.g. "
                             f"{_clip(g.examples[0], 110)}")
        else:
            lines.append("  no findings")
        missing = self.stats.get("missing_chars")
        if missing:
            shown = ", ".join(f"{c!r}×{n}" for c, n in list(missing.items())[:12])
            more = f" (+{len(missing) - 12} more)" if len(missing) > 12 else ""
            share = self.stats.get("missing_chars_share", 0.0)
            lines.append(f"  characters not in the dictionary: {shown}{more}; "
                         f"{self.stats.get('missing_chars_samples', 0):,} samples ({share:.1%})")
        if self.out_dir is not None:
            names = ", ".join(p.name for p in self.written if p.parent == self.out_dir)
            lines.append(f"report: {self.out_dir} ({names})")
        for p in self.written:
            if p.parent != self.out_dir:
                lines.append(f"cleaned label file: {p}")
        verdict = "PASS" if self.ok else "FAIL"
        n_err = len({f.key for f in self.errors})
        why = (f"{self.total_usable:,} of {self.total_lines:,} samples usable" if self.ok or self.policy.mode == "skip"
               else f"{n_err:,} sample(s)/file(s) with errors would stop training")
        lines.append(f"{verdict} (policy {self.policy.mode}): {why} [{self.wall_time_s:.1f} s]")
        if not self.ok and self.policy.mode == "strict":
            lines.append("  fix the errors above, or train with the data policy 'skip' (excluded samples are counted,"
                         " never replaced)")
        return "\n".join(lines)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# ---------------------------------------------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------------------------------------------
def _as_list(files) -> list[Path]:
    if files is None:
        return []
    if isinstance(files, (str, Path)):
        return [Path(files)]
    return [Path(f) for f in files]


def _load_charset(charset, use_space_char: bool) -> Charset:
    if isinstance(charset, Charset):
        return charset
    if charset is None:
        raise ConfigError("checking rec labels needs the model's dictionary (--dict)")
    return Charset.from_file(charset, use_space_char=use_space_char)


def check_sources(kind: str, train_files, val_files=(), charset: Charset | str | Path | None = None, *,
                  max_text_length: int = 25, nrtr: bool = True, use_space_char: bool = True,
                  min_text_size: int = 8, policy: DataPolicy | None = None, root=None, decode_images: bool = True,
                  workers: int = 2, progress: bool | None = None, examples: int = 5) -> Report:
    """Check rec or det label files (and their images) the way training will use them; write nothing.

    ``charset`` (rec): a :class:`Charset` or a dictionary path. ``nrtr``: the model trains the NRTR branch
    (labels may have ``max_text_length - 2`` characters). ``decode_images=False`` reads only the image headers
    (faster; cannot see corrupt pixel data)."""
    if kind not in ("rec", "det"):
        raise ConfigError(f"data check kind must be 'rec' or 'det', got {kind!r}")
    t0 = time.perf_counter()
    policy = policy or DataPolicy()
    train, val = _as_list(train_files), _as_list(val_files)
    if not train:
        raise ConfigError("no training label file given")
    options = {"root": str(root) if root else None, "decode_images": decode_images, "workers": workers}
    if kind == "rec":
        cs = _load_charset(charset, use_space_char)
        options.update(dict=cs.source or "<in memory>", use_space_char=cs.use_space_char,
                       max_text_length=max_text_length, nrtr=nrtr, max_chars=Charset.max_chars(max_text_length, nrtr))
        report = _check_rec(train, val, cs, max_text_length, nrtr, policy, root, decode_images, workers, progress,
                            options, examples)
    else:
        options.update(min_text_size=min_text_size)
        report = _check_det(train, val, min_text_size, policy, root, decode_images, workers, progress, options,
                            examples)
    report.wall_time_s = time.perf_counter() - t0
    return report


def _read_all(files: list[Path], split: str, reader, root) -> tuple[list, list[Finding], list[SourceInfo], list]:
    samples, findings, sources, per_file = [], [], [], []
    for f in files:
        s, found = reader(f, root=root)
        bad_lines = {x.line for x in found if x.severity == "error" and x.line is not None}
        info = SourceInfo(str(f), split, lines=len(s) + len(bad_lines))
        if info.lines == 0 and not any(x.code == "missing_label_file" for x in found):
            found.append(Finding.make("no_samples", f, None, "the label file has no samples"))
        sources.append(info)
        per_file.append((info, s))
        samples += [(split, x) for x in s]
        findings += found
    return samples, findings, sources, per_file


def _image_findings(samples: list[tuple[str, object]], scans: dict[str, ImageScan]) -> list[Finding]:
    out = []
    for _, s in samples:
        scan = scans[str(s.image_path)]
        if scan.problem:
            out.append(Finding.make(scan.problem, s.file, s.line, f"{s.image_path}: {scan.detail}"))
        if scan.exif_orientation:
            out.append(Finding.make("exif_orientation", s.file, s.line,
                                    f"{s.image_path}: EXIF orientation {scan.exif_orientation}"))
    return out


def _duplicate_findings(samples: list[tuple[str, object]], scans: dict[str, ImageScan], label_of) -> list[Finding]:
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
                                    f"another label: {_clip(label_of(s), 40)!r} vs {_clip(label_of(prev), 40)!r}"))
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
    return out


def _finish(report: Report, per_file) -> Report:
    blocked = {f.key for f in report.errors}
    blocked_files = {f.file for f in report.errors if f.line is None}
    for info, samples in per_file:
        if info.file in blocked_files:
            info.usable = 0
        else:
            info.usable = sum(1 for s in samples if (s.file, s.line) not in blocked)
    return report


def _check_rec(train, val, charset, max_text_length, nrtr, policy, root, decode, workers, progress, options,
               examples) -> Report:
    samples, findings, sources, per_file = [], [], [], []
    for files, split in ((train, "train"), (val, "val")):
        s, f, src, pf = _read_all(files, split, read_rec_labels, root)
        samples += s
        findings += f
        sources += src
        per_file += pf
    findings += charset.findings
    missing_counter: collections.Counter = collections.Counter()
    missing_samples = 0
    for _, s in samples:
        found = validate_rec_text(s, charset, max_text_length, nrtr=nrtr)
        findings += found
        miss = charset.missing_chars(s.text)
        if miss:
            missing_samples += 1
            missing_counter.update(ch for ch in s.text if ch in miss)
    scans = scan_images([str(s.image_path) for _, s in samples], decode=decode, workers=workers, progress=progress)
    findings += _image_findings(samples, scans)
    for _, s in samples:
        scan = scans[str(s.image_path)]
        if scan.usable_size:
            aspect = scan.width / scan.height
            if aspect > MAX_ASPECT:
                findings.append(Finding.make("extreme_aspect_ratio", s.file, s.line,
                                             f"{s.rel_path}: {scan.width}x{scan.height} px (w/h {aspect:.1f} > "
                                             f"{MAX_ASPECT:g}) for {_clip(s.text, 40)!r}"))
            elif aspect < MIN_ASPECT_MULTICHAR and len(s.text) >= 2:
                findings.append(Finding.make("extreme_aspect_ratio", s.file, s.line,
                                             f"{s.rel_path}: {scan.width}x{scan.height} px (w/h {aspect:.2f} < "
                                             f"{MIN_ASPECT_MULTICHAR:g}) for {len(s.text)} characters {s.text!r}: "
                                             f"vertical or rotated text?"))
    findings += _duplicate_findings(samples, scans, lambda s: s.text)
    for info, file_samples in per_file:
        findings += _case_findings(info.file, [s.text for s in file_samples])
    total = max(sum(i.lines for i in sources), 1)
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
        "label_length": _describe(lengths),
        "label_length_counts": dict(sorted(collections.Counter(lengths).items())),
        "image_height": _describe([h for _, h in sizes]),
        "image_width": _describe([w for w, _ in sizes]),
        "aspect_ratio": _describe([w / h for w, h in sizes]),
        "distinct_chars": len({c for _, s in samples for c in s.text}),
        "images": len(scans),
    }
    report = Report("rec", policy, sources, findings, stats, options, examples=examples, samples=samples,
                    images=scans)
    return _finish(report, per_file)


def _case_findings(file: str, texts: list[str]) -> list[Finding]:
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


def _check_det(train, val, min_text_size, policy, root, decode, workers, progress, options, examples) -> Report:
    samples, findings, sources, per_file = [], [], [], []
    for files, split in ((train, "train"), (val, "val")):
        s, f, src, pf = _read_all(files, split, read_det_labels, root)
        samples += s
        findings += f
        sources += src
        per_file += pf
    scans = scan_images([str(s.image_path) for _, s in samples], decode=decode, workers=workers, progress=progress)
    findings += _image_findings(samples, scans)
    for _, s in samples:
        scan = scans[str(s.image_path)]
        if scan.usable_size:
            findings += validate_det_geometry(s, scan.width, scan.height, min_text_size)
    findings += _duplicate_findings(samples, scans, _det_label_signature)
    boxes_per_image = [len(s.polys) for _, s in samples]
    short_sides = [float(min(np.ptp(p[:, 0]), np.ptp(p[:, 1]))) for _, s in samples
                   for p, ign in zip(s.polys, s.ignore_tags) if not ign]
    points = collections.Counter(len(p) for _, s in samples for p in s.polys)
    stats = {
        "images": len(scans),
        "boxes": int(sum(boxes_per_image)),
        "ignored_boxes": int(sum(sum(s.ignore_tags) for _, s in samples)),
        "boxes_per_image": _describe(boxes_per_image),
        "box_short_side": _describe(short_sides),
        "points_per_polygon": {str(k): v for k, v in sorted(points.items())},
        "transcription_length": _describe([len(t) for _, s in samples for t, i in zip(s.texts, s.ignore_tags)
                                           if not i]),
        "image_width": _describe([x.width for x in scans.values() if x.usable_size]),
        "image_height": _describe([x.height for x in scans.values() if x.usable_size]),
    }
    report = Report("det", policy, sources, findings, stats, options, examples=examples, samples=samples,
                    images=scans)
    return _finish(report, per_file)


def _det_label_signature(s: DetSample) -> str:
    return json.dumps([[t, np.round(p, 1).tolist()] for t, p in zip(s.texts, s.polys)], ensure_ascii=False)


def _describe(values) -> dict:
    if len(values) == 0:
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64)
    q = np.percentile(a, [1, 50, 99])
    return {"n": int(a.size), "min": _num(a.min()), "p1": _num(q[0]), "median": _num(q[1]), "p99": _num(q[2]),
            "max": _num(a.max()), "mean": _num(a.mean())}


def _num(x: float):
    x = float(x)
    return int(x) if x.is_integer() else round(x, 3)


# ---------------------------------------------------------------------------------------------------------------
# outputs: report files, pictures, cleaned label files
# ---------------------------------------------------------------------------------------------------------------
def clean_label_path(label_file) -> Path:
    p = Path(label_file)
    return p.with_name(f"{p.stem}.clean{p.suffix or '.txt'}")


def write_clean_labels(report: Report) -> list[Path]:
    """Write ``<name>.clean<ext>`` next to each label file: the lines without errors (under the report's policy),
    LF endings, no BOM. Never overwrites: an existing file raises :class:`ConfigError` before anything is written."""
    targets = [(Path(s.file), clean_label_path(s.file)) for s in report.sources]
    for _, dst in targets:
        if dst.exists():
            raise ConfigError(f"{dst} already exists; move or delete it to write a new cleaned copy")
    blocked = {f.key for f in report.errors}
    written = []
    for src, dst in targets:
        try:
            raw = src.read_bytes()
        except OSError:
            continue
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        blobs = raw.split(b"\n")
        if blobs and blobs[-1] == b"":
            blobs.pop()
        keep = []
        for lineno, blob in enumerate(blobs, start=1):
            blob = blob[:-1] if blob.endswith(b"\r") else blob
            if (str(src), lineno) in blocked or not blob.strip():
                continue
            keep.append(blob)
        dst.write_bytes(b"".join(b + b"\n" for b in keep))
        written.append(dst)
    return written


def write_report(report: Report, out_dir, *, pictures: bool = True, write_clean: bool = False) -> list[Path]:
    """Write report.json, findings.jsonl, missing_chars.txt (rec, when characters are missing), pictures and, if
    asked, the cleaned label files. Returns the paths written (also kept in ``report.written``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.out_dir = out_dir
    written = []
    if write_clean:  # first: it may refuse (existing file), and then nothing else should look finished
        clean = write_clean_labels(report)
    else:
        clean = []
    missing = report.stats.get("missing_chars") or {}
    if missing:
        path = out_dir / "missing_chars.txt"
        path.write_text("".join(f"{c}\n" for c in missing), encoding="utf-8")
        written.append(path)
    if pictures:
        written += write_pictures(report, out_dir)
    path = out_dir / "findings.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for f in report.findings:
            fh.write(json.dumps({**f.to_dict(), "severity": report.severity(f)}, ensure_ascii=False) + "\n")
    written.append(path)
    report.written = written + clean
    path = out_dir / "report.json"
    data = report.to_dict()
    data["files"] = {"out_dir": str(out_dir), "written": [str(p) for p in report.written + [path]]}
    if missing:
        for g in data["findings"]:
            if g["code"] == "char_not_in_dict":
                g["hint"] = (f"{len(missing)} missing character(s) are listed in {out_dir / 'missing_chars.txt'}: "
                             f"append them to the dictionary (this changes the rec head size), or fix / drop "
                             f"these labels")
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    report.written.insert(0, path)
    return report.written


def write_pictures(report: Report, out_dir: Path) -> list[Path]:
    """Sample montage and histograms (matplotlib, Agg)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing CJK glyphs in the default font are not worth a warning
        if report.kind == "rec":
            written.append(_rec_montage(report, out_dir / "montage.png", plt))
            written.append(_rec_histograms(report, out_dir / "label_length_hist.png", plt))
            written.append(_rec_size_histograms(report, out_dir / "image_size_hist.png", plt))
        else:
            written.append(_det_montage(report, out_dir / "montage.png", plt))
            written.append(_det_histograms(report, out_dir / "box_size_hist.png", plt))
    return [p for p in written if p is not None]


def _pick(report: Report, n: int) -> list:
    ok = [s for split, s in report.samples
          if split == "train" and report.images.get(str(s.image_path)) and report.images[str(s.image_path)].usable_size
          and not report.images[str(s.image_path)].problem]
    if not ok:
        return []
    idx = np.random.default_rng(0).choice(len(ok), size=min(n, len(ok)), replace=False)
    return [ok[i] for i in sorted(idx)]


def _montage(picks: list, path: Path, plt, *, cols: int, cell: tuple[float, float], dpi: int, title: str,
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


def _rec_montage(report: Report, path: Path, plt) -> Path | None:
    picks = _pick(report, 24)
    return _montage(picks, path, plt, cols=4, cell=(3.2, 1.1), dpi=90, title=f"{len(picks)} random training crops",
                    draw=lambda img, s: (img, _clip(s.text, 30)))


def _rec_histograms(report: Report, path: Path, plt) -> Path:
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


def _rec_size_histograms(report: Report, path: Path, plt) -> Path:
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


def _det_montage(report: Report, path: Path, plt) -> Path | None:
    import cv2

    def draw(img, s):
        scale = min(1.0, 900 / max(img.shape[:2]))
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else img.copy()
        for pts, ign in zip(s.polys, s.ignore_tags):
            color = (0, 0, 255) if ign else (0, 200, 0)
            cv2.polylines(img, [np.round(pts * scale).astype(np.int32)], True, color, 2)
        return img, f"{Path(s.rel_path).name}: {len(s.polys)} boxes"

    return _montage(_pick(report, 6), path, plt, cols=3, cell=(4.2, 3.2), dpi=80,
                    title="random training images (green: text, red: don't care)", draw=draw)


def _det_histograms(report: Report, path: Path, plt) -> Path:
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


# ---------------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------------
def run_check(kind: str, train_files, val_files=(), *, charset=None, out_dir=None, write_clean: bool = False,
              pictures: bool = True, **options) -> Report:
    """:func:`check_sources` plus the outputs: report directory (default ``outputs/data_check/<kind>-<time>``),
    pictures, cleaned label files on request."""
    report = check_sources(kind, train_files, val_files, charset, **options)
    if out_dir is None:
        out_dir = _default_out_dir(kind)
    write_report(report, out_dir, pictures=pictures, write_clean=write_clean)
    return report


def _default_out_dir(kind: str) -> Path:
    base = Path("outputs") / "data_check" / f"{kind}-{datetime.now():%Y%m%d-%H%M%S}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def codes_table() -> str:
    """The finding codes as a text table (``--list-codes``)."""
    lines = [f"{'code':22s} {'severity':8s} {'scope':5s} description"]
    for code, info in CODES.items():
        acc = " (acceptable: --accept)" if info.acceptable else ""
        lines.append(f"{code:22s} {info.severity:8s} {info.scope:5s} {info.description}{acc}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from workbench.config.suggest import OneLineArgumentParser

    p = OneLineArgumentParser(
        prog="wb data check",
        description="Check rec / det label files and their images before training. Exit code 0: the data would "
                    "train under the policy; 1: it would not; 2: bad arguments.")
    p.add_argument("kind", choices=("rec", "det"), help="recognition or detection labels")
    p.add_argument("files", nargs="+", type=Path, help="training label file(s)")
    p.add_argument("--val", nargs="+", type=Path, default=[], action="extend", help="validation label file(s)")
    p.add_argument("--dict", dest="dict_path", type=Path, help="rec: the model's character dictionary (required)")
    p.add_argument("--no-space-char", action="store_true", help="rec: the model has no space class")
    p.add_argument("--max-text-length", type=int, default=25, help="rec: the model's max_text_length (25)")
    p.add_argument("--ctc-only", action="store_true",
                   help="rec: the model has no NRTR branch (labels may then have max_text_length characters, "
                        "not max_text_length - 2)")
    p.add_argument("--min-text-size", type=int, default=8, help="det: the DB targets' min_text_size (8)")
    p.add_argument("--root", type=Path, help="image paths are relative to this folder (default: each label "
                   "file's folder)")
    p.add_argument("--policy", choices=("strict", "skip"), default="strict",
                   help="the data policy training will use (default strict)")
    p.add_argument("--accept", action="append", default=[], metavar="CODE",
                   help="accept an acceptable error code as a warning (e.g. truncated_image)")
    p.add_argument("--out", type=Path, help="report folder (default outputs/data_check/<kind>-<time>)")
    p.add_argument("--write-clean", action="store_true",
                   help="write <label>.clean.txt next to each label file without the lines with errors")
    p.add_argument("--no-pictures", action="store_true", help="skip the montage and histograms")
    p.add_argument("--no-decode", action="store_true", help="read image headers only (faster, sees less)")
    p.add_argument("--workers", type=int, default=2, help="image reading threads (2)")
    p.add_argument("--examples", type=int, default=5, help="examples per finding code in the report (5)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal, for large sets)")
    return p


def main(argv: list[str] | None = None) -> int:
    """``wb data check ...``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--list-codes" in argv:
        print(codes_table())
        return 0
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help (0) and on bad arguments (2)
        return int(e.code or 0)
    try:
        if args.kind == "rec" and args.dict_path is None:
            raise ConfigError("rec labels are checked against the model's dictionary: pass --dict FILE")
        policy = DataPolicy(args.policy, frozenset(args.accept))
        kwargs = dict(policy=policy, root=args.root, decode_images=not args.no_decode, workers=args.workers,
                      progress=args.progress, examples=args.examples)
        if args.kind == "rec":
            kwargs.update(max_text_length=args.max_text_length, nrtr=not args.ctc_only,
                          use_space_char=not args.no_space_char)
        else:
            kwargs.update(min_text_size=args.min_text_size)
        report = run_check(args.kind, args.files, args.val, charset=args.dict_path, out_dir=args.out,
                           write_clean=args.write_clean, pictures=not args.no_pictures, **kwargs)
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
