"""DetEvaluator: hand-computed cases, greedy vs optimal, and equality with a plain re-statement of upstream's rules."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Polygon

from workbench.metrics.det import DetEvaluator


def box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def test_perfect_match():
    ev = DetEvaluator()
    ev.update([box(0, 0, 10, 10), box(20, 0, 30, 10)], [False, False], [box(20, 0, 30, 10), box(0, 0, 10, 10)])
    m = ev.compute()
    assert (m["precision"], m["recall"], m["hmean"]) == (1.0, 1.0, 1.0)
    (rec,) = ev.records()
    assert sorted(rec["matches"]) == [(0, 1, 1.0), (1, 0, 1.0)]
    assert rec["missed_gt"] == [] and rec["false_positives"] == []


def test_one_miss_and_one_false_positive():
    ev = DetEvaluator()
    gts = [box(0, 0, 10, 10), box(20, 0, 30, 10), box(40, 0, 50, 10)]
    preds = [box(0, 0, 10, 10), box(20, 0, 30, 10), box(100, 100, 110, 110)]
    ev.update(gts, [False] * 3, preds)
    m = ev.compute()
    assert m["recall"] == pytest.approx(2 / 3) and m["precision"] == pytest.approx(2 / 3)
    assert m["hmean"] == pytest.approx(2 / 3)
    (rec,) = ev.records()
    assert rec["missed_gt"] == [2] and rec["false_positives"] == [2]


def test_dont_care_overlap_rule():
    ev = DetEvaluator()
    gts = [box(0, 0, 10, 10), box(50, 0, 70, 10)]
    preds = [
        box(0, 0, 10, 10),  # matches the care GT
        box(50, 0, 62, 10),  # 100 % inside the don't-care GT → ignored, not a false positive
        box(60, 0, 80, 10),  # exactly 50 % inside → not ignored (the rule is "more than half") → false positive
    ]
    ev.update(gts, [False, True], preds)
    m = ev.compute()
    assert m["n_gt"] == 1 and m["n_pred"] == 2 and m["n_matched"] == 1
    assert m["recall"] == 1.0 and m["precision"] == 0.5
    (rec,) = ev.records()
    assert rec["dont_care_gt"] == [1] and rec["ignored_pred"] == [1] and rec["false_positives"] == [2]


def test_dont_care_gt_is_never_matched():
    ev = DetEvaluator()
    ev.update([box(0, 0, 10, 10)], [True], [box(0, 0, 10, 10)])  # ignored, so neither TP nor FP
    m = ev.compute()
    assert m["n_gt"] == 0 and m["n_pred"] == 0 and m["n_pred_ignored"] == 1
    assert (m["precision"], m["recall"], m["hmean"]) == (0.0, 0.0, 0.0)  # upstream's 0/0 convention


def test_image_without_gt_counts_unless_upstream_compat():
    def run(compat):
        ev = DetEvaluator(upstream_compat=compat)
        ev.update([box(0, 0, 10, 10)], [False], [box(0, 0, 10, 10)])
        ev.update([], [], [box(0, 0, 5, 5), box(10, 10, 20, 20)], image_id="empty.jpg")
        return ev

    honest = run(False).compute()
    assert honest["precision"] == pytest.approx(1 / 3) and honest["recall"] == 1.0
    assert honest["n_images"] == 2 and honest["n_images_without_gt"] == 1
    ev = run(True)
    compat = ev.compute()
    assert compat["precision"] == 1.0 and compat["n_images"] == 1 and compat["n_images_skipped"] == 1
    assert ev.records()[1]["skipped"] is True and ev.records()[1]["image"] == "empty.jpg"


def test_iou_threshold_is_strict():
    gt = box(0, 0, 10, 10)
    exact_half = box(0, 0, 5, 10)  # intersection 50, union 100 → IoU 0.5 exactly
    ev = DetEvaluator()
    ev.update([gt], [False], [exact_half])
    assert ev.compute()["n_matched"] == 0
    ev = DetEvaluator()
    ev.update([gt], [False], [box(0, 0, 5.01, 10)])  # IoU 0.501
    assert ev.compute()["n_matched"] == 1
    ev = DetEvaluator(iou_threshold=0.49)
    ev.update([gt], [False], [exact_half])
    assert ev.compute()["n_matched"] == 1


def test_invalid_polygons_dropped_but_counted():
    bowtie = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], np.float64)
    ev = DetEvaluator()
    ev.update([box(0, 0, 10, 10), bowtie], [False, False], [box(0, 0, 10, 10), bowtie, [[1, 1], [2, 2]]])
    m = ev.compute()
    assert m["n_gt"] == 1 and m["n_pred"] == 1 and m["hmean"] == 1.0
    assert m["n_invalid_gt"] == 1 and m["n_invalid_pred"] == 2
    (rec,) = ev.records()
    assert rec["invalid_gt"] == [1] and rec["invalid_pred"] == [1, 2]


def test_greedy_and_optimal_differ():
    # p0 overlaps both GT; p1 only GT0. Greedy hands GT0 the first prediction (p0) and strands GT1.
    gt0, gt1 = box(0, 0, 10, 10), box(3, 0, 13, 10)
    p0, p1 = box(1, 0, 11, 10), box(-1, 0, 9, 10)
    iou = lambda a, b: Polygon(a).intersection(Polygon(b)).area / Polygon(a).union(Polygon(b)).area  # noqa: E731
    assert iou(gt0, p0) == pytest.approx(9 / 11) and iou(gt0, p1) == pytest.approx(9 / 11)
    assert iou(gt1, p0) == pytest.approx(8 / 12) and iou(gt1, p1) == pytest.approx(6 / 14)  # < 0.5
    greedy, optimal = DetEvaluator(), DetEvaluator(matching="optimal")
    for ev in (greedy, optimal):
        ev.update([gt0, gt1], [False, False], [p0, p1])
    assert greedy.compute()["n_matched"] == 1
    assert greedy.records()[0]["missed_gt"] == [1] and greedy.records()[0]["false_positives"] == [1]
    assert optimal.compute()["n_matched"] == 2
    assert sorted((g, p) for g, p, _ in optimal.records()[0]["matches"]) == [(0, 1), (1, 0)]


def test_score_threshold_sweep():
    ev = DetEvaluator(score_thresholds=[0.0, 0.5, 0.9])
    ev.update([box(0, 0, 10, 10), box(20, 0, 30, 10)], [False, False],
              [box(0, 0, 10, 10), box(20, 0, 30, 10), box(50, 50, 60, 60)], pred_scores=[0.95, 0.6, 0.3])
    m = ev.compute()
    assert m["hmean_score0.00"] == m["hmean"] == pytest.approx(0.8)  # 2 TP, 1 FP
    assert m["precision_score0.50"] == 1.0 and m["recall_score0.50"] == 1.0
    assert m["recall_score0.90"] == 0.5
    assert m["best_hmean"] == 1.0 and m["best_score_threshold"] == 0.5
    with pytest.raises(ValueError, match="pred_scores"):
        ev.update([box(0, 0, 1, 1)], [False], [box(0, 0, 1, 1)])


def test_mismatched_lengths_are_errors():
    ev = DetEvaluator()
    with pytest.raises(ValueError):
        ev.update([box(0, 0, 1, 1)], [False, True], [])
    with pytest.raises(ValueError):
        ev.update([], [], [box(0, 0, 1, 1)], pred_scores=[0.1, 0.2])


# -- against a plain re-statement of upstream's algorithm ---------------------------------------------------------


def upstream_reference(images, iou_thr=0.5, area_thr=0.5):
    """Upstream's per-image evaluation written out naively (one shapely Polygon per pair), micro-averaged.

    Images with no GT entry are skipped (upstream never evaluates them).
    """
    matched_sum = gt_sum = det_sum = 0
    for gts, ignores, preds in images:
        if len(gts) == 0:
            continue
        gt_pols, dc_gt = [], []
        for points, ignore in zip(gts, ignores):
            poly = Polygon(points)
            if not poly.is_valid or not poly.is_simple:
                continue
            gt_pols.append(points)
            if ignore:
                dc_gt.append(len(gt_pols) - 1)
        det_pols, dc_det = [], []
        for points in preds:
            poly = Polygon(points)
            if not poly.is_valid or not poly.is_simple:
                continue
            det_pols.append(points)
            for d in dc_gt:
                inter = Polygon(gt_pols[d]).intersection(poly).area
                if (0 if poly.area == 0 else inter / poly.area) > area_thr:
                    dc_det.append(len(det_pols) - 1)
                    break
        matched = 0
        gt_taken, det_taken = set(), set()
        for g in range(len(gt_pols)):
            for d in range(len(det_pols)):
                if g in gt_taken or d in det_taken or g in dc_gt or d in dc_det:
                    continue
                pd, pg = Polygon(det_pols[d]), Polygon(gt_pols[g])
                if pd.intersection(pg).area / pd.union(pg).area > iou_thr:
                    gt_taken.add(g)
                    det_taken.add(d)
                    matched += 1
        matched_sum += matched
        gt_sum += len(gt_pols) - len(dc_gt)
        det_sum += len(det_pols) - len(dc_det)
    recall = matched_sum / gt_sum if gt_sum else 0
    precision = matched_sum / det_sum if det_sum else 0
    hmean = 0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
    return {"precision": precision, "recall": recall, "hmean": hmean, "n_matched": matched_sum}


def random_scene(rng):
    """GT quads on a grid with noisy, duplicated, missing and stray predictions; some don't-care and bow-ties."""
    n_gt = int(rng.integers(0, 8))
    gts, ignores, preds = [], [], []
    for _ in range(n_gt):
        cx, cy = rng.uniform(0, 300, 2)
        w, h = rng.uniform(8, 60), rng.uniform(6, 25)
        angle = rng.uniform(-0.4, 0.4)
        c, s = np.cos(angle), np.sin(angle)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2 @ np.array([[c, s], [-s, c]]) + [cx, cy]
        corners = np.round(corners)  # integer labels, like real files
        if rng.random() < 0.05:
            corners = corners[[0, 2, 1, 3]]  # self-intersecting annotation
        gts.append(corners)
        ignores.append(bool(rng.random() < 0.2))
        for _ in range(int(rng.integers(0, 3))):  # 0-2 predictions per GT, jittered
            preds.append(corners + rng.normal(0, rng.uniform(0.5, 6), corners.shape))
    for _ in range(int(rng.integers(0, 4))):  # strays
        x, y = rng.uniform(0, 300, 2)
        preds.append(box(x, y, x + rng.uniform(5, 50), y + rng.uniform(5, 20)))
    order = rng.permutation(len(preds))
    return gts, ignores, [preds[i] for i in order]


