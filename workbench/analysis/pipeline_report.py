"""The end-to-end attribution report: which module fails, on which images, on which texts.

``write_pipeline_report(images, gts, verdict, out_dir, ...)`` writes, into ``out_dir``:

* ``attribution.jsonl`` / ``attribution.csv`` — one row per care GT text: image, GT index and text, outcome, module,
  detail, the matched box and its reading / score / whether it passed the threshold, best IoU, coverage, the
  perfect-crop (GT box) reading, the 180°-turned reading, merge / split partners;
* ``images.jsonl`` — one row per image: GT, every predicted box with its reading, score, status, and timings;
* ``summary.json`` — verdict, outcome counts, pipeline settings, timings, info;
* ``report.html`` — self-contained (no script, no network): the verdict first (which module to fine-tune, with
  counts and examples), outcome counts, the worst images with GT and predicted boxes drawn and outcomes marked,
  a gallery per outcome (the detected box's crop and the GT box's crop with their readings against the GT), and
  outcomes by text height and length.

Rows: ``images`` are dicts with ``image`` (sample key), ``image_path``, ``label_file``, ``line``, ``width``,
``height``, ``gt_polys``, ``gt_texts``, ``gt_ignore``, ``pred_polys``, ``pred_texts``, ``pred_scores``,
``pred_kept``, ``pred_status``, ``pred_gt``, ``n_care``, ``n_correct``, ``n_errors``, ``counts``, ``timings``;
``gts`` are :meth:`GTOutcome.to_dict` rows plus ``id``, ``image``, ``image_path``, ``label_file``, ``line``,
``gt_poly``, ``box_height``. Only the pictured images are decoded again.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from workbench.reports import html as H
from workbench.analysis.attribution import (
    BELOW_THRESHOLD, CORRECT, DESCRIPTIONS, FALSE_POSITIVE, MERGED, MISREAD_CROP, MISREAD_REC, MISSED, MODULE_OF,
    ORIENTATION, OUTCOMES, SPLIT, Verdict,
)
from workbench.reports.records import plain, write_csv, write_jsonl

#: outcome colours, BGR for OpenCV (the legend shows the same)
COLOURS = {
    CORRECT: (60, 170, 40),
    MISSED: (40, 40, 220),
    MERGED: (170, 40, 150),
    SPLIT: (230, 90, 200),
    MISREAD_CROP: (0, 140, 255),
    MISREAD_REC: (0, 200, 240),
    ORIENTATION: (170, 150, 0),
    BELOW_THRESHOLD: (150, 120, 120),
}
PRED_COLOUR = (230, 150, 30)
FALSE_POSITIVE_COLOUR = (120, 0, 230)
DONT_CARE_COLOUR = (170, 170, 170)

BADGE_KIND = {CORRECT: "ok", MISSED: "bad", MERGED: "bad", SPLIT: "bad", MISREAD_CROP: "warn", MISREAD_REC: "warn",
              ORIENTATION: "warn", BELOW_THRESHOLD: ""}

HEIGHT_BINS = H.Bins((8, 16, 24, 32, 48, 64, 128), " px")
LENGTH_BINS = H.Bins((1, 2, 4, 7, 11, 16, 26), integer=True)

GT_COLUMNS = ("id", "image", "label_file", "line", "index", "text", "outcome", "module", "detail", "pred", "iou",
              "coverage", "pred_text", "pred_score", "kept", "perfect_text", "perfect_score", "perfect_correct",
              "rotated_text", "rotated_correct", "pred_rotated_text", "pred_rotated_correct", "vertical", "merged_with", "split_parts", "text_in_pred",
              "box_height", "image_path", "gt_poly")


def _hex(bgr) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def _label(outcome: str) -> str:
    return outcome.replace("_", " ")


def _anchor(gt_id: str) -> str:
    return "gt-" + re.sub(r"[^A-Za-z0-9_-]+", "-", gt_id)


# --- pictures ---------------------------------------------------------------------------------------------------
class _Images:
    """Decoded images by path, a few at a time (pictured cases reuse them)."""

    def __init__(self, keep: int = 8):
        self.keep = keep
        self.cache: dict[str, Optional[np.ndarray]] = {}

    def get(self, path) -> Optional[np.ndarray]:
        key = str(path)
        if key not in self.cache:
            if len(self.cache) >= self.keep:
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = H.read_image(path)
        return self.cache[key]


def _draw(canvas: np.ndarray, row: dict, outcomes: dict[int, str], scale: float, offset=(0.0, 0.0),
          numbers: bool = True) -> np.ndarray:
    """Draw the predicted boxes (thin) and the GT boxes (outcome colours, failing ones numbered) onto ``canvas``,
    which shows the image region starting at ``offset`` (x, y) scaled by ``scale``."""
    import cv2

    shift = np.asarray(offset, dtype=np.float64)

    def pts(poly):
        return np.round((np.asarray(poly, dtype=np.float64).reshape(-1, 2) - shift) * scale).astype(np.int32)

    status = row.get("pred_status") or []
    for j, poly in enumerate(row.get("pred_polys") or []):
        fp = j < len(status) and status[j] == FALSE_POSITIVE
        cv2.polylines(canvas, [pts(poly)], True, FALSE_POSITIVE_COLOUR if fp else PRED_COLOUR, 2 if fp else 1,
                      cv2.LINE_AA)
    for g, poly in enumerate(row.get("gt_polys") or []):
        outcome = outcomes.get(g)
        colour = DONT_CARE_COLOUR if outcome is None else COLOURS[outcome]
        cv2.polylines(canvas, [pts(poly)], True, colour, 1 if outcome is None else 2, cv2.LINE_AA)
        if numbers and outcome not in (None, CORRECT):
            p = pts(poly)
            x, y = int(p[:, 0].min()), max(10, int(p[:, 1].min()) - 3)
            for c, thick in (((255, 255, 255), 3), (colour, 1)):
                cv2.putText(canvas, str(g), (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, c, thick, cv2.LINE_AA)
    return canvas


def text_area(row: dict, shape: tuple, min_share: float = 0.6) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of the image holding all GT and predicted boxes, with a margin, when that is
    less than ``min_share`` of the image (a small receipt on a large scan), else the whole image."""
    h, w = shape[:2]
    polys = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in (row.get("gt_polys") or [])
             + (row.get("pred_polys") or [])]
    if not polys:
        return 0, 0, w, h
    pts = np.concatenate(polys)
    margin = max(20.0, 0.03 * max(h, w))
    x0, y0 = (max(0, int(v - margin)) for v in pts.min(axis=0))
    x1, y1 = int(min(w, pts[:, 0].max() + margin)), int(min(h, pts[:, 1].max() + margin))
    if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) >= min_share * w * h:
        return 0, 0, w, h
    return x0, y0, x1, y1


