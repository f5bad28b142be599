"""DB (Differentiable Binarization) training targets: shrink map / mask, threshold map / mask.

These are the four label maps DBLoss is trained against. They reproduce upstream PaddleOCR's ``MakeBorderMap``
followed by ``MakeShrinkMap`` (configured as in every PP-OCR det recipe: shrink ratio 0.4, thresholds 0.3 / 0.7,
min text size 8) so that a model fine-tuned here sees the same targets as one trained upstream:

* **shrink map** — 1 inside each text polygon shrunk inward by ``D = A·(1 − r²) / L`` (A = area, L = perimeter,
  r = shrink ratio). The shrink is a pyclipper offset with round joins; pyclipper works in integer coordinates and
  truncates the float vertices it is given. Ratios ``r, 2r, …`` (< 1) are tried until one gives exactly one
  polygon; if the last one gives none, the polygon is masked out.
* **shrink mask** — 1 everywhere except over ignored (``###``), too small (min side < ``min_text_size``),
  degenerate (|area| < 1 after clipping) or unshrinkable polygons, which are filled with 0.
* **threshold mask** — 1 inside each non-ignored polygon expanded outward by the same D.
* **threshold map** — inside each expanded polygon's bounding box: ``1 − min_edges clip(dist / D, 0, 1)``,
  max-combined across polygons, then scaled to ``[thresh_min, thresh_max]``.

Order matters and is upstream's: the border (threshold) maps are drawn from the polygons *as given*; the shrink
maps then clip the polygons to the image and fix their orientation.

Speed: upstream evaluates every edge's distance over the polygon's whole expanded bounding box with full 2-D
coordinate grids. Here each edge is evaluated only over its own bounding box grown by D (a pixel farther than D
from an edge is clipped to 1 there and cannot lower the minimum over edges), with 1-D coordinate vectors
broadcast into the grid. The per-pixel arithmetic is upstream's, operation by operation, so the maps are
bit-identical to upstream's for the same input polygons (see :func:`_edge_distance`).

Polygon dtype: upstream's label decoder yields float32 polygons and part of the distance arithmetic happens in
the polygon's dtype. Float64 polygons are therefore kept float64; anything else is converted to float32.

Where upstream would crash (a polygon whose expanded box lies wholly outside the image, or whose integer offset
vanishes) the polygon simply contributes nothing to the threshold maps here.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

from workbench.errors import DataError

__all__ = ["DBTargets", "effective_shrink_ratio", "make_db_targets", "draw_threshold_map", "draw_shrink_map"]


def effective_shrink_ratio(shrink_ratio: float, epoch: int | None = None, total_epoch: int | None = None) -> float:
    """Upstream's optional schedule: ``r + 0.2·epoch/total_epoch`` when both are given, else ``r``.

    Upstream applies it whenever the dataset passes the current epoch to the label ops; with epoch 0 (or no epoch)
    the ratio is the configured one.
    """
    if epoch is None or total_epoch is None:
        return float(shrink_ratio)
    if total_epoch <= 0:
        raise DataError(f"db_targets: total_epoch must be > 0 for the shrink-ratio schedule, got {total_epoch}")
    return float(shrink_ratio) + 0.2 * epoch / float(total_epoch)


def _as_polygons(polys: Any) -> list[np.ndarray]:
    """Polygons as a list of ``[P, 2]`` float arrays: float64 stays float64, anything else becomes float32."""
    out = []
    for i, poly in enumerate(polys):
        arr = np.asarray(poly)
        arr = np.array(arr, dtype=np.float64 if arr.dtype == np.float64 else np.float32).reshape(-1, 2)
        if arr.shape[0] < 3:
            raise DataError(f"db_targets: polygon {i} has {arr.shape[0]} points, a polygon needs at least 3")
        out.append(arr)
    return out


def _offset(poly: np.ndarray, delta: float) -> list[list[list[int]]]:
    """pyclipper offset of a closed polygon with round joins (pyclipper truncates the float vertices)."""
    offsetter = pyclipper.PyclipperOffset()
    offsetter.AddPath(poly, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return offsetter.Execute(delta)


def _offset_distance(shape: Polygon, ratio: float) -> float:
    # np.power (not **) keeps the float64 arithmetic identical to upstream's
    return shape.area * (1 - np.power(ratio, 2)) / shape.length


# --------------------------------------------------------------------------------------------------------------
# threshold map (upstream MakeBorderMap)
# --------------------------------------------------------------------------------------------------------------


def _edge_distance(xs: np.ndarray, ys: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Upstream's pixel-to-edge "distance" for pixels ``xs`` (row vector) × ``ys`` (column vector), float64.

    This is deliberately *not* the textbook point-to-segment distance; it is upstream's rule, reproduced
    operation by operation so that the result is bit-identical:

    * With θ the angle the edge ab subtends at pixel p, ``cos`` below is −cos θ (law of cosines). If θ < 90°
      (``cos < 0``) the distance is the one to the nearer end point, otherwise the height of triangle pab,
      ``sqrt(|pa|²·|pb|²·sin²θ / |ab|²)``. The two agree near the edge and differ for pixels far from a short
      edge.
    * ``|ab|²`` is computed in the polygon's dtype (float32 for labels read from a file), the pixel terms in
      float64, exactly as numpy's promotion rules make upstream do. The float32 ``|ab|²`` makes the height carry
      a relative error of ~1e-5 near long edges; reproducing it keeps the maps identical to upstream's.
    * A pixel lying exactly on a slanted edge can get ``cos² > 1`` by rounding, hence NaN; upstream's min over
      edges then propagates the NaN and the pixel keeps its background value. Same here (``np.minimum`` and
      ``np.fmax`` treat NaN as upstream's ``min`` / ``fmax`` do).
    """
    sq_a = np.square(xs - a[0]) + np.square(ys - a[1])  # |pa|², broadcast to [h, w], float64
    sq_b = np.square(xs - b[0]) + np.square(ys - b[1])  # |pb|²
    sq_ab = np.square(a[0] - b[0]) + np.square(a[1] - b[1])  # |ab|², numpy scalar in the polygon's dtype
    # Below, in-place ops on few buffers; each line is upstream's expression with the same operand order.
    prod = sq_a * sq_b
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = sq_ab - sq_a  # then - sq_b, / (2 * sqrt(prod))
        cos -= sq_b
        den = np.sqrt(prod)
        den *= 2
        cos /= den
        acute = cos < 0
        sin_sq = np.square(cos, out=den)
        np.subtract(1, sin_sq, out=sin_sq)
        # upstream's nan_to_num: NaN (pixel on an end point) -> 0 there, -inf -> -max. fmax maps both to -max,
        # which gives the same final value: prod is 0 at such pixels, so the height below is ±0 either way.
        np.fmax(sin_sq, np.finfo(np.float64).min, out=sin_sq)
        prod *= sin_sq
        prod /= sq_ab
        height = np.sqrt(prod, out=prod)
    endpoint = np.fmin(sq_a, sq_b, out=sq_a)
    np.sqrt(endpoint, out=endpoint)
    return np.where(acute, endpoint, height)


