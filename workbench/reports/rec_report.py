"""The text-recognition report: where a recognizer goes wrong, on which kinds of crops, and with which characters.

``write_rec_report(rows, metrics, out_dir, title=...)`` writes, into ``out_dir``:

* ``records.jsonl`` / ``records.csv`` — one row per sample (the rows given, without pixel columns);
* ``summary.json`` — task, title, info, metrics (what ``wb compare`` reads besides the records);
* ``report.html`` — self-contained: metric summary (upstream and honest keys), the worst cases pictured (wrong
  ones by edit distance, then by low score; GT over prediction with the differences coloured), error kinds,
  slices (text length, crop aspect ratio, character class, crop height, score), the most confused characters,
  and label characters the dictionary lacks.

Rows are :meth:`workbench.metrics.rec.RecMetric.records` rows extended by the task with ``image_path``,
``label_file``, ``line``, ``width``, ``height`` (of the original crop) and optionally ``crop`` (the crop as an
``HxWx3`` uint8 BGR array, when it is not a file of its own). Slices and confusions use every row; only the shown
cases are decoded into thumbnails, so a set of thousands of crops reports in about a second.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from rapidfuzz.distance import Levenshtein

from workbench.reports import html as H
from workbench.reports.records import display_path, sample_key, short_key, write_record_files

#: the fixed evaluation input of PP-OCR rec models; wider crops are squeezed horizontally by the fixed resize
FIXED_EVAL_RATIO = 320 / 48

LENGTH_BINS = H.Bins((1, 2, 4, 7, 11, 16, 26), integer=True)
ASPECT_BINS = H.Bins((1.0, 2.0, 4.0, round(FIXED_EVAL_RATIO, 2), 10.0, 16.0))
HEIGHT_BINS = H.Bins((16, 24, 32, 48, 64, 96), " px")
SCORE_BINS = H.Bins((0.5, 0.7, 0.8, 0.9, 0.95, 0.99))

UPSTREAM_KEYS = ("acc", "norm_edit_dis", "n_upstream", "n_upstream_excluded")
HONEST_KEYS = ("acc_honest", "acc_honest_nocase", "ned_honest", "ned_honest_nocase", "cer_honest", "n")

CHAR_CLASSES = ("empty", "digits only", "letters only", "letters + digits", "with symbols", "with CJK")


# --- classification of labels and errors -----------------------------------------------------------------------
def is_cjk(ch: str) -> bool:
    """Han ideographs, kana, hangul, CJK punctuation and full-width forms."""
    o = ord(ch)
    return (
        0x3000 <= o <= 0x30FF  # CJK punctuation, hiragana, katakana
        or 0x3400 <= o <= 0x4DBF  # Han extension A
        or 0x4E00 <= o <= 0x9FFF  # Han
        or 0xAC00 <= o <= 0xD7AF  # hangul syllables
        or 0xF900 <= o <= 0xFAFF  # Han compatibility
        or 0xFF00 <= o <= 0xFFEF  # full-width / half-width forms
        or 0x20000 <= o <= 0x3FFFF  # Han extensions B+
    )


def char_class(text: str) -> str:
    """One of :data:`CHAR_CLASSES` for a label (spaces disregarded; see :func:`has_space` for those)."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return "empty"
    if any(is_cjk(c) for c in chars):
        return "with CJK"
    digits = sum(c.isdigit() for c in chars)
    letters = sum(c.isalpha() for c in chars)
    if digits + letters < len(chars):
        return "with symbols"
    if letters == 0:
        return "digits only"
    return "letters only" if digits == 0 else "letters + digits"


def has_space(text: str) -> bool:
    return " " in text


def error_kind(row: dict) -> str | None:
    """Why a sample is wrong (honest comparison), most benign explanation first; ``None`` when it is right."""
    gt, pred = row["gt"], row["pred"]
    if gt == pred:
        return None
    if row.get("missing_chars"):
        return "label has characters outside the dictionary"
    if gt.lower() == pred.lower():
        return "case only"
    if gt.replace(" ", "") == pred.replace(" ", ""):
        return "spaces only"
    if gt.replace(" ", "").lower() == pred.replace(" ", "").lower():
        return "case and spaces only"
    if not pred:
        return "nothing recognised"
    return "characters"