def draw_image(image: np.ndarray, row: dict, outcomes: dict[int, str], max_side: int = 760) -> np.ndarray:
    """The image (cropped to its text area when that is small) scaled to fit, GT boxes in their outcome's colour
    (failing ones numbered), predicted boxes thin."""
    x0, y0, x1, y1 = text_area(row, image.shape)
    canvas = H.fit(image[y0:y1, x0:x1], max_side, max_side).copy()
    return _draw(canvas, row, outcomes, canvas.shape[1] / (x1 - x0), (x0, y0))


def zoom_on(image: np.ndarray, row: dict, outcomes: dict[int, str], g: int, max_width: int = 300,
            max_height: int = 110) -> np.ndarray:
    """The neighbourhood of GT ``g`` (its box plus a margin of about one text height), enlarged, boxes drawn."""
    poly = np.asarray(row["gt_polys"][g], dtype=np.float64).reshape(-1, 2)
    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    margin = max(12.0, 0.8 * min(x1 - x0, y1 - y0))
    h, w = image.shape[:2]
    x0, y0 = int(max(0, x0 - margin)), int(max(0, y0 - margin))
    x1, y1 = int(min(w, x1 + margin)), int(min(h, y1 + margin))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((1, 1, 3), np.uint8)
    canvas = H.fit(image[y0:y1, x0:x1], max_width, max_height, upscale=4).copy()
    return _draw(canvas, row, outcomes, canvas.shape[1] / (x1 - x0), (x0, y0), numbers=False)


