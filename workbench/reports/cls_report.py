"""The orientation-classifier report: which orientations a classifier confuses, on which images.

``write_cls_report(rows, metrics, out_dir, title=..., classes=...)`` writes, into ``out_dir``:

* ``records.jsonl`` / ``records.csv`` — one row per sample (the rows given);
* ``summary.json`` — task, title, info, metrics (what ``wb compare`` reads besides the records);
* ``report.html`` — self-contained: accuracy cards, the confusion table (rows = labelled class, columns =
  predicted class, with each class's recall and precision), per-class and per-source-format tables, and the wrong
  samples pictured as the model saw them (turned by their class's angle), least confident first, then the least
  confident right ones.

Rows are :meth:`workbench.metrics.cls.ClassificationMetric.records` rows extended by the task with
``image_path``, ``label_file``, ``line``, ``angle`` (clockwise, of the labelled class), ``derived`` (the class
comes from turning an upright image), ``width`` and ``height`` (of the source image).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from workbench.reports import html as H
from workbench.reports.records import display_path, short_key, write_record_files


def confusion_matrix(rows: Sequence[dict], k: int) -> np.ndarray:
    m = np.zeros((k, k), dtype=np.int64)
    for r in rows:
        m[int(r["gt_class"]), int(r["pred_class"])] += 1
    return m


def confusion_table(matrix: np.ndarray, classes: Sequence[str]) -> H.Markup:
    """The confusion counts with each row's recall and each column's precision."""
    k = len(classes)
    headers = ["labelled \\ predicted", *classes, "samples", "recall"]
    body = []
    for i, name in enumerate(classes):
        total = int(matrix[i].sum())
        cells = [H.Markup(f"<b>{int(matrix[i, j])}</b>") if i == j else int(matrix[i, j]) for j in range(k)]
        body.append((name, *cells, total, H.fmt(matrix[i, i] / total if total else None)))
    cols = matrix.sum(axis=0)
    body.append(("precision", *[H.fmt(matrix[j, j] / cols[j] if cols[j] else None) for j in range(k)],
                 int(matrix.sum()), H.fmt(np.trace(matrix) / matrix.sum() if matrix.sum() else None)))
    return H.table(headers, body, cls="confusion")


def case_order(rows: Sequence[dict]) -> list[int]:
    """Wrong samples first (most confidently wrong first), then right ones, least confident first."""
    def key(i):
        r = rows[i]
        score = r.get("score")
        score = -1.0 if score is None or score != score else float(score)
        return (bool(r["correct"]), -score if not r["correct"] else score)
    return sorted(range(len(rows)), key=key)


def _case_card(rank: int, r: dict) -> H.Markup:
    image = H.read_image(r.get("image_path"))
    if image is None:
        pic = H.missing_picture(f"image not readable: {r.get('image_path')}")
    else:  # as the model saw it: turned clockwise by the labelled angle
        shown = np.ascontiguousarray(np.rot90(image, (-int(r.get("angle", 0)) // 90) % 4))
        pic = H.img(H.data_uri(H.fit(shown, 400, 160, upscale=2.0), quality=85), alt=r["gt_label"])
    kind = "ok" if r["correct"] else "bad"
    origin = "turned by the task" if r.get("derived") else "labelled"
    return H.Markup(
        f'<div class="case" data-case-id="{H.esc(short_key(r))}"><div class="top"><span class="rank">#{rank}</span>'
        f'<span>{H.badge("right" if r["correct"] else "wrong", kind)} labelled <b>{H.esc(r["gt_label"])}</b> '
        f'({origin}) · predicted <b>{H.esc(r["pred_label"])}</b> · score {H.fmt(r.get("score"), 3)}</span></div>'
        f'<div class="pic">{pic}</div><div class="path">{H.esc(short_key(r))} · {H.esc(display_path(r))}</div>'
        f"</div>")


def write_cls_report(rows: Sequence[dict], metrics: dict, out_dir: str | Path, *, title: str,
                     classes: Sequence[str], task: str, info: dict | None = None, max_cases: int = 120
                     ) -> list[Path]:
    """Write the classification report (see the module docstring); returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    _, files = write_record_files(rows, out_dir, task=task, title=title, metrics=metrics, info=info)
    n = len(rows)
    n_wrong = sum(not r["correct"] for r in rows)
    matrix = confusion_matrix(rows, len(classes))
    body = []
    if info:
        body.append(H.section("info", "Run", H.kv_table(info)))
    body.append(H.section("summary", "Metrics", H.Markup(
        H.cards([("top-1 accuracy", metrics.get("acc"), "most probable class = labelled class"),
                 ("samples", n, f"{n_wrong} wrong"),
                 *[(f"recall {c}", metrics.get(f"recall_{c}"), f"{metrics.get(f'n_{c}', 0)} samples")
                   for c in classes]])
        + H.kv_table({k: v for k, v in metrics.items()})),
        "recall_<class>: share of that class's samples predicted right; precision_<class>: share of the predictions "
        "of that class that are right."))
    body.append(H.section("confusion", "Confusion", confusion_table(matrix, classes),
                          "Rows: the labelled orientation; columns: what the model predicted. Off-diagonal cells "
                          "are the errors; an orientation error in the pipeline turns the crop or page the wrong way."))
    by_origin = Counter((bool(r.get("derived")), bool(r["correct"])) for r in rows)
    origin_rows = [(label, by_origin[(d, True)] + by_origin[(d, False)], by_origin[(d, False)],
                    H.pct(by_origin[(d, True)], by_origin[(d, True)] + by_origin[(d, False)]))
                   for d, label in ((False, "labelled in a class file"), (True, "turned from an upright image"))
                   if by_origin[(d, True)] + by_origin[(d, False)]]
    body.append(H.section("origin", "Where the classes come from",
                          H.table(["samples", "count", "wrong", "accuracy"], origin_rows),
                          "Rec crops and det pages are assumed upright and turned through every class."))
    order = case_order(rows)[:max_cases]
    cards_html = "".join(_case_card(rank, rows[i]) for rank, i in enumerate(order, 1))
    body.append(H.section("cases", "Cases", H.Markup(f'<div class="cases">{cards_html}</div>'),
                          f"Wrong samples first (most confident first), then the least confident right ones; "
                          f"{len(order)} of {n} shown, pictured as the model saw them."))
    subtitle = f"{task} · {n} samples · {n_wrong} wrong"
    nav = [("summary", "Metrics"), ("confusion", "Confusion"), ("origin", "Origin"), ("cases", "Cases")]
    files.append(H.write_page(out_dir / "report.html", title, H.Markup("".join(body)), subtitle=subtitle, nav=nav))
    return files