def confusions(rows: Sequence[dict]) -> tuple[Counter, Counter, Counter]:
    """Character-level errors over all rows: substitutions ``(gt, pred)``, deletions (GT characters the
    prediction lacks) and insertions (prediction characters the GT lacks)."""
    subs, dels, ins = Counter(), Counter(), Counter()
    for row in rows:
        gt, pred = row["gt"], row["pred"]
        if gt == pred:
            continue
        for op in Levenshtein.editops(gt, pred):
            if op.tag == "replace":
                subs[(gt[op.src_pos], pred[op.dest_pos])] += 1
            elif op.tag == "delete":
                dels[gt[op.src_pos]] += 1
            else:
                ins[pred[op.dest_pos]] += 1
    return subs, dels, ins


def case_order(rows: Sequence[dict]) -> list[int]:
    """Row indices worst first: wrong (honest) before right; wrong ones by edit distance (largest first), then
    normalised edit distance; then lowest score first; ties keep the input order."""

    def key(i: int):
        r = rows[i]
        wrong = not r["correct_honest"]
        score = r.get("score")
        score = math.inf if score is None else float(score)
        if wrong:
            return (0, -r["edit_distance"], -r["ned"], score, i)
        return (1, 0, 0, score, i)

    return sorted(range(len(rows)), key=key)


# --- slices ----------------------------------------------------------------------------------------------------
def slice_stats(rows: Sequence[dict]) -> dict[str, Any]:
    n = len(rows)
    up = [r for r in rows if r.get("in_upstream")]
    errors = sum(not r["correct_honest"] for r in rows)
    return {
        "n": n,
        "acc_honest": sum(r["correct_honest"] for r in rows) / n if n else None,
        "acc_honest_nocase": sum(r["correct_nocase"] for r in rows) / n if n else None,
        "ned_honest": 1 - sum(r["ned"] for r in rows) / n if n else None,
        "acc_upstream": sum(r["correct"] for r in up) / len(up) if up else None,
        "errors": errors,
    }


def slices(rows: Sequence[dict]) -> dict[str, list[tuple[str, dict]]]:
    """Per-slice statistics over all rows: name → [(bin label, stats)], bins in their natural order."""

    def binned(bins: H.Bins, value_of) -> list[tuple[str, dict]]:
        groups = H.group(rows, lambda r: bins.index(value_of(r)))
        order = sorted(groups, key=lambda i: (i < 0, i))  # unknown last
        return [(bins.label(i), slice_stats(groups[i])) for i in order]

    def ratio(r):
        w, h = r.get("width"), r.get("height")
        return w / h if w and h else None

    by_class = H.group(rows, lambda r: char_class(r["gt"]))
    classes = [(c, slice_stats(by_class[c])) for c in CHAR_CLASSES if c in by_class]
    spaced = [r for r in rows if has_space(r["gt"])]
    classes.append(("contains a space (overlaps the above)", slice_stats(spaced)))
    out = {
        "text length (characters)": binned(LENGTH_BINS, lambda r: len(r["gt"])),
        "crop aspect ratio (width / height)": binned(ASPECT_BINS, ratio),
        "character class": classes,
        "crop height": binned(HEIGHT_BINS, lambda r: r.get("height")),
    }
    if any(r.get("score") is not None for r in rows):
        out["prediction score"] = binned(SCORE_BINS, lambda r: r.get("score"))
    return out


# --- rendering -------------------------------------------------------------------------------------------------
def _crop_picture(row: dict) -> H.Markup:
    import numpy as np

    image = row.get("crop")
    if image is None:
        image = H.read_image(row.get("image_path"))
    elif not isinstance(image, np.ndarray):
        image = np.asarray(image, dtype=np.uint8)
    if image is None:
        return H.missing_picture(f"image not readable: {row.get('image_path')}")
    thumb = H.fit(image, 400, 72, upscale=3.0)
    return H.img(H.data_uri(thumb, quality=88), alt=str(row.get("gt", "")))