def _crop_picture(image: Optional[np.ndarray], poly, title: str) -> H.Markup:
    from workbench.analysis.pipeline import crop_quad

    if image is None or poly is None:
        return H.missing_picture("no picture")
    crop = crop_quad(image, poly)
    if crop.size == 0:
        return H.missing_picture("box too thin to crop")
    return H.img(H.data_uri(H.fit(crop, 420, 56, upscale=3), fmt_="png"), alt=title, title=title)


def _legend() -> H.Markup:
    items = [(_hex(COLOURS[o]), f"GT: {_label(o)}") for o in OUTCOMES]
    items += [(_hex(DONT_CARE_COLOUR), "GT: don't care"), (_hex(PRED_COLOUR), "predicted box"),
              (_hex(FALSE_POSITIVE_COLOUR), "false positive (kept)")]
    return H.legend(items)


# --- sections ---------------------------------------------------------------------------------------------------
def _verdict_section(v: dict, shown: set[str], score_thresh: float) -> H.Markup:
    errors = v["total"] - v["correct"] + v["false_positives"]
    kind = "ok" if not v["modules"] else "warn"
    parts = [H.banner(v["headline"], kind)]
    parts += [H.Markup(f'<p class="note">Note: {H.esc(n)}</p>') for n in v.get("notes") or []]
    acc = v["correct"] / v["total"] if v["total"] else None
    cards = [("texts read correctly", H.Markup(f"{v['correct']}/{v['total']}"),
              f"{H.pct(v['correct'], v['total'])} of the care GT texts"),
             ("errors", errors, f"{v['total'] - v['correct']} GT texts + {v['false_positives']} false positives")]
    for m in v["modules"][:3]:
        cards.append((m["module"], m["errors"], f"{H.pct(m['errors'], errors)} of the errors"))
    parts.append(H.cards(cards))
    if v["modules"]:
        rows = []
        for m in v["modules"]:
            outs = H.join((H.badge(f"{n} {_label(o)}", BADGE_KIND.get(o, "warn"))
                           for o, n in sorted(m["outcomes"].items(), key=lambda kv: -kv[1])))
            examples = H.join((H.Markup(f'<a href="#{_anchor(e)}">{H.esc(e)}</a>') if e in shown else H.esc(e)
                               for e in m["examples"][:5]), ", ")
            rows.append((H.Markup(f"<b>{H.esc(m['module'])}</b>"), m["errors"], H.pct(m["errors"], errors),
                         H.bar(m["errors"], max(errors, 1), "bad"), outs, m.get("fixable", m["recoverable"]),
                         H.Markup(f'<span class="mono" style="font-size:12px">{examples}</span>')))
        parts.append(H.table(["module", "errors", "share", "", "what failed", "gone if this module were perfect",
                              "examples"], rows, text_columns=(3, 4, 6)))
        parts.append(H.Markup("<ul>" + "".join(f"<li>{H.esc(a)}</li>" for a in v["advice"]) + "</ul>"))
    if acc is not None and v["by_outcome"].get(BELOW_THRESHOLD):
        parts.append(H.Markup(f'<p class="note">text_rec_score_thresh = {score_thresh:g}</p>'))
    return H.Markup("".join(parts))


