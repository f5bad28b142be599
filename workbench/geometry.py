"""Polygon overlap on a page: the one implementation that data (crops cut from detected boxes), metrics (det hmean)
and analysis (attribution of pipeline errors) share.

Vectorised with shapely 2: only pairs whose bounding boxes touch are intersected (a receipt page has ~50 lines and
~50 boxes; most pairs are far apart), in one call per page instead of a Python loop over pairs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import shapely


def repaired_polygons(polys: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """shapely polygons of ``polys`` (each ``[k, 2]``) and their areas: a self-intersecting one is repaired
    (``make_valid``), fewer than 3 points give an empty polygon (area 0: overlaps nothing).

    The det metric does not repair: it counts invalid polygons as upstream does (``metrics.det``)."""
    geoms = []
    for p in polys:
        pts = np.asarray(p, dtype=np.float64).reshape(-1, 2)
        if len(pts) < 3:
            geoms.append(shapely.Polygon())
            continue
        g = shapely.polygons(pts)
        geoms.append(g if shapely.is_valid(g) else shapely.make_valid(g))
    arr = np.array(geoms, dtype=object) if geoms else np.empty(0, dtype=object)
    return arr, (shapely.area(arr).astype(np.float64) if len(arr) else np.zeros(0))


def overlapping_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of geometries whose bounding boxes touch or overlap: the only pairs whose intersection
    can be non-empty."""
    if len(a) == 0 or len(b) == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    ba, bb = shapely.bounds(a), shapely.bounds(b)  # xmin, ymin, xmax, ymax
    hit = (
        (ba[:, None, 0] <= bb[None, :, 2])
        & (bb[None, :, 0] <= ba[:, None, 2])
        & (ba[:, None, 1] <= bb[None, :, 3])
        & (bb[None, :, 1] <= ba[:, None, 3])
    )
    return np.nonzero(hit)


def intersection_areas(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas ``[len(a), len(b)]`` of two arrays of geometries (0 where they do not overlap)."""
    out = np.zeros((len(a), len(b)), dtype=np.float64)
    i, j = overlapping_pairs(a, b)
    if len(i):
        out[i, j] = shapely.area(shapely.intersection(a[i], b[j]))
    return out


def iou_matrix(a_polys: Sequence, b_polys: Sequence) -> np.ndarray:
    """Intersection over union ``[len(a), len(b)]`` of two lists of polygons (repaired as
    :func:`repaired_polygons`; 0 where the union is empty)."""
    a, a_area = repaired_polygons(a_polys)
    b, b_area = repaired_polygons(b_polys)
    inter = intersection_areas(a, b)
    union = a_area[:, None] + b_area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