def _case_card(rank: int, row: dict) -> H.Markup:
    key = sample_key(row)
    kind = error_kind(row)
    score = row.get("score")
    top = (f'<span class="rank">#{rank}</span><span>score <b>{H.fmt(score, 3)}</b> · edit distance '
           f'<b>{row["edit_distance"]}</b> · NED {H.fmt(row["ned"], 3)}</span>')
    badges = [H.badge(kind, "ok" if kind is None else "bad") if kind else H.badge("correct", "ok")]
    if row.get("missing_chars"):
        badges.append(H.badge(f"not in dictionary: {row['missing_chars']}", "warn"))
    if not row.get("in_upstream", True):
        badges.append(H.badge("excluded by upstream's metric"))
    elif row.get("correct") and kind:
        badges.append(H.badge("right by upstream's metric", "warn"))
    size = f"{row.get('width')}×{row.get('height')}" if row.get("width") else ""
    image = display_path(row) if row.get("label_file") else None
    where = " · ".join(str(x) for x in (short_key(row), image, size) if x)
    return H.Markup(
        f'<div class="case" id="case-{rank}" data-case-id="{H.esc(key)}"><div class="top">{top}</div>'
        f'<div class="pic">{_crop_picture(row)}</div>{H.diff(row["gt"], row["pred"])}'
        f'<div class="meta">{H.join(badges)}</div><div class="path">{H.esc(where)}</div></div>'
    )


def _slice_table(stats: list[tuple[str, dict]], total: int) -> H.Markup:
    body, classes = [], []
    for label, s in stats:
        body.append((label, s["n"], H.pct(s["n"], total), s["acc_honest"], s["acc_honest_nocase"], s["ned_honest"],
                     s["acc_upstream"], s["errors"], H.bar(s["acc_honest"], kind="ok")))
        classes.append("sep" if label.startswith("contains a space") else "")
    return H.table(["slice", "n", "share", "acc (honest)", "acc (no case)", "1 − NED", "acc (upstream)", "errors",
                    ""], body, cls="slices", row_classes=classes)


def _char(ch: str) -> H.Markup:
    shown = H.SPACE_GLYPH if ch == " " else ch
    return H.Markup(f'{H.esc(shown)} <span class="path">U+{ord(ch):04X}</span>')


def _confusion_tables(subs: Counter, dels: Counter, ins: Counter, top: int = 25) -> H.Markup:
    t_subs = H.table(["GT → predicted", "times"],
                     [(H.Markup(f"{_char(a)} → {_char(b)}"), n) for (a, b), n in subs.most_common(top)], cls="chars")
    t_dels = H.table(["GT character dropped", "times"], [(_char(c), n) for c, n in dels.most_common(top)],
                     cls="chars")
    t_ins = H.table(["character added", "times"], [(_char(c), n) for c, n in ins.most_common(top)], cls="chars")
    return H.Markup(
        '<div class="grid2" style="grid-template-columns:repeat(auto-fit,minmax(260px,1fr))">'
        f"<div><h3>Substitutions ({sum(subs.values())})</h3>{t_subs}</div>"
        f"<div><h3>Deletions ({sum(dels.values())})</h3>{t_dels}</div>"
        f"<div><h3>Insertions ({sum(ins.values())})</h3>{t_ins}</div></div>"
    )