def _outcome_table(v: dict) -> H.Markup:
    total = v["total"]
    rows = []
    for o in OUTCOMES:
        n = v["by_outcome"].get(o, 0)
        rows.append((H.badge(_label(o), BADGE_KIND.get(o, "")), n, H.pct(n, total),
                     H.bar(n, max(total, 1), "ok" if o == CORRECT else "bad"), MODULE_OF.get(o, "–"), DESCRIPTIONS[o]))
    rows.append((H.badge("false positive", "bad"), v["false_positives"], "", "", MODULE_OF.get(MISSED),
                 "a box that matches no GT text, with a non-empty reading that passed the threshold"))
    return H.table(["outcome", "texts", "share", "", "module", "meaning"], rows, text_columns=(3, 4, 5))


def _reading_line(label: str, reading: Optional[str], truth: str, score: Optional[float], extra: str = "") -> str:
    if reading is None:
        return ""
    s = f" · score {H.fmt(score, 3)}" if score is not None else ""
    return (f'<div class="meta"><b>{H.esc(label)}</b>{H.esc(s)}{H.esc(extra)}</div>'
            f'{H.diff(truth, reading, ("GT", "read"))}')


def _gt_card(gt: dict, images: _Images) -> H.Markup:
    image = images.get(gt.get("image_path"))
    row_pred = gt.get("_pred_polys") or []
    pics = []
    pred_ids = gt.get("split_parts") or ([gt["pred"]] if gt.get("pred") is not None else [])
    for j in pred_ids:
        if j < len(row_pred):
            pics.append(f'<div><div class="path">detected box {j}</div>'
                        f'{_crop_picture(image, row_pred[j], "detected box")}</div>')
    pics.append(f'<div><div class="path">GT box</div>{_crop_picture(image, gt.get("gt_poly"), "GT box")}</div>')
    kept = "" if gt.get("kept") in (None, True) else " · below the threshold"
    lines = [_reading_line("pipeline reading", gt.get("pred_text"), gt["text"], gt.get("pred_score"), kept),
             _reading_line("GT-box reading", gt.get("perfect_text"), gt["text"], gt.get("perfect_score")),
             _reading_line("detected box turned 180°", gt.get("pred_rotated_text"), gt["text"], None),
             _reading_line("GT box turned 180°", gt.get("rotated_text"), gt["text"], None)]
    if gt.get("pred_text") is None:
        lines.insert(0, f'<div class="meta"><b>GT</b> “{H.esc(gt["text"])}” · nothing read there</div>')
    top = (f'<span>{H.badge(_label(gt["outcome"]), BADGE_KIND.get(gt["outcome"], ""))}'
           f'{H.esc(gt.get("detail") or "")}</span><span class="mono">{H.esc(gt["id"])}</span>')
    return H.Markup(
        f'<div class="case" id="{_anchor(gt["id"])}"><div class="top">{top}</div>'
        f'<div class="pic" style="display:flex;flex-wrap:wrap;gap:10px;justify-content:flex-start;'
        f'align-items:flex-end;text-align:left">{"".join(pics)}</div>{"".join(lines)}'
        f'<div class="path">IoU {H.fmt(gt.get("iou"), 2)} · GT height {H.fmt(gt.get("box_height"), 0)} px · '
        f'{H.esc(gt.get("image_path") or "")}</div></div>')


