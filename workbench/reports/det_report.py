"""The text-detection report: which images a detector fails on, which boxes it misses, what it invents.

``write_det_report(rows, metrics, out_dir, title=...)`` writes, into ``out_dir``:

* ``records.jsonl`` / ``records.csv`` — one row per image (the rows given);
* ``boxes.csv`` — one row per GT box: image, index, text, status (matched / missed / dont-care / invalid), IoU
  (of its match; for a missed box the best IoU any prediction reached), the matching prediction, box height /
  width / area;
* ``summary.json`` — task, title, info, metrics (what ``wb compare`` reads besides the records);
* ``report.html`` — self-contained: metric summary (+ the score sweep when there is one), the worst images first
  (lowest per-image hmean, then most misses + false positives) drawn with GT and predicted polygons, and slices
  (image size, GT boxes per image, box height, box aspect ratio).

Rows are :meth:`workbench.metrics.det.DetEvaluator.records` rows extended by the task with ``image_path``,
``label_file``, ``line``, ``gt_polys`` (``[[x, y], ...]`` each), ``gt_texts``, ``gt_ignore``, ``pred_polys``,
``pred_scores``, ``width``, ``height``. Box height and width are the short and long sides of the polygon's
minimum-area rectangle (orientation-free: the height is the text's line thickness also for rotated text).
Slices use every box of every image; only the shown images are decoded and drawn.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from workbench.reports import html as H
from workbench.reports.records import display_path, sample_key, short_key, write_csv, write_record_files

#: drawing colours, BGR for OpenCV; the legend shows the same colours
COLOURS = {
    "matched GT": (60, 190, 40),
    "missed GT": (40, 40, 230),
    "false positive": (0, 140, 255),
    "don't care": (170, 170, 170),
    "matched prediction": (230, 160, 30),
}

IMAGE_SIZE_BINS = H.Bins((640, 960, 1280, 1920, 2560), " px")
BOXES_PER_IMAGE_BINS = H.Bins((1, 6, 11, 21, 51), integer=True)
BOX_HEIGHT_BINS = H.Bins((8, 16, 24, 32, 48, 64, 128), " px")
BOX_ASPECT_BINS = H.Bins((2.0, 4.0, 8.0, 16.0))

BOX_COLUMNS = ("image", "label_file", "line", "index", "text", "status", "iou", "pred", "height", "width", "area")


def _hex(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


# --- geometry --------------------------------------------------------------------------------------------------
def box_geometry(poly) -> tuple[float, float, float]:
    """(height, width, area) of a polygon: short / long side of its minimum-area rectangle, shoelace area."""
    import cv2

    pts = np.asarray(poly, dtype=np.float32).reshape(-1, 2)
    if len(pts) < 3:
        return 0.0, 0.0, 0.0
    (_, _), (w, h), _ = cv2.minAreaRect(pts)
    x, y = pts[:, 0].astype(np.float64), pts[:, 1].astype(np.float64)
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return float(min(w, h)), float(max(w, h)), area


def best_ious(gt_polys: Sequence, pred_polys: Sequence, gt_indices: Sequence[int]) -> dict[int, float]:
    """For the GT boxes ``gt_indices``: the largest IoU any prediction reaches (0 when none overlaps)."""
    import shapely

    out = {g: 0.0 for g in gt_indices}
    if not gt_indices or not pred_polys:
        return out

    def geoms(polys):
        arr = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polys]
        return [shapely.make_valid(shapely.polygons(a)) if len(a) >= 3 else None for a in arr]

    preds = [p for p in geoms(pred_polys) if p is not None and not p.is_empty]
    if not preds:
        return out
    preds_arr = np.array(preds, dtype=object)
    for g, geom in zip(gt_indices, geoms([gt_polys[g] for g in gt_indices])):
        if geom is None or geom.is_empty:
            continue
        inter = shapely.area(shapely.intersection(geom, preds_arr))
        union = shapely.area(shapely.union(geom, preds_arr))
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        out[g] = float(iou.max())
    return out


# --- per-box table ---------------------------------------------------------------------------------------------
def box_rows(rows: Sequence[dict]) -> list[dict]:
    """One row per GT box of every image (see ``boxes.csv`` in the module docstring)."""
    out = []
    for row in rows:
        polys = row.get("gt_polys") or []
        texts = row.get("gt_texts") or [""] * len(polys)
        matched = {g: (p, iou) for g, p, iou in row.get("matches", [])}
        missed = set(row.get("missed_gt", []))
        dont_care = set(row.get("dont_care_gt", []))
        invalid = set(row.get("invalid_gt", []))
        near = best_ious(polys, row.get("pred_polys") or [], sorted(missed))
        key = sample_key(row)
        for i, poly in enumerate(polys):
            h, w, area = box_geometry(poly)
            if i in matched:
                status, iou, pred = "matched", matched[i][1], matched[i][0]
            elif i in missed:
                status, iou, pred = "missed", near[i], None
            elif i in dont_care:
                status, iou, pred = "dont-care", None, None
            elif i in invalid:
                status, iou, pred = "invalid", None, None
            else:  # only when the row is inconsistent with its polygons; say so rather than guess
                status, iou, pred = "unknown", None, None
            out.append({"image": key, "label_file": row.get("label_file"), "line": row.get("line"), "index": i,
                        "text": texts[i] if i < len(texts) else "", "status": status,
                        "iou": None if iou is None else round(float(iou), 6), "pred": pred,
                        "height": round(h, 2), "width": round(w, 2), "area": round(area, 2)})
    return out


def pred_boxes(rows: Sequence[dict]) -> list[dict]:
    """One entry per care prediction: its size and whether it matched (for precision by box size)."""
    out = []
    for row in rows:
        matched = {p for _, p, _ in row.get("matches", [])}
        fps = set(row.get("false_positives", []))
        for j, poly in enumerate(row.get("pred_polys") or []):
            if j in matched or j in fps:
                h, w, _ = box_geometry(poly)
                out.append({"height": h, "aspect": w / h if h > 0 else None, "matched": j in matched})
    return out


# --- slices ----------------------------------------------------------------------------------------------------
def image_stats(rows: Sequence[dict]) -> dict[str, Any]:
    matched = sum(r["matched"] for r in rows)
    gt, pred = sum(r["gt_care"] for r in rows), sum(r["pred_care"] for r in rows)
    precision = matched / pred if pred else None
    recall = matched / gt if gt else None
    hmean = None
    if precision is not None and recall is not None:
        hmean = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"images": len(rows), "gt": gt, "pred": pred, "matched": matched, "precision": precision,
            "recall": recall, "hmean": hmean, "missed": sum(len(r["missed_gt"]) for r in rows),
            "false_positives": sum(len(r["false_positives"]) for r in rows)}


def image_slices(rows: Sequence[dict]) -> dict[str, list[tuple[str, dict]]]:
    def binned(bins: H.Bins, value_of):
        groups = H.group(rows, lambda r: bins.index(value_of(r)))
        return [(bins.label(i), image_stats(groups[i])) for i in sorted(groups, key=lambda i: (i < 0, i))]

    def long_side(r):
        w, h = r.get("width"), r.get("height")
        return max(w, h) if w and h else None

    return {
        "image size (long side)": binned(IMAGE_SIZE_BINS, long_side),
        "GT boxes per image (care)": binned(BOXES_PER_IMAGE_BINS, lambda r: r["gt_care"]),
    }


def box_slices(boxes: Sequence[dict], preds: Sequence[dict]) -> dict[str, list[tuple[str, dict]]]:
    """Recall per GT box bin and precision per predicted box bin, binned the same way."""
    care = [b for b in boxes if b["status"] in ("matched", "missed")]

    def binned(bins: H.Bins, gt_value, pred_value):
        g = H.group(care, lambda b: bins.index(gt_value(b)))
        p = H.group(preds, lambda b: bins.index(pred_value(b)))
        out = []
        for i in sorted(set(g) | set(p), key=lambda i: (i < 0, i)):
            gb, pb = g.get(i, []), p.get(i, [])
            found = sum(b["status"] == "matched" for b in gb)
            hits = sum(b["matched"] for b in pb)
            out.append((bins.label(i), {"gt": len(gb), "found": found, "recall": found / len(gb) if gb else None,
                                        "pred": len(pb), "false_positives": len(pb) - hits,
                                        "precision": hits / len(pb) if pb else None}))
        return out

    def aspect(b):
        return b["width"] / b["height"] if b["height"] > 0 else None

    return {
        "box height (short side of the min-area rectangle)": binned(BOX_HEIGHT_BINS, lambda b: b["height"],
                                                                     lambda b: b["height"]),
        "box aspect ratio (long / short side)": binned(BOX_ASPECT_BINS, aspect, lambda b: b["aspect"]),
    }


def case_order(rows: Sequence[dict]) -> list[int]:
    """Row indices worst first: lowest per-image hmean, then most misses + false positives, then input order."""
    return sorted(range(len(rows)), key=lambda i: (rows[i]["hmean"],
                                                   -(len(rows[i]["missed_gt"]) + len(rows[i]["false_positives"])), i))


# --- drawing ---------------------------------------------------------------------------------------------------
def draw(image: np.ndarray, row: dict, max_width: int = 760, max_height: int = 760) -> np.ndarray:
    """The image scaled to fit, with GT and predictions drawn at display resolution (crisp 2 px lines)."""
    import cv2

    h0, w0 = image.shape[:2]
    canvas = H.fit(image, max_width, max_height).copy()
    scale = canvas.shape[1] / w0

    def pts(poly):
        return np.round(np.asarray(poly, dtype=np.float64).reshape(-1, 2) * scale).astype(np.int32)

    def poly_line(poly, colour, thickness):
        p = pts(poly)
        if len(p) >= 2:
            cv2.polylines(canvas, [p], True, colour, thickness, cv2.LINE_AA)

    gt, pred = row.get("gt_polys") or [], row.get("pred_polys") or []
    matched_g = {g for g, _, _ in row.get("matches", [])}
    matched_p = {p for _, p, _ in row.get("matches", [])}
    for g in row.get("dont_care_gt", []):
        poly_line(gt[g], COLOURS["don't care"], 1)
    for j in row.get("ignored_pred", []):
        poly_line(pred[j], COLOURS["don't care"], 1)
    for g in matched_g:
        poly_line(gt[g], COLOURS["matched GT"], 2)
    for j in matched_p:
        poly_line(pred[j], COLOURS["matched prediction"], 1)
    for j in row.get("false_positives", []):
        poly_line(pred[j], COLOURS["false positive"], 2)
    for g in row.get("missed_gt", []):
        poly_line(gt[g], COLOURS["missed GT"], 2)
        p = pts(gt[g])
        if len(p):  # the box number, as listed under the picture
            x, y = int(p[:, 0].min()), max(10, int(p[:, 1].min()) - 3)
            for colour, thick in (((255, 255, 255), 3), (COLOURS["missed GT"], 1)):
                cv2.putText(canvas, str(g), (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, thick, cv2.LINE_AA)
    return canvas


def _legend() -> H.Markup:
    return H.legend([(_hex(c), name) for name, c in COLOURS.items()])


def _case_card(rank: int, row: dict, boxes_by_index: dict[int, dict]) -> H.Markup:
    image = H.read_image(row.get("image_path"))
    if image is None:
        pic = H.missing_picture(f"image not readable: {row.get('image_path')}")
    else:
        pic = H.img(H.data_uri(draw(image, row), quality=80), alt=short_key(row))
    missed, fps = row.get("missed_gt", []), row.get("false_positives", [])
    top = (f'<span class="rank">#{rank}</span><span>hmean <b>{H.fmt(row["hmean"], 3)}</b> · '
           f'P {H.fmt(row["precision"], 3)}'
           f' · R {H.fmt(row["recall"], 3)} · <b>{len(missed)}</b> missed · <b>{len(fps)}</b> false positive'
           f'{"s" if len(fps) != 1 else ""} · {row.get("gt_care", 0)} GT</span>')
    lines = []
    if missed:
        items = []
        for g in missed[:12]:
            b = boxes_by_index.get(g, {})
            items.append(f'#{g} “{H.esc(b.get("text", ""))}” (h {H.fmt(b.get("height"), 0)} px, best IoU '
                         f'{H.fmt(b.get("iou"), 2)})')
        more = f" … +{len(missed) - 12}" if len(missed) > 12 else ""
        lines.append(f'{H.badge("missed", "bad")}{"; ".join(items)}{more}')
    if fps:
        scores = row.get("pred_scores") or []
        shown = [f"{H.fmt(scores[j], 2)}" if j < len(scores) else "?" for j in fps[:12]]
        more = f" … +{len(fps) - 12}" if len(fps) > 12 else ""
        lines.append(f'{H.badge("false positives", "warn")}scores {", ".join(shown)}{more}')
    if row.get("skipped"):
        lines.append(H.badge("no GT: skipped by upstream-compatible scoring"))
    size = f"{row.get('width')}×{row.get('height')}" if row.get("width") else ""
    where = " · ".join(x for x in (short_key(row), display_path(row) if row.get("label_file") else "", size) if x)
    meta = "".join(f'<div class="meta">{line}</div>' for line in lines)
    return H.Markup(
        f'<div class="case" id="case-{rank}" data-case-id="{H.esc(sample_key(row))}"><div class="top">{top}</div>'
        f'<div class="pic">{pic}</div>{meta}<div class="path">{H.esc(where)}</div></div>'
    )


def _image_slice_table(stats: list[tuple[str, dict]], total: int) -> H.Markup:
    body = [(label, s["images"], H.pct(s["images"], total), s["gt"], s["pred"], s["matched"], s["missed"],
             s["false_positives"], s["precision"], s["recall"], s["hmean"], H.bar(s["hmean"], kind="ok"))
            for label, s in stats]
    return H.table(["slice", "images", "share", "GT", "predictions", "matched", "missed", "false pos.", "precision",
                    "recall", "hmean", ""], body, cls="slices")


def _box_slice_table(stats: list[tuple[str, dict]]) -> H.Markup:
    body = [(label, s["gt"], s["found"], s["recall"], H.bar(s["recall"], kind="ok"), s["pred"], s["false_positives"],
             s["precision"]) for label, s in stats]
    return H.table(["slice", "GT boxes", "found", "recall", "", "predictions", "false pos.", "precision"], body,
                   cls="slices")


def _sweep_table(metrics: dict) -> H.Markup | None:
    thresholds = sorted({k[len("hmean_score"):] for k in metrics if k.startswith("hmean_score")}, key=float)
    if not thresholds:
        return None
    body = [(t, metrics.get(f"precision_score{t}"), metrics.get(f"recall_score{t}"), metrics.get(f"hmean_score{t}"),
             H.bar(metrics.get(f"hmean_score{t}"), kind="ok")) for t in thresholds]
    return H.table(["score ≥", "precision", "recall", "hmean", ""], body, numeric_from=0)


def _metric_summary(metrics: dict) -> H.Markup:
    m = metrics
    headline = H.cards([
        ("hmean", m.get("hmean"), "IoU > 0.5, upstream's matching rules"),
        ("precision", m.get("precision"), f"{H.fmt(m.get('n_matched'))} of {H.fmt(m.get('n_pred'))} predictions"),
        ("recall", m.get("recall"), f"{H.fmt(m.get('n_matched'))} of {H.fmt(m.get('n_gt'))} GT boxes"),
        ("images", m.get("n_images"), f"{H.fmt(m.get('n_images_without_gt'))} without any GT box"),
    ])
    main = {k: v for k, v in m.items() if "_score" not in k}
    parts = [f"<div><h3>All keys</h3>{H.kv_table(main)}</div>"]
    sweep = _sweep_table(m)
    if sweep is not None:
        best = f" (best hmean {H.fmt(m.get('best_hmean'))} at score ≥ {H.fmt(m.get('best_score_threshold'), 2)})"
        parts.append(f"<div><h3>Score sweep{best}</h3>{sweep}</div>")
    return H.Markup(headline + '<div class="grid2">' + "".join(parts) + "</div>")


# --- the report ------------------------------------------------------------------------------------------------
def write_det_report(
    rows: Sequence[dict],
    metrics: dict,
    out_dir: str | Path,
    *,
    title: str,
    info: dict | None = None,
    max_cases: int = 100,
) -> list[Path]:
    """Write the detection report (see the module docstring); returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    table_rows, files = write_record_files(rows, out_dir, task="det", title=title, metrics=metrics, info=info)
    boxes = box_rows(table_rows)
    files.insert(2, write_csv(boxes, out_dir / "boxes.csv", columns=BOX_COLUMNS))

    n = len(table_rows)
    boxes_of: dict[int, dict[int, dict]] = {}
    cursor = 0
    for k, r in enumerate(table_rows):  # boxes are in row order: slice them back per image
        count = len(r.get("gt_polys") or [])
        boxes_of[k] = {b["index"]: b for b in boxes[cursor : cursor + count]}
        cursor += count

    order = case_order(table_rows)
    shown = order[:max_cases]
    cards_html = "".join(_case_card(rank, table_rows[i], boxes_of[i]) for rank, i in enumerate(shown, 1))
    n_missed = sum(len(r["missed_gt"]) for r in table_rows)
    n_fp = sum(len(r["false_positives"]) for r in table_rows)
    imperfect = sum(bool(r["missed_gt"] or r["false_positives"]) for r in table_rows)
    status = Counter(b["status"] for b in boxes)

    body = []
    if info:
        body.append(H.section("info", "Run", H.kv_table(info)))
    body.append(H.section(
        "summary", "Metrics", _metric_summary(metrics),
        "Micro-averaged over the set with upstream PaddleOCR's DetMetric rules; images without GT count their "
        "predictions as false positives unless upstream-compatible scoring skips them."))
    note = (f"Worst first: lowest per-image hmean, then most misses + false positives. Showing {len(shown)} of {n} "
            f"images ({imperfect} with a miss or a false positive). Missed boxes are numbered as listed.")
    body.append(H.section("cases", "Worst images", H.Markup(
        _legend() + f'<div class="cases wide">{cards_html}</div>'), note))
    slice_html = "".join(f"<h3>By {H.esc(name)}</h3>{_image_slice_table(s, n)}"
                         for name, s in image_slices(table_rows).items())
    slice_html += "".join(f"<h3>By {H.esc(name)}</h3>{_box_slice_table(s)}"
                          for name, s in box_slices(boxes, pred_boxes(table_rows)).items())
    body.append(H.section(
        "slices", "Slices", H.Markup(slice_html),
        f"Every image and box counted. GT boxes: {status.get('matched', 0)} matched, {n_missed} missed, "
        f"{status.get('dont-care', 0)} don't care, {status.get('invalid', 0)} invalid; {n_fp} false positives. "
        "Box sizes in original image pixels; precision per bin counts the predictions of that size."))
    subtitle = f"text detection · {n} images · {n_missed} GT boxes missed · {n_fp} false positives"
    nav = [("summary", "Metrics"), ("cases", "Worst images"), ("slices", "Slices")]
    files.append(H.write_page(out_dir / "report.html", title, H.Markup("".join(body)), subtitle=subtitle, nav=nav))
    return files