def _draw_border(poly: np.ndarray, distance: float, canvas: np.ndarray, mask: np.ndarray) -> None:
    """Draw one polygon's threshold contribution into ``canvas`` and its expanded region into ``mask``."""
    expanded = _offset(poly, distance)
    if not expanded:  # cannot happen for area > 0 and distance > 0; nothing to draw if it did
        return
    expanded = np.array(expanded[0])
    cv2.fillPoly(mask, [expanded.astype(np.int32)], 1.0)

    img_h, img_w = canvas.shape
    xmin, ymin = (int(v) for v in expanded.min(axis=0))
    xmax, ymax = (int(v) for v in expanded.max(axis=0))
    # the part of the expanded bounding box inside the image (upstream writes only there)
    x0, x1 = max(xmin, 0), min(xmax, img_w - 1)
    y0, y1 = max(ymin, 0), min(ymax, img_h - 1)
    if x0 > x1 or y0 > y1:
        return
    nearest = np.ones((y1 - y0 + 1, x1 - x0 + 1), dtype=np.float32)  # min over edges of clip(dist / D, 0, 1)

    # upstream measures in coordinates relative to the expanded box's corner, shifted in the polygon's dtype
    local = poly.copy()
    local[:, 0] = poly[:, 0] - xmin
    local[:, 1] = poly[:, 1] - ymin
    n = poly.shape[0]
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        # pixels farther than D from this edge clip to 1 and cannot lower the minimum: skip them (1 px of
        # slack covers rounding in upstream's float32 |ab|²)
        ex0 = max(x0, int(np.floor(min(a[0], b[0]) - distance)) - 1)
        ex1 = min(x1, int(np.ceil(max(a[0], b[0]) + distance)) + 1)
        ey0 = max(y0, int(np.floor(min(a[1], b[1]) - distance)) - 1)
        ey1 = min(y1, int(np.ceil(max(a[1], b[1]) + distance)) + 1)
        if ex0 > ex1 or ey0 > ey1:
            continue
        xs = np.arange(ex0 - xmin, ex1 - xmin + 1, dtype=np.float64)[None, :]
        ys = np.arange(ey0 - ymin, ey1 - ymin + 1, dtype=np.float64)[:, None]
        scaled = _edge_distance(xs, ys, local[i], local[(i + 1) % n])
        scaled /= distance
        np.clip(scaled, 0, 1, out=scaled)
        window = nearest[ey0 - y0 : ey1 - y0 + 1, ex0 - x0 : ex1 - x0 + 1]
        # min in float64 then rounding to float32 == min after rounding to float32 (rounding is monotonic)
        np.minimum(window, scaled, out=window, casting="unsafe")

    region = canvas[y0 : y1 + 1, x0 : x1 + 1]
    np.fmax(1 - nearest, region, out=region)