def test_equals_upstream_reference_on_random_scenes():
    rng = np.random.default_rng(2024)
    images = [random_scene(rng) for _ in range(150)]
    ev = DetEvaluator(upstream_compat=True)
    for gts, ignores, preds in images:
        ev.update(gts, ignores, preds)
    ours, ref = ev.compute(), upstream_reference(images)
    assert ours["n_matched"] == ref["n_matched"] > 100
    for key in ("precision", "recall", "hmean"):
        assert ours[key] == ref[key]  # exact: same shapely operations, same order
    assert ours["n_invalid_gt"] > 0 and ours["n_pred_ignored"] > 0 and ours["n_images_skipped"] > 0
    # optimal matching never finds fewer matches than greedy
    opt = DetEvaluator(upstream_compat=True, matching="optimal")
    for gts, ignores, preds in images:
        opt.update(gts, ignores, preds)
    assert opt.compute()["n_matched"] >= ours["n_matched"]


def test_records_are_consistent_with_totals():
    rng = np.random.default_rng(5)
    ev = DetEvaluator()
    for _ in range(40):
        ev.update(*random_scene(rng))
    m, rows = ev.compute(), ev.records()
    assert sum(r["matched"] for r in rows) == m["n_matched"]
    for r in rows:
        assert r["gt_care"] == r["matched"] + len(r["missed_gt"])
        assert r["pred_care"] == r["matched"] + len(r["false_positives"])
        assert all(iou > 0.5 for _, _, iou in r["matches"])


def test_box_geometry_says_which_way_matched_boxes_are_off():
    """Same IoU either way; the geometry keys tell boxes cut inside the labelled text from boxes with a margin."""
    tight, loose = DetEvaluator(), DetEvaluator()
    gts = [box(0, 0, 100, 20), box(0, 40, 100, 60), box(0, 80, 100, 100)]
    tight.update(gts, None, [box(0, 2, 100, 18), box(0, 42, 100, 58), box(5, 82, 95, 98)])  # 0.8, 0.8, 0.72
    loose.update(gts, None, [box(0, -2, 100, 22), box(0, 38, 100, 62), box(-5, 78, 105, 102)])  # 1.2, 1.2, 1.32
    t, lo = tight.compute(), loose.compute()
    assert t["n_matched"] == lo["n_matched"] == 3
    assert t["box_area_ratio"] == pytest.approx(0.8) and t["gt_coverage"] == pytest.approx(0.8)
    assert lo["box_area_ratio"] == pytest.approx(1.2) and lo["gt_coverage"] == pytest.approx(1.0)
    empty = DetEvaluator()
    empty.update(gts, None, [])
    assert "box_area_ratio" not in empty.compute() and "gt_coverage" not in empty.compute()
