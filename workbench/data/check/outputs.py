"""What ``wb data check`` writes: ``report.json``, ``findings.jsonl``, ``missing_chars.txt``, pictures and, on
request, cleaned copies of the label files."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.data.check.report import Report
from workbench.errors import ConfigError


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
    """The pictures of the check that made ``report`` (montage, histograms), drawn with matplotlib's Agg backend."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing CJK glyphs in the default font are not worth a warning
        written = report.check.pictures(report, out_dir, plt) if report.check is not None else []
    return [p for p in written if p is not None]