def _missing_chars_table(rows: Sequence[dict]) -> tuple[H.Markup, int]:
    samples: dict[str, list[str]] = {}
    for row in rows:
        for ch in row.get("missing_chars") or "":
            samples.setdefault(ch, []).append(short_key(row))
    affected = sum(bool(r.get("missing_chars")) for r in rows)
    if not samples:
        return H.Markup('<p class="note">Every label character is in the dictionary.</p>'), 0
    body = [(_char(ch), len(keys), H.Markup(H.esc(", ".join(keys[:3]) + (" …" if len(keys) > 3 else ""))))
            for ch, keys in sorted(samples.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    return H.table(["character", "samples", "e.g."], body, cls="chars", text_columns=(2,)), affected


def _metric_summary(metrics: dict) -> H.Markup:
    m = metrics
    headline = H.cards([
        ("acc (upstream)", m.get("acc"), "PaddleOCR's number: spaces removed, target dictionary-filtered"),
        ("acc (honest)", m.get("acc_honest"), "exact match of raw label and prediction"),
        ("acc (no case)", m.get("acc_honest_nocase"), "exact match ignoring case"),
        ("1 − NED (honest)", m.get("ned_honest"), "1 − mean normalised edit distance"),
        ("CER (honest)", m.get("cer_honest"), "edit distance / label characters"),
        ("samples", m.get("n"), f"{H.fmt(m.get('n_upstream_excluded'))} not evaluated by upstream"),
    ])
    upstream = {k: m[k] for k in UPSTREAM_KEYS if k in m}
    honest = {k: m[k] for k in HONEST_KEYS if k in m}
    other = {k: v for k, v in m.items() if k not in upstream and k not in honest}
    parts = [f"<div><h3>Upstream (PaddleOCR RecMetric)</h3>{H.kv_table(upstream)}</div>",
             f"<div><h3>Honest</h3>{H.kv_table(honest)}</div>"]
    if other:
        parts.append(f"<div><h3>Other</h3>{H.kv_table(other)}</div>")
    return H.Markup(headline + '<div class="grid2" style="grid-template-columns:repeat(auto-fit,minmax(300px,1fr))">'
                    + "".join(parts) + "</div>")


# --- the report ------------------------------------------------------------------------------------------------
def write_rec_report(
    rows: Sequence[dict],
    metrics: dict,
    out_dir: str | Path,
    *,
    title: str,
    info: dict | None = None,
    max_cases: int = 200,
) -> list[Path]:
    """Write the recognition report (see the module docstring); returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    table_rows, files = write_record_files(rows, out_dir, task="rec", title=title, metrics=metrics, info=info)

    n = len(rows)
    order = case_order(rows)
    n_wrong = sum(not r["correct_honest"] for r in rows)
    shown = order[:max_cases]
    cards_html = "".join(_case_card(rank, rows[i]) for rank, i in enumerate(shown, 1))
    kinds = Counter(error_kind(r) for r in rows if not r["correct_honest"])
    subs, dels, ins = confusions(rows)
    missing_table, n_missing = _missing_chars_table(rows)

    body = []
    if info:
        body.append(H.section("info", "Run", H.kv_table(info)))
    body.append(H.section("summary", "Metrics", _metric_summary(metrics),
                          "Upstream keys reproduce PaddleOCR's published numbers; honest keys count spaces, case and "
                          "characters the dictionary cannot produce, on every sample."))
    kinds_table = H.table(["error kind", "samples", "share of errors", ""],
                          [(k, c, H.pct(c, n_wrong), H.bar(c, n_wrong, "bad")) for k, c in kinds.most_common()])
    body.append(H.section("errors", f"Errors by kind ({n_wrong} of {n} samples wrong)", kinds_table,
                          "Most benign explanation first: a case-only error is not counted as a space error."))
    note = (f"Worst first: wrong samples by edit distance, then by low score; then the least confident correct ones. "
            f"Showing {len(shown)} of {n} ({min(n_wrong, len(shown))} wrong). Red: GT characters missed or "
            f"substituted; yellow: what was read instead; orange: extra characters; ␣ is a space.")
    body.append(H.section("cases", "Worst cases", H.Markup(f'<div class="cases">{cards_html}</div>'), note))
    slice_html = "".join(f"<h3>By {H.esc(name)}</h3>{_slice_table(stats, n)}" for name, stats in slices(rows).items())
    body.append(H.section("slices", "Slices", H.Markup(slice_html),
                          f"Every sample counted. Crops wider than {FIXED_EVAL_RATIO:.2f}:1 are squeezed by the fixed "
                          "48×320 evaluation resize; crops lower than 48 px are upscaled."))
    body.append(H.section("confusions", "Most confused characters", _confusion_tables(subs, dels, ins),
                          "Counted over all samples from a minimal edit alignment of GT and prediction."))
    body.append(H.section("dictionary", f"Label characters missing from the dictionary ({n_missing} samples)",
                          missing_table, "A sample whose label holds one of these can never be recognised exactly."))
    subtitle = f"text recognition · {n} samples · {n_wrong} wrong (honest)"
    nav = [("summary", "Metrics"), ("errors", "Errors"), ("cases", "Worst cases"), ("slices", "Slices"),
           ("confusions", "Confusions"), ("dictionary", "Dictionary")]
    files.append(H.write_page(out_dir / "report.html", title, H.Markup("".join(body)), subtitle=subtitle, nav=nav))
    return files