def _image_card(rank: int, row: dict, gts: list[dict], images: _Images) -> H.Markup:
    image = images.get(row.get("image_path"))
    outcomes = {g["index"]: g["outcome"] for g in gts}
    if image is None:
        pic = H.missing_picture(f"image not readable: {row.get('image_path')}")
    else:
        pic = H.img(H.data_uri(draw_image(image, row, outcomes), quality=80), alt=row["image"])
    counts = Counter(g["outcome"] for g in gts)
    n_fp = sum(s == FALSE_POSITIVE for s in row.get("pred_status") or [])
    summary = " · ".join(f"<b>{n}</b> {_label(o)}" for o, n in counts.most_common() if o != CORRECT)
    if n_fp:
        summary += f"{' · ' if summary else ''}<b>{n_fp}</b> false positive{'s' if n_fp != 1 else ''}"
    top = (f'<span class="rank">#{rank}</span><span>{row["n_correct"]}/{row["n_care"]} read correctly'
           f'{" · " + summary if summary else ""}</span>')
    items = []
    failing = [g for g in gts if g["outcome"] != CORRECT]
    if image is not None and failing:
        zooms = "".join(
            f'<div><img src="{H.data_uri(zoom_on(image, row, outcomes, g["index"]), quality=85)}" '
            f'alt="GT {g["index"]}"><div class="path">#{g["index"]} {H.esc(_label(g["outcome"]))}</div></div>'
            for g in failing[:6])
        items.append(f'<div style="display:flex;flex-wrap:wrap;gap:8px;margin:4px 0 6px">{zooms}</div>')
    for g in failing[:12]:
        read = g.get("pred_text")
        read_s = f' → “{H.esc(read)}”' if read is not None else ""
        link = f'<a href="#{_anchor(g["id"])}">#{g["index"]}</a>' if g.get("_shown") else f"#{g['index']}"
        items.append(f'<div class="meta">{link} {H.badge(_label(g["outcome"]), BADGE_KIND.get(g["outcome"], ""))}'
                     f'“{H.esc(g["text"])}”{read_s}</div>')
    if len(failing) > 12:
        items.append(f'<div class="meta">… +{len(failing) - 12} more</div>')
    whole = image is None or text_area(row, image.shape) == (0, 0, image.shape[1], image.shape[0])
    cropped = "" if whole else " · picture cropped to the text area"
    where = f'{row["image"]} · {row.get("image_path", "")} · {row.get("width")}×{row.get("height")}{cropped}'
    return H.Markup(f'<div class="case" id="img-{rank}" data-image="{H.esc(row["image"])}"><div class="top">{top}'
                    f'</div><div class="pic">{pic}</div>'
                    f'{"".join(items)}<div class="path">{H.esc(where)}</div></div>')


def _slice_table(gts: Sequence[dict], bins: H.Bins, value_of) -> H.Markup:
    groups = H.group(gts, lambda g: bins.index(value_of(g)))
    rows = []
    for i in sorted(groups, key=lambda i: (i < 0, i)):
        items = groups[i]
        c = Counter(g["outcome"] for g in items)
        rows.append([bins.label(i), len(items), H.pct(c.get(CORRECT, 0), len(items)),
                     H.bar(c.get(CORRECT, 0), len(items), "ok")] + [c.get(o, 0) for o in OUTCOMES if o != CORRECT])
    return H.table(["slice", "texts", "correct", ""] + [_label(o) for o in OUTCOMES if o != CORRECT], rows,
                   cls="slices", text_columns=(3,))


def _timing_table(timings: dict) -> H.Markup:
    if not timings:
        return H.Markup("")
    n = max(1, timings.get("images", 1))
    rows = [(k, v, v / n) for k, v in sorted((timings.get("stages") or {}).items(), key=lambda kv: -kv[1])]
    head = H.kv_table({"images": timings.get("images"), "wall time (s)": round(timings.get("wall_s", 0.0), 2),
                       "per image (s)": round(timings.get("per_image_s", 0.0), 3),
                       "model inference (s)": round(timings.get("inference_s", 0.0), 2),
                       "inference share of the wall time": f"{100 * timings.get('inference_share', 0.0):.0f}%"})
    return H.Markup(head + H.table(["stage", "seconds", "per image"], rows))


# --- the report ---------------------------------------------------------------------------------------------------
@dataclass
class RunFacts:
    """What the report says about the run besides its rows: where it came from (``info``), the pipeline settings,
    the timings (:func:`summarize_timings`) and the next training set (``NextTrainingSet.close()``)."""

    info: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    next_set: dict = field(default_factory=dict)


@dataclass
class PageOptions:
    title: str = "OCR pipeline: error attribution"
    max_cases: int = 40  # images pictured, worst first
    examples_per_outcome: int = 12


