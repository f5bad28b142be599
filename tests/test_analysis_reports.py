"""Module reports (rec and det) on real samples with planted errors: order, counts, tables, self-containedness."""

from __future__ import annotations

import html
import json
import re
import time

import cv2
import pytest

from analysis_samples import (
    care_indices, det_rows, det_samples, far_box, perfect_predictions, rec_rows, rec_samples, shifted,
)
from workbench.reports.det_report import write_det_report
from workbench.reports.records import plain_rows, read_csv, read_jsonl
from workbench.reports.rec_report import write_rec_report


def case_ids(page: str) -> list[str]:
    return [html.unescape(k) for k in re.findall(r'data-case-id="([^"]*)"', page)]


def external_references(page: str) -> list[str]:
    """Anything a browser would fetch from elsewhere: src/href to a URL, CSS imports or url()s, scripts."""
    found = re.findall(r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//[^"\'\s>]*', page, flags=re.I)
    found += re.findall(r"@import[^;]*", page, flags=re.I)
    found += re.findall(r"url\(\s*['\"]?(?!data:)[^)]*\)", page, flags=re.I)
    found += re.findall(r"<script|<link\b|<iframe", page, flags=re.I)
    return found


def slice_rows(page: str, heading: str) -> dict[str, int]:
    """label → n of the slice table under ``<h3>By {heading}</h3>``."""
    start = page.index(f"<h3>By {html.escape(heading)}</h3>")
    table = page[start : page.index("</table>", start)]
    return {html.unescape(label): int(n) for label, n in
            re.findall(r'<tr[^>]*><td>([^<]*)</td><td class="num">(\d+)</td>', table)}


# --- recognition ------------------------------------------------------------------------------------------------
def length_bin(n: int) -> str:
    for lo, hi, label in ((0, 0, "0"), (1, 1, "1"), (2, 3, "2–3"), (4, 6, "4–6"), (7, 10, "7–10"),
                          (11, 15, "11–15"), (16, 25, "16–25")):
        if lo <= n <= hi:
            return label
    return "≥ 26"


@pytest.fixture(scope="module")
def rec_setup(data_dir):
    samples = rec_samples(data_dir, 20)
    gts = [s["gt"] for s in samples]
    assert gts[5] == "CUTTING CHARGES" and gts[9] == "GST" and gts[12] == "TAX INVOICE" and gts[17] == "SELANGOR"
    preds = {
        5: gts[5][:-4],  # 4 deletions
        9: gts[9].lower(),  # case only: 3 substitutions
        12: "##" + gts[12][2:],  # 2 substitutions
        17: gts[17] + "~",  # 1 insertion
    }
    scores = {0: 0.3, 1: 0.5, 17: 0.4}
    dictionary = sorted({c for t in gts for c in t} - {":"})
    rows, metrics = rec_rows(samples, preds, scores, dictionary=dictionary)
    rows[2]["crop"] = cv2.imread(rows[2]["image_path"])  # a crop that is not a file of its own (cut from a det image)
    rows[2]["image_path"] = "/nonexistent/cut-from-a-det-image.png"
    return samples, rows, metrics


def test_rec_report_files_order_and_counts(rec_setup, tmp_path):
    samples, rows, metrics = rec_setup
    files = write_rec_report(rows, metrics, tmp_path, title="rec test", info={"model": "PP-OCRv5_mobile_rec"})
    assert sorted(f.name for f in files) == ["records.csv", "records.jsonl", "report.html", "summary.json"]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")

    key = lambda i: f"{samples[i]['label_file']}:{samples[i]['line']}"  # noqa: E731
    ids = case_ids(page)
    # wrong by edit distance (4, 3, 2, 1), then correct by low score (0.3, 0.5), then the rest in input order
    expected_head = [key(i) for i in (5, 9, 12, 17, 0, 1)]
    rest = [key(i) for i in range(20) if i not in (5, 9, 12, 17, 0, 1)]
    assert ids == expected_head + rest

    assert page.count("<img ") == 20 and "image not readable" not in page  # the in-memory crop is pictured too
    assert external_references(page) == []
    assert "20 samples · 4 wrong (honest)" in page

    gts = [s["gt"] for s in samples]
    lengths = slice_rows(page, "text length (characters)")
    expected = {}
    for t in gts:
        expected[length_bin(len(t))] = expected.get(length_bin(len(t)), 0) + 1
    assert lengths == expected
    classes = slice_rows(page, "character class")
    assert classes["digits only"] == sum(t.replace(" ", "").isdigit() for t in gts)
    assert classes["letters only"] == sum(t.replace(" ", "").isalpha() for t in gts)
    assert classes["contains a space (overlaps the above)"] == sum(" " in t for t in gts)
    assert sum(v for k, v in classes.items() if not k.startswith("contains")) == 20
    assert sum(slice_rows(page, "crop height").values()) == 20
    aspect = slice_rows(page, "crop aspect ratio (width / height)")
    assert aspect.get("≥ 16", 0) == sum(s["width"] / s["height"] >= 16 for s in samples)

    assert "Substitutions (5)" in page and "Deletions (4)" in page and "Insertions (1)" in page
    with_colon = sum(":" in t for t in gts)
    assert with_colon == 2
    assert f"Label characters missing from the dictionary ({with_colon} samples)" in page
    assert "acc (upstream)" in page and "acc_honest_nocase" in page

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["task"] == "rec" and summary["metrics"]["acc_honest"] == pytest.approx(16 / 20)


def test_rec_records_round_trip(rec_setup, tmp_path):
    _, rows, metrics = rec_setup
    write_rec_report(rows, metrics, tmp_path, title="rec test")
    assert read_jsonl(tmp_path / "records.jsonl") == plain_rows(rows)
    assert "crop" not in read_jsonl(tmp_path / "records.jsonl")[2]
    table = read_csv(tmp_path / "records.csv")
    assert len(table) == len(rows)
    for got, row in zip(table, rows):
        assert got["gt"] == row["gt"] and got["pred"] == row["pred"]
        assert int(got["edit_distance"]) == row["edit_distance"]
        assert got["correct_honest"] == str(row["correct_honest"])
        assert float(got["score"]) == pytest.approx(row["score"])


def test_rec_report_shows_at_most_max_cases(rec_setup, tmp_path):
    samples, rows, metrics = rec_setup
    write_rec_report(rows, metrics, tmp_path, title="rec test", max_cases=3)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert case_ids(page) == [f"{samples[i]['label_file']}:{samples[i]['line']}" for i in (5, 9, 12)]
    assert page.count("<img ") == 3


def test_rec_report_of_a_large_set_takes_seconds(rec_setup, tmp_path):
    _, rows, metrics = rec_setup
    big = []
    for rep in range(225):  # 4,500 rows
        for r in rows:
            big.append({**r, "line": r["line"] + 20 * rep})
    t0 = time.perf_counter()
    write_rec_report(big, metrics, tmp_path, title="big")
    elapsed = time.perf_counter() - t0
    assert elapsed < 10, elapsed
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert len(case_ids(page)) == 200 and len(read_jsonl(tmp_path / "records.jsonl")) == 4500


# --- detection --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def det_setup(data_dir):
    samples = det_samples(data_dir)
    preds = [perfect_predictions(s) for s in samples]
    c1, c3 = care_indices(samples[1]), care_indices(samples[3])
    preds[1] = [samples[1]["gt_polys"][i] for i in c1[1:]]  # image 1 misses its first care box
    preds[2] = preds[2] + [far_box(5, 690), far_box(1200, 690)]  # image 2: two false positives
    preds[3] = [samples[3]["gt_polys"][i] if i != c3[1] else shifted(samples[3]["gt_polys"][i], 400) for i in c3]
    rows, metrics = det_rows(samples, preds)
    planted_missed = {(1, c1[0]), (3, c3[1])}
    got_missed = {(k, g) for k, r in enumerate(rows) for g in r["missed_gt"]}
    assert got_missed == planted_missed  # the planting did what it says
    assert [len(r["false_positives"]) for r in rows] == [0, 0, 2, 1, 0]
    return samples, rows, metrics, planted_missed


def test_det_report_files_order_and_counts(det_setup, tmp_path):
    samples, rows, metrics, planted_missed = det_setup
    files = write_det_report(rows, metrics, tmp_path, title="det test")
    assert sorted(f.name for f in files) == ["boxes.csv", "records.csv", "records.jsonl", "report.html",
                                             "summary.json"]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    hmeans = [r["hmean"] for r in rows]
    assert hmeans[3] < hmeans[2] < hmeans[1] < hmeans[0] == hmeans[4] == 1.0
    key = lambda i: f"{samples[i]['label_file']}:{samples[i]['line']}"  # noqa: E731
    assert case_ids(page) == [key(i) for i in (3, 2, 1, 0, 4)]
    assert page.count("<img ") == 5 and external_references(page) == []
    for colour_name in ("matched GT", "missed GT", "false positive", "don&#x27;t care"):
        assert colour_name in page

    per_image = slice_rows(page, "GT boxes per image (care)")
    cares = [len(care_indices(s)) for s in samples]
    assert per_image == {"1–5": sum(1 <= c <= 5 for c in cares), "6–10": sum(6 <= c <= 10 for c in cares)}
    heights = slice_rows(page, "box height (short side of the min-area rectangle)")
    assert sum(heights.values()) == sum(cares)
    sizes = slice_rows(page, "image size (long side)")
    assert sizes == {"1280–1920 px": 5}

    boxes = read_csv(tmp_path / "boxes.csv")
    assert len(boxes) == sum(len(s["gt_polys"]) for s in samples)
    missed = {(next(k for k in range(5) if key(k) == b["image"]), int(b["index"])) for b in boxes
              if b["status"] == "missed"}
    assert missed == planted_missed
    assert sum(b["status"] == "dont-care" for b in boxes) == sum(sum(s["gt_ignore"]) for s in samples)
    assert sum(b["status"] == "matched" for b in boxes) == metrics["n_matched"]
    for b in boxes:
        if b["status"] == "matched":
            assert float(b["iou"]) > 0.5 and float(b["height"]) > 0 and float(b["width"]) >= float(b["height"])
    shifted_box = next(b for b in boxes if b["status"] == "missed" and b["image"] == key(3))
    assert float(shifted_box["iou"]) < 0.5  # the best IoU any prediction reached


def test_det_records_round_trip(det_setup, tmp_path):
    _, rows, metrics, _ = det_setup
    write_det_report(rows, metrics, tmp_path, title="det test")
    assert read_jsonl(tmp_path / "records.jsonl") == plain_rows(rows)
    table = read_csv(tmp_path / "records.csv")
    assert [float(t["hmean"]) for t in table] == pytest.approx([r["hmean"] for r in rows])
    assert [json.loads(t["missed_gt"]) for t in table] == [r["missed_gt"] for r in rows]
    assert [json.loads(t["gt_polys"]) for t in table] == [plain_rows([r])[0]["gt_polys"] for r in rows]


def test_det_report_of_a_large_set_takes_seconds(det_setup, tmp_path):
    _, rows, metrics, _ = det_setup
    big = [{**r, "line": r["line"] + 1000 * rep} for rep in range(100) for r in rows]  # 500 images
    t0 = time.perf_counter()
    write_det_report(big, metrics, tmp_path, title="big")
    elapsed = time.perf_counter() - t0
    assert elapsed < 20, elapsed
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert len(case_ids(page)) == 100
