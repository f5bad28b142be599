"""DB target generation speed: ms per 640×640 sample with ~20 text-line polygons.

Compares ``workbench.data.db_targets.make_db_targets`` with a straightforward implementation of the same
algorithm written the way upstream's MakeBorderMap is (every edge evaluated over the polygon's whole expanded
bounding box on full 2-D coordinate grids), and checks that both give the same maps.

    PYTHONPATH=. python benchmarks/bench_db_targets.py [--samples 20] [--polygons 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

from workbench.data.db_targets import draw_shrink_map, make_db_targets


def loop_threshold_map(polys, ignore_tags, h, w, shrink_ratio=0.4, thresh_min=0.3, thresh_max=0.7):
    """The plain version: per polygon, per edge, the distance over the whole expanded box."""
    canvas = np.zeros((h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    for poly, ignored in zip(polys, ignore_tags):
        if ignored:
            continue
        poly = np.array(poly)
        shape = Polygon(poly)
        if shape.area <= 0:
            continue
        dist = shape.area * (1 - np.power(shrink_ratio, 2)) / shape.length
        offsetter = pyclipper.PyclipperOffset()
        offsetter.AddPath(poly, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        expanded = np.array(offsetter.Execute(dist)[0])
        cv2.fillPoly(mask, [expanded.astype(np.int32)], 1.0)
        xmin, ymin = expanded.min(axis=0)
        xmax, ymax = expanded.max(axis=0)
        bw, bh = xmax - xmin + 1, ymax - ymin + 1
        poly[:, 0] -= xmin
        poly[:, 1] -= ymin
        xs = np.broadcast_to(np.arange(bw, dtype=np.float64)[None, :], (bh, bw))
        ys = np.broadcast_to(np.arange(bh, dtype=np.float64)[:, None], (bh, bw))
        per_edge = np.zeros((len(poly), bh, bw), np.float32)
        for i in range(len(poly)):
            a, b = poly[i], poly[(i + 1) % len(poly)]
            sq_a = np.square(xs - a[0]) + np.square(ys - a[1])
            sq_b = np.square(xs - b[0]) + np.square(ys - b[1])
            sq_ab = np.square(a[0] - b[0]) + np.square(a[1] - b[1])
            with np.errstate(divide="ignore", invalid="ignore"):
                cos = (sq_ab - sq_a - sq_b) / (2 * np.sqrt(sq_a * sq_b))
                res = np.sqrt(sq_a * sq_b * np.nan_to_num(1 - np.square(cos)) / sq_ab)
            res[cos < 0] = np.sqrt(np.fmin(sq_a, sq_b))[cos < 0]
            per_edge[i] = np.clip(res / dist, 0, 1)
        nearest = per_edge.min(axis=0)
        x0, x1 = min(max(0, xmin), w - 1), min(max(0, xmax), w - 1)
        y0, y1 = min(max(0, ymin), h - 1), min(max(0, ymax), h - 1)
        canvas[y0 : y1 + 1, x0 : x1 + 1] = np.fmax(
            1 - nearest[y0 - ymin : y1 - ymin + 1, x0 - xmin : x1 - xmin + 1], canvas[y0 : y1 + 1, x0 : x1 + 1]
        )
    return canvas * (thresh_max - thresh_min) + thresh_min, mask


def random_text_lines(rng: np.random.Generator, n: int, size: int = 640) -> list[np.ndarray]:
    """Rotated rectangles shaped like text lines (height 12–60 px, 2–12× as long, ±30°), float32."""
    polys = []
    for _ in range(n):
        hgt = rng.uniform(12, 60)
        length = hgt * rng.uniform(2, 12)
        angle = np.deg2rad(rng.uniform(-30, 30))
        cx, cy = rng.uniform(0, size, 2)
        corners = np.array([[-length, -hgt], [length, -hgt], [length, hgt], [-length, hgt]]) / 2
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        polys.append((corners @ rot.T + (cx, cy)).astype(np.float32))
    return polys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--polygons", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    samples = [random_text_lines(rng, args.polygons) for _ in range(args.samples)]
    tags = [False] * args.polygons

    t_ours = t_loop = 0.0
    max_diff = 0.0
    for polys in samples:
        start = time.perf_counter()
        ours = make_db_targets((640, 640), polys, tags)
        t_ours += time.perf_counter() - start

        start = time.perf_counter()
        thr, thr_mask = loop_threshold_map([p.copy() for p in polys], tags, 640, 640)
        draw_shrink_map((640, 640), polys, tags)  # the shrink part is the same code in both
        t_loop += time.perf_counter() - start

        max_diff = max(max_diff, float(np.abs(ours["threshold_map"] - thr).max()))
        assert np.array_equal(ours["threshold_mask"], thr_mask)

    n = len(samples)
    print(f"640x640, {args.polygons} polygons, {n} samples")
    print(f"  workbench make_db_targets : {1e3 * t_ours / n:7.2f} ms/sample")
    print(f"  straightforward loop      : {1e3 * t_loop / n:7.2f} ms/sample")
    print(f"  speed-up                  : {t_loop / t_ours:7.2f}x   (max |threshold_map diff| = {max_diff:g})")


if __name__ == "__main__":
    main()