def write_pipeline_report(images: Sequence[dict], gts: Sequence[dict], verdict: Verdict | dict, out_dir: str | Path,
                          *, facts: RunFacts = RunFacts(), page: PageOptions = PageOptions()) -> list[Path]:
    """Write the tables, ``summary.json`` and ``report.html`` (module docstring); returns the files written."""
    import json

    title, max_cases, examples_per_outcome = page.title, page.max_cases, page.examples_per_outcome
    info, settings, timings, next_set = facts.info, facts.settings, facts.timings, facts.next_set
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v = plain(verdict.to_dict() if isinstance(verdict, Verdict) else dict(verdict))
    images = [plain(r) for r in images]
    gts = [plain(g) for g in gts]
    files = [write_jsonl(gts, out_dir / "attribution.jsonl"), write_csv(gts, out_dir / "attribution.csv",
                                                                        columns=GT_COLUMNS),
             write_jsonl(images, out_dir / "images.jsonl")]
    score_thresh = float((settings or {}).get("score_thresh", 0.0))
    summary = {"task": "pipeline", "title": title, "verdict": v, "settings": settings or {}, "timings": timings or {},
               "info": plain(info or {}), "next_training_set": next_set or {}, "n_images": len(images),
               "n_texts": len(gts)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False, default=str),
                                          encoding="utf-8")
    files.append(out_dir / "summary.json")

    by_image: dict[str, list[dict]] = {}
    for g in gts:
        by_image.setdefault(g["image"], []).append(g)
    row_of = {r["image"]: r for r in images}
    for g in gts:
        g["_pred_polys"] = row_of.get(g["image"], {}).get("pred_polys") or []

    # galleries: the examples of each failing outcome, worst first
    from rapidfuzz.distance import Levenshtein

    def worst_first(o: str):
        if o in (MISREAD_REC, MISREAD_CROP, ORIENTATION):
            return lambda g: -Levenshtein.normalized_distance(g.get("pred_text") or "", g["text"])
        if o == BELOW_THRESHOLD:
            return lambda g: g.get("pred_score") or 0.0
        return lambda g: -(g.get("box_height") or 0.0)  # the largest texts lost first

    galleries = {}
    shown: set[str] = set()
    for o in OUTCOMES:
        if o == CORRECT:
            continue
        items = sorted((g for g in gts if g["outcome"] == o), key=worst_first(o))[:examples_per_outcome]
        galleries[o] = items
        shown.update(g["id"] for g in items)
    for g in gts:
        g["_shown"] = g["id"] in shown

    pictures = _Images()
    order = sorted(range(len(images)), key=lambda i: (-images[i]["n_errors"],
                                                      images[i]["n_correct"] / max(images[i]["n_care"], 1), i))
    worst = [i for i in order if images[i]["n_errors"] > 0][:max_cases]
    image_cards = "".join(_image_card(rank, images[i], by_image.get(images[i]["image"], []), pictures)
                          for rank, i in enumerate(worst, 1))

    gallery_html = []
    for o, items in galleries.items():
        if not items:
            continue
        n = v["by_outcome"].get(o, 0)
        cards = "".join(_gt_card(g, pictures) for g in items)
        gallery_html.append(f'<h3 id="gallery-{o}">{H.badge(_label(o), BADGE_KIND.get(o, ""))} {n} '
                            f'text{"s" if n != 1 else ""} — '
                            f'{H.esc(DESCRIPTIONS[o])} (showing {len(items)})</h3><div class="cases">{cards}</div>')

    body = [H.section("verdict", "Verdict: which module to fine-tune first",
                      _verdict_section(v, shown, score_thresh),
                      "Every care GT text gets one outcome; errors are attributed to the module that caused them. "
                      "“Gone if this module were perfect” decides the order: for detection, the lost texts whose GT "
                      "box the recogniser reads right, plus the false positives (the other lost texts would become "
                      "recognition errors).")]
    body.append(H.section("outcomes", "Outcomes", _outcome_table(v)))
    if next_set:
        body.append(H.section("next", "Next training set", H.kv_table({
            "rec crops (label file)": f"{next_set.get('rec_samples', 0)} · {next_set.get('rec_label_file', '')}",
            "det images (label file)": f"{next_set.get('det_images', 0)} · {next_set.get('det_label_file', '')}",
            "text-line orientation crops (class list)": f"{next_set.get('textline_ori_samples', 0)} · "
                                                        f"{next_set.get('textline_ori_label_file', '')}",
            "what each sample is": next_set.get("manifest", "")}),
            "Failing samples with their GT, in PaddleOCR label format (paths relative to each label file): review "
            "them, then add them to data.train."))
    n_bad = sum(1 for r in images if r["n_errors"] > 0)
    body.append(H.section("images", "Worst images", H.Markup(_legend() + f'<div class="cases wide">{image_cards}'
                                                                          "</div>"),
                          f"Most errors first. Showing {len(worst)} of the {n_bad} images with an error "
                          f"({len(images)} analysed). Failing GT boxes are numbered as listed."))
    body.append(H.section("examples", "Examples by outcome", H.Markup("".join(gallery_html) or
                                                                      "<p>No failing text.</p>"),
                          "For each failing text: the crop of the detected box (what the pipeline read) and of the GT "
                          "box (what it would read with perfect detection), each reading against the GT."))
    slices = (f"<h3>By text height (short side of the GT box)</h3>"
              f"{_slice_table(gts, HEIGHT_BINS, lambda g: g.get('box_height'))}"
              f"<h3>By text length (characters)</h3>{_slice_table(gts, LENGTH_BINS, lambda g: len(g['text']))}")
    body.append(H.section("slices", "Slices", H.Markup(slices), "Outcome counts per slice of the care GT texts."))
    run_info = dict(info or {})
    if settings:
        run_info.update({f"setting: {k}": v_ for k, v_ in settings.items()})
    body.append(H.section("run", "Run", H.Markup(H.kv_table(run_info) + _timing_table(timings or {}))))
    subtitle = (f"end-to-end attribution · {len(images)} images · {v['total']} texts · "
                f"{H.pct(v['correct'], v['total'])} read correctly")
    nav = [("verdict", "Verdict"), ("outcomes", "Outcomes"), ("images", "Worst images"), ("examples", "Examples"),
           ("slices", "Slices"), ("run", "Run")]
    files.append(H.write_page(out_dir / "report.html", title, H.Markup("".join(body)), subtitle=subtitle, nav=nav))
    return files


