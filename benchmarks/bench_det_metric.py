"""Time DetEvaluator on a synthetic evaluation set and compare with a naive upstream-style loop.

    PYTHONPATH=. python benchmarks/bench_det_metric.py [--images 500] [--gt 10] [--pred 15]

The set mimics a det eval: ~10 GT quads and ~15 predictions per image (jittered copies of GT + strays, some
don't-care). Prints seconds for update+compute in each matching mode and for the naive per-pair loop upstream
uses (one shapely Polygon per pair), and checks that the numbers agree.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from shapely.geometry import Polygon

from workbench.metrics.det import DetEvaluator


def make_set(n_images: int, n_gt: int, n_pred: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        gts, ignores, preds = [], [], []
        for _ in range(n_gt):
            x, y = rng.uniform(0, 1200), rng.uniform(0, 680)
            w, h = rng.uniform(20, 120), rng.uniform(10, 40)
            quad = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
            gts.append(quad)
            ignores.append(bool(rng.random() < 0.1))
        for i in range(n_pred):
            if i < n_gt:
                preds.append(gts[i] + rng.normal(0, 3, (4, 2)))
            else:
                x, y = rng.uniform(0, 1200), rng.uniform(0, 680)
                preds.append(np.array([[x, y], [x + 60, y], [x + 60, y + 20], [x, y + 20]]))
        images.append((gts, ignores, preds, rng.random(n_pred)))
    return images


def naive_upstream(images) -> int:
    """Upstream's evaluate_image loop structure: IoU of every pair from fresh Polygons, then greedy matching."""
    matched = 0
    for gts, ignores, preds, _ in images:
        ok = lambda q: Polygon(q).is_valid and Polygon(q).is_simple  # noqa: E731 (jitter can fold a quad)
        kept = [(g, ig) for g, ig in zip(gts, ignores) if ok(g)]
        gts, ignores = [g for g, _ in kept], [ig for _, ig in kept]
        preds = [p for p in preds if ok(p)]
        dc = [i for i, ig in enumerate(ignores) if ig]
        dc_pred = set()
        for d, p in enumerate(preds):
            for g in dc:
                if Polygon(gts[g]).intersection(Polygon(p)).area / Polygon(p).area > 0.5:
                    dc_pred.add(d)
                    break
        iou = np.empty((len(gts), len(preds)))
        for g, gt in enumerate(gts):
            for d, p in enumerate(preds):
                inter = Polygon(p).intersection(Polygon(gt)).area
                iou[g, d] = inter / Polygon(p).union(Polygon(gt)).area
        taken_g, taken_d = set(), set()
        for g in range(len(gts)):
            for d in range(len(preds)):
                if g in taken_g or d in taken_d or g in dc or d in dc_pred:
                    continue
                if iou[g, d] > 0.5:
                    taken_g.add(g)
                    taken_d.add(d)
                    matched += 1
    return matched


def time_evaluator(images, **kwargs):
    start = time.perf_counter()
    ev = DetEvaluator(**kwargs)
    for gts, ignores, preds, scores in images:
        ev.update(gts, ignores, preds, pred_scores=scores)
    metrics = ev.compute()
    return time.perf_counter() - start, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--gt", type=int, default=10)
    parser.add_argument("--pred", type=int, default=15)
    args = parser.parse_args()
    images = make_set(args.images, args.gt, args.pred)
    print(f"{args.images} images, {args.gt} GT and {args.pred} predictions each")

    seconds, m = time_evaluator(images)
    print(f"DetEvaluator(matching='upstream'):            {seconds:6.3f} s   hmean {m['hmean']:.4f}")
    seconds, m_opt = time_evaluator(images, matching="optimal")
    print(f"DetEvaluator(matching='optimal'):             {seconds:6.3f} s   hmean {m_opt['hmean']:.4f}")
    sweep = [round(t, 2) for t in np.arange(0.0, 1.0, 0.1)]
    seconds, m_sweep = time_evaluator(images, score_thresholds=sweep)
    print(f"DetEvaluator + 10-threshold score sweep:      {seconds:6.3f} s   best hmean {m_sweep['best_hmean']:.4f}")

    start = time.perf_counter()
    naive_matched = naive_upstream(images)
    seconds = time.perf_counter() - start
    print(f"naive per-pair loop (upstream's structure):   {seconds:6.3f} s")
    assert naive_matched == m["n_matched"], (naive_matched, m["n_matched"])
    print(f"matched pairs agree: {naive_matched}")


if __name__ == "__main__":
    main()