def draw_threshold_map(
    image_hw: tuple[int, int],
    polys: Sequence[np.ndarray],
    ignore_tags: Sequence[bool],
    shrink_ratio: float = 0.4,
    thresh_min: float = 0.3,
    thresh_max: float = 0.7,
) -> tuple[np.ndarray, np.ndarray]:
    """Threshold map and mask (upstream ``MakeBorderMap``). ``polys``: float32 ``[P, 2]`` arrays, unclipped."""
    h, w = image_hw
    canvas = np.zeros((h, w), dtype=np.float32)
    mask = np.zeros((h, w), dtype=np.float32)
    for poly, ignored in zip(polys, ignore_tags):
        if ignored:
            continue
        shape = Polygon(poly)
        if shape.area <= 0:
            continue
        _draw_border(poly, _offset_distance(shape, shrink_ratio), canvas, mask)
    canvas = canvas * (thresh_max - thresh_min) + thresh_min  # float32 (python scalars do not upcast)
    return canvas, mask


# --------------------------------------------------------------------------------------------------------------
# shrink map (upstream MakeShrinkMap)
# --------------------------------------------------------------------------------------------------------------


def _signed_area(poly: np.ndarray) -> float:
    """Upstream's orientation measure: positive for polygons counter-clockwise on screen (y pointing down)."""
    x, y = poly[:, 0].astype(np.float64), poly[:, 1].astype(np.float64)
    x_prev, y_prev = np.roll(x, 1), np.roll(y, 1)
    return float(np.sum(x * y_prev - y * x_prev)) / 2.0


def _validate_for_shrink(
    polys: list[np.ndarray], ignore_tags: list[bool], h: int, w: int
) -> tuple[list[np.ndarray], list[bool]]:
    """Clip to the image, mark degenerate polygons ignored, make every polygon clockwise on screen."""
    out_polys, out_tags = [], []
    for poly, ignored in zip(polys, ignore_tags):
        poly = poly.copy()
        poly[:, 0] = np.clip(poly[:, 0], 0, w - 1)
        poly[:, 1] = np.clip(poly[:, 1], 0, h - 1)
        area = _signed_area(poly)
        if abs(area) < 1:
            ignored = True
        if area > 0:
            poly = poly[::-1].copy()
        out_polys.append(poly)
        out_tags.append(bool(ignored))
    return out_polys, out_tags