def gt_rows(image_row: dict, outcomes: Sequence[dict]) -> list[dict]:
    """Per-GT rows for the tables: the outcome dicts with the image's identity, the GT polygon and box height."""
    from workbench.reports.det_report import box_geometry

    out = []
    for o in outcomes:
        poly = image_row["gt_polys"][o["index"]]
        height, _, _ = box_geometry(poly)
        out.append({"id": f"{image_row['image']}#{o['index']}", "image": image_row["image"],
                    "label_file": image_row.get("label_file"), "line": image_row.get("line"), **o,
                    "box_height": round(height, 2), "image_path": image_row.get("image_path"),
                    "gt_poly": np.asarray(poly).tolist()})
    return out


def summarize_timings(image_rows: Sequence[dict], wall_s: float) -> dict[str, Any]:
    """Seconds per stage summed over the images, and the share of model inference (stages ``*_infer``)."""
    stages: Counter = Counter()
    for r in image_rows:
        stages.update({k: float(v) for k, v in (r.get("timings") or {}).items() if k != "pipeline"})
    inference = sum(v for k, v in stages.items() if k.endswith("_infer"))
    n = len(image_rows)
    return {"images": n, "wall_s": wall_s, "per_image_s": wall_s / n if n else 0.0, "inference_s": inference,
            "inference_share": inference / wall_s if wall_s > 0 else 0.0, "stages": dict(stages)}
