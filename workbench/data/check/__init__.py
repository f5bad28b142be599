"""``wb data check``: everything that would make training fail or go quietly wrong, found before training.

::

    wb data check rec FILE... --dict D [--max-text-length 25] [--val FILE...] [--out DIR] [--write-clean]
    wb data check det FILE... [--val FILE...] [--min-text-size 8]
    wb data check textline_ori FILE... [--val FILE...] [--label-format auto|class|rec]
    wb data check doc_ori FILE... [--val FILE...] [--label-format auto|class|det]
    wb data check --list-codes

It prints a short summary, writes ``report.json`` (findings grouped by code: severity, count, samples affected,
the first file:line examples, a fix hint), ``findings.jsonl`` (every finding), pictures (sample montage, label
length and size histograms) and, for rec, ``missing_chars.txt`` (a dictionary extension for the characters the
dictionary lacks). With ``--write-clean`` each label file gets a cleaned copy next to it (``label.clean.txt``:
lines with errors removed, LF line endings, no BOM); an existing file is never overwritten.

Exit code: 0 = the data would train under the chosen policy; 1 = it would not (``strict``: any error; ``skip``:
a label file would be left without samples); 2 = bad command line / unreadable dictionary.

The trainer runs the same check first: :func:`check_sources` returns a :class:`Report` without writing anything.

Where things are: ``scan`` (reading every image once), ``common`` (:class:`LabelCheck`, the interface of one kind
of label file, and the findings every kind shares), ``rec`` / ``det`` (the two label formats), ``orientation``
(class lists and the rec / det files orientation samples are derived from), ``report``
(:class:`Report`), ``outputs`` (the files written).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

from workbench.data.check.common import CheckRun, LabelCheck, run_label_check
from workbench.data.check.det import DetLabelCheck
from workbench.data.check.orientation import DocOriLabelCheck, OrientationLabelCheck, TextlineOriLabelCheck
from workbench.data.check.outputs import clean_label_path, write_clean_labels, write_pictures, write_report
from workbench.data.check.rec import RecLabelCheck
from workbench.data.check.report import Report
from workbench.data.check.scan import ImageScan, scan_images
from workbench.data.findings import CODES, DataPolicy
from workbench.errors import ConfigError

__all__ = [
    "CheckRun", "DetLabelCheck", "DocOriLabelCheck", "ImageScan", "LABEL_CHECKS", "LabelCheck",
    "OrientationLabelCheck", "RecLabelCheck", "Report", "TextlineOriLabelCheck",
    "check_sources", "clean_label_path", "codes_table", "run_check", "scan_images", "write_clean_labels",
    "write_pictures", "write_report",
]

#: the label formats this package reads, by the name ``check_sources`` accepts
LABEL_CHECKS: dict[str, type[LabelCheck]] = {"rec": RecLabelCheck, "det": DetLabelCheck,
                                             "textline_ori": TextlineOriLabelCheck, "doc_ori": DocOriLabelCheck}


def _as_list(files) -> list[Path]:
    if files is None:
        return []
    if isinstance(files, (str, Path)):
        return [Path(files)]
    return [Path(f) for f in files]


def check_sources(check: LabelCheck | str, train_files, val_files=(), charset=None, *,
                  policy: Optional[DataPolicy] = None, root=None, decode_images: bool = True, workers: int = 2,
                  progress: Optional[bool] = None, examples: int = 5, **options) -> Report:
    """Check label files (and their images) the way training will use them; write nothing.

    ``check``: a :class:`LabelCheck`, or the name of a built-in one (``"rec"``, ``"det"``) built from ``charset``
    (rec: a :class:`~workbench.data.charset.Charset` or a dictionary path) and ``options`` (rec:
    ``max_text_length``, ``nrtr``, ``use_space_char``; det: ``min_text_size``). ``decode_images=False`` reads
    only the image headers (faster; cannot see corrupt pixel data)."""
    if isinstance(check, str) and check not in LABEL_CHECKS:
        raise ConfigError(f"data check kind must be one of {', '.join(LABEL_CHECKS)}, got {check!r}")
    run = CheckRun(policy=policy or DataPolicy(), root=root, decode_images=decode_images, workers=workers,
                   progress=progress, examples=examples)
    train, val = _as_list(train_files), _as_list(val_files)
    if not train:
        raise ConfigError("no training label file given")
    if isinstance(check, str):
        known = {name for cls in LABEL_CHECKS.values() for name in cls.option_names}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"check_sources: unknown option(s) {sorted(unknown)}")
        cls = LABEL_CHECKS[check]  # the options of the other built-in kind are ignored (callers pass both)
        check = cls.from_options(charset, **{k: v for k, v in options.items() if k in cls.option_names})
    return run_label_check(check, train, val, run)


def run_check(check: LabelCheck | str, train_files, val_files=(), *, out_dir=None, write_clean: bool = False,
              pictures: bool = True, **options) -> Report:
    """:func:`check_sources` plus the outputs: report directory (default ``outputs/data_check/<kind>-<time>``),
    pictures, cleaned label files on request."""
    report = check_sources(check, train_files, val_files, **options)
    if out_dir is None:
        out_dir = default_out_dir(report.kind)
    write_report(report, out_dir, pictures=pictures, write_clean=write_clean)
    return report


def default_out_dir(kind: str) -> Path:
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
