"""Per-sample tables of a report: written as JSON lines (exact, what ``wb compare`` reads) and CSV (for people and
spreadsheets), and the key that identifies one sample across two runs.

Values are made JSON-plain on the way out: numpy scalars and arrays become Python numbers and lists, tuples become
lists, and columns that hold pictures (``crop``) are left out. In the CSV, list / dict cells are JSON strings.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

#: columns never written to the tables (pixels belong in the HTML, not in a table)
PICTURE_COLUMNS = frozenset({"crop"})


def plain(value: Any) -> Any:
    """``value`` with numpy types, tuples and paths turned into what ``json`` writes."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    return value


def plain_rows(rows: Iterable[dict]) -> list[dict]:
    return [{k: plain(v) for k, v in row.items() if k not in PICTURE_COLUMNS} for row in rows]


def _columns(rows: Sequence[dict]) -> list[str]:
    """Column order: the first row's order, then any column only later rows have, in order of appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        for k in row:
            seen.setdefault(k, None)
    return list(seen)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return str(value)


def write_jsonl(rows: Sequence[dict], path: str | Path) -> Path:
    path = Path(path)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_csv(rows: Sequence[dict], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    path = Path(path)
    columns = list(columns) if columns is not None else _columns(rows)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return path


def write_summary(out_dir: Path, task: str, title: str, metrics: dict, info: dict | None, n: int) -> Path:
    """``summary.json`` of a report: what ``wb compare`` needs besides the records (task, metrics)."""
    path = Path(out_dir) / "summary.json"
    data = {"task": task, "title": title, "info": plain(info or {}), "metrics": plain(metrics), "n_records": n}
    path.write_text(json.dumps(data, indent=1, default=str, ensure_ascii=False), encoding="utf-8")
    return path


def write_record_files(rows: Sequence[dict], out_dir: Path, *, task: str, title: str, metrics: dict,
                       info: dict | None) -> tuple[list[dict], list[Path]]:
    """What every module report writes first: ``records.jsonl``, ``records.csv`` (the rows without pixel
    columns) and ``summary.json``. Returns the plain rows and the files."""
    table_rows = plain_rows(rows)
    files = [write_jsonl(table_rows, out_dir / "records.jsonl"), write_csv(table_rows, out_dir / "records.csv"),
             write_summary(out_dir, task, title, dict(metrics), info, len(rows))]
    return table_rows, files


def read_jsonl(path: str | Path) -> list[dict]:
    rows = []
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    from workbench.errors import WorkbenchError

                    raise WorkbenchError(f"{path}:{number}: not a JSON record ({exc})") from exc
    return rows


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The CSV table as strings (``""`` for an empty cell); list / dict cells are JSON text."""
    with Path(path).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# --- identifying a sample across runs --------------------------------------------------------------------------
def _label_line(row: dict, basename: bool) -> str | None:
    label_file, line = row.get("label_file"), row.get("line")
    if label_file is None or line is None:
        return None
    name = os.path.basename(str(label_file)) if basename else str(label_file)
    return f"{name}:{line}"


def _image(row: dict, basename: bool) -> str | None:
    path = row.get("image_path") or (row.get("image") if isinstance(row.get("image"), str) else None)
    if path is None:
        return None
    return os.path.basename(str(path)) if basename else str(path)


#: ways to name a sample, most specific first; ``wb compare`` uses the first one that identifies both runs' samples
KEY_SCHEMES = {
    "label_file:line": lambda r: _label_line(r, basename=False),
    "label_name:line": lambda r: _label_line(r, basename=True),
    "image_path": lambda r: _image(r, basename=False),
    "image_name": lambda r: _image(r, basename=True),
    "id": lambda r: _id(r),
}


def _id(row: dict) -> str | None:
    value = row.get("id", row.get("image"))
    return None if value is None else str(value)


def sample_key(row: dict) -> str:
    """The name of one sample: ``label_file:line``, else the image path, else the metric's id."""
    for scheme in ("label_file:line", "image_path", "id"):
        key = KEY_SCHEMES[scheme](row)
        if key is not None:
            return key
    return "?"


def short_key(row: dict) -> str:
    """:func:`sample_key` for people: the label file's name instead of its path."""
    for scheme in ("label_name:line", "image_path", "id"):
        key = KEY_SCHEMES[scheme](row)
        if key is not None:
            return key
    return "?"


def display_path(row: dict) -> str:
    """The image path, relative to the label file's folder when it lies below it (as written in the label)."""
    path, label_file = row.get("image_path"), row.get("label_file")
    if not path:
        return ""
    if label_file:
        try:
            return str(Path(path).relative_to(Path(label_file).parent))
        except ValueError:
            pass
    return str(path)