def draw_shrink_map(
    image_hw: tuple[int, int],
    polys: Sequence[np.ndarray],
    ignore_tags: Sequence[bool],
    shrink_ratio: float = 0.4,
    min_text_size: float = 8,
) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """Shrink map, shrink mask and the effective ignore flags (upstream ``MakeShrinkMap``)."""
    h, w = image_hw
    polys, tags = _validate_for_shrink(list(polys), list(ignore_tags), h, w)
    gt = np.zeros((h, w), dtype=np.float32)
    mask = np.ones((h, w), dtype=np.float32)
    # r, 2r, ... below 1 (numpy's arange, so 0.4 gives [0.4, 0.8] exactly as upstream)
    ratios = np.arange(shrink_ratio, 1, shrink_ratio)
    for i, poly in enumerate(polys):
        extent = poly.max(axis=0) - poly.min(axis=0)  # float32 (width, height)
        if tags[i] or min(extent[0], extent[1]) < min_text_size:
            cv2.fillPoly(mask, poly.astype(np.int32)[np.newaxis], 0)
            tags[i] = True
            continue
        shape = Polygon(poly)
        shrunk: list = []
        for ratio in ratios:
            shrunk = _offset(poly, -_offset_distance(shape, ratio))
            if len(shrunk) == 1:
                break
        if not shrunk:
            cv2.fillPoly(mask, poly.astype(np.int32)[np.newaxis], 0)
            tags[i] = True
            continue
        for piece in shrunk:
            cv2.fillPoly(gt, [np.array(piece).reshape(-1, 2).astype(np.int32)], 1)
    return gt, mask, tags


# --------------------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------------------


def make_db_targets(
    image_hw: tuple[int, int],
    polys: Any,
    ignore_tags: Sequence[bool],
    shrink_ratio: float = 0.4,
    thresh_min: float = 0.3,
    thresh_max: float = 0.7,
    min_text_size: float = 8,
    epoch: int | None = None,
    total_epoch: int | None = None,
) -> dict[str, np.ndarray]:
    """The four DB target maps for an image of size ``image_hw`` (H, W).

    ``polys``: a sequence of polygons, each ``[P, 2]`` (x, y) pixels with P ≥ 3 (any P; P may differ between
    polygons). ``ignore_tags[i]`` marks polygon i "don't care" (``###``). ``epoch`` / ``total_epoch``: give both
    to use upstream's ``r + 0.2·epoch/total_epoch`` shrink-ratio schedule. Returns float32 ``[H, W]`` arrays
    ``shrink_map``, ``shrink_mask``, ``threshold_map``, ``threshold_mask``.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    polygons = _as_polygons(polys)
    tags = [bool(t) for t in ignore_tags]
    if len(tags) != len(polygons):
        raise DataError(f"db_targets: {len(polygons)} polygons but {len(tags)} ignore tags")
    ratio = effective_shrink_ratio(shrink_ratio, epoch, total_epoch)
    threshold_map, threshold_mask = draw_threshold_map((h, w), polygons, tags, ratio, thresh_min, thresh_max)
    shrink_map, shrink_mask, _ = draw_shrink_map((h, w), polygons, tags, ratio, min_text_size)
    return {
        "shrink_map": shrink_map,
        "shrink_mask": shrink_mask,
        "threshold_map": threshold_map,
        "threshold_mask": threshold_mask,
    }


class DBTargets:
    """Pipeline step: adds the four DB target maps to a det sample.

    The sample needs ``image`` (HWC or HW array; only its size is used), ``polys`` (sequence of ``[P, 2]``) and
    ``ignore_tags``. With ``total_epoch`` set, a sample that carries ``epoch`` gets upstream's epoch-dependent
    shrink ratio; without it (the default) the ratio is fixed. The input sample is not modified.
    """

    def __init__(
        self,
        shrink_ratio: float = 0.4,
        thresh_min: float = 0.3,
        thresh_max: float = 0.7,
        min_text_size: float = 8,
        total_epoch: int | None = None,
    ):
        self.shrink_ratio = shrink_ratio
        self.thresh_min = thresh_min
        self.thresh_max = thresh_max
        self.min_text_size = min_text_size
        self.total_epoch = total_epoch

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        for key in ("image", "polys", "ignore_tags"):
            if key not in sample:
                raise DataError(f"DBTargets: sample has no '{key}' (keys: {sorted(sample)})")
        epoch = sample.get("epoch") if self.total_epoch is not None else None
        targets = make_db_targets(
            sample["image"].shape[:2],
            sample["polys"],
            sample["ignore_tags"],
            shrink_ratio=self.shrink_ratio,
            thresh_min=self.thresh_min,
            thresh_max=self.thresh_max,
            min_text_size=self.min_text_size,
            epoch=epoch,
            total_epoch=self.total_epoch,
        )
        return {**sample, **targets}

    def __repr__(self) -> str:
        return (
            f"DBTargets(shrink_ratio={self.shrink_ratio}, thresh_min={self.thresh_min}, "
            f"thresh_max={self.thresh_max}, min_text_size={self.min_text_size}, total_epoch={self.total_epoch})"
        )
