"""DB post-process: probability map → text boxes + scores, exactly as PaddleX 3.7's ``DBPostProcess``.

Evaluation must predict deployment, so every step below reproduces what the PaddleX predictor does to the
model output (same OpenCV / pyclipper calls, same dtypes, same rounding), not a "cleaner" variant. Tests check
box-for-box and score-for-score equality against PaddleX's class.

Per image:
1. ``bitmap = prob > thresh`` (optionally dilated with a 2×2 kernel).
2. Contours of the bitmap (``cv2.findContours``, ``RETR_LIST``, ``CHAIN_APPROX_SIMPLE``): at most
   ``max_candidates``, in OpenCV's order — this order is the order of the returned boxes.
3. ``box_type="quad"``: minimum-area rectangle of the contour (dropped if its short side < 3), scored by the mean
   probability inside the rectangle (``score_mode="fast"``) or inside the contour itself (``"slow"``), dropped if
   the score < ``box_thresh``; expanded ("unclipped") by ``area * unclip_ratio / perimeter`` with a rounded
   pyclipper offset, re-fitted with a minimum-area rectangle (dropped if its short side < 5).
   ``box_type="poly"``: the contour is simplified (``approxPolyDP``, ε = 0.2 % of its perimeter), scored inside
   that polygon, unclipped the same way and kept as a polygon.
4. Coordinates are scaled from the map to the source image (``src_w / map_w``, ``src_h / map_h``), rounded
   half-to-even and clipped to ``[0, src_w] × [0, src_h]`` (inclusive — PaddleX clips to the size, not size − 1).
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import cv2
import numpy as np
import pyclipper

from workbench.errors import ConfigError

ScoreMode = Literal["fast", "slow"]
BoxType = Literal["quad", "poly"]

#: a candidate rectangle whose short side is below this (map pixels) is noise
MIN_SIZE = 3


class DBPostProcess:
    """Turn DB probability maps into boxes.

    Args:
        thresh: pixel threshold of the probability map (strict ``>``).
        box_thresh: minimum mean probability of a box (a box scoring exactly ``box_thresh`` is kept).
        max_candidates: at most this many contours per image are looked at.
        unclip_ratio: how far boxes are expanded; DB shrinks text regions in training, this undoes it.
            1.5 is the training config's and the exported ``inference.yml``'s value (PaddleX's class default is 2.0).
        use_dilation: dilate the bitmap with a 2×2 kernel first.
        score_mode: ``"fast"`` (mean inside the min-area rectangle) or ``"slow"`` (inside the contour).
        box_type: ``"quad"`` (4-point rectangles) or ``"poly"`` (polygons; always scored inside the polygon).

    Call with the model's eval output ``prob_map`` ``[N, 1, H, W]`` (or ``[N, H, W]``) and ``shapes`` ``[N, 4]``
    rows ``(src_h, src_w, ratio_h, ratio_w)`` (``DetShape.as_array()``; only ``src_h``/``src_w`` are used).
    Returns one ``(polys, scores)`` per image: for ``quad`` an ``int16`` array ``[K, 4, 2]`` (points clockwise
    from top-left; ``[0, 4, 2]`` when empty — PaddleX gives shape ``(0,)`` there), for ``poly`` a list of
    ``int64`` arrays ``[n_i, 2]``; ``scores`` is a list of Python floats.
    """

    def __init__(
        self,
        thresh: float = 0.3,
        box_thresh: float = 0.6,
        max_candidates: int = 1000,
        unclip_ratio: float = 1.5,
        use_dilation: bool = False,
        score_mode: ScoreMode = "fast",
        box_type: BoxType = "quad",
    ):
        if score_mode not in ("fast", "slow"):
            raise ConfigError(f"DBPostProcess.score_mode must be 'fast' or 'slow', got {score_mode!r}")
        if box_type not in ("quad", "poly"):
            raise ConfigError(f"DBPostProcess.box_type must be 'quad' or 'poly', got {box_type!r}")
        if max_candidates <= 0 or unclip_ratio <= 0:
            raise ConfigError(
                f"DBPostProcess needs max_candidates > 0 and unclip_ratio > 0, got {max_candidates}, {unclip_ratio}"
            )
        self.thresh = thresh
        self.box_thresh = box_thresh
        self.max_candidates = max_candidates
        self.unclip_ratio = unclip_ratio
        self.use_dilation = use_dilation
        self.score_mode = score_mode
        self.box_type = box_type

    def __repr__(self) -> str:
        return (
            f"DBPostProcess(thresh={self.thresh}, box_thresh={self.box_thresh}, max_candidates={self.max_candidates}, "
            f"unclip_ratio={self.unclip_ratio}, use_dilation={self.use_dilation}, score_mode={self.score_mode!r}, "
            f"box_type={self.box_type!r})"
        )

    def __call__(self, prob_map, shapes) -> list[tuple[np.ndarray | list[np.ndarray], list[float]]]:
        maps = np.asarray(prob_map)
        if maps.ndim == 4:
            if maps.shape[1] != 1:
                raise ValueError(f"expected a [N, 1, H, W] probability map, got shape {maps.shape}")
            maps = maps[:, 0]
        if maps.ndim != 3:
            raise ValueError(f"expected a [N, 1, H, W] or [N, H, W] probability map, got shape {maps.shape}")
        # float64 like PaddleX's shape rows: the scale factors (and thus the rounding) depend on it
        shapes = np.asarray(shapes, dtype=np.float64).reshape(-1, 4)
        if len(shapes) != len(maps):
            raise ValueError(f"{len(maps)} maps but {len(shapes)} shape rows")
        return [self.process_one(m, s) for m, s in zip(maps, shapes)]

    def process_one(
        self, prob: np.ndarray, shape: Sequence[float]
    ) -> tuple[np.ndarray | list[np.ndarray], list[float]]:
        """Boxes of one ``[H, W]`` probability map for a source image of ``shape = (src_h, src_w, ...)``."""
        src_h, src_w = np.float64(shape[0]), np.float64(shape[1])
        bitmap = prob > self.thresh
        if self.use_dilation:
            bitmap = cv2.dilate(bitmap.astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours((bitmap * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        contours = contours[: self.max_candidates]
        map_h, map_w = bitmap.shape
        scale = (src_w / map_w, src_h / map_h)
        if self.box_type == "quad":
            return self._quads(prob, contours, scale, (src_w, src_h))
        return self._polygons(prob, contours, scale, (src_w, src_h))

    # -- quad mode ------------------------------------------------------------------------------------------------

    def _quads(self, prob, contours, scale, limits) -> tuple[np.ndarray, list[float]]:
        boxes, scores = [], []
        for contour in contours:
            rect, short_side = min_area_quad(contour)
            if short_side < MIN_SIZE:
                continue
            if self.score_mode == "fast":
                score = mean_score_in_polygon(prob, rect)
            else:
                score = mean_score_in_polygon(prob, contour.reshape(-1, 2), clip_floor=False)
            if score < self.box_thresh:
                continue
            paths = unclip(rect, self.unclip_ratio)
            if not paths:
                # cannot happen for a rectangle with short side >= 3 (PaddleX would raise in minAreaRect)
                continue
            grown, short_side = min_area_quad(_offset_points(paths).reshape(-1, 1, 2))
            if short_side < MIN_SIZE + 2:
                continue
            boxes.append(_to_source(grown, scale, limits))
            scores.append(score)
        quads = np.array(boxes, dtype=np.int16).reshape(-1, 4, 2)
        return quads, scores

    # -- poly mode ------------------------------------------------------------------------------------------------

    def _polygons(self, prob, contours, scale, limits) -> tuple[list[np.ndarray], list[float]]:
        polys, scores = [], []
        for contour in contours:
            epsilon = 0.002 * cv2.arcLength(contour, True)
            points = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2)
            if len(points) < 4:
                continue
            score = mean_score_in_polygon(prob, points)  # always inside the polygon, whatever score_mode says
            if score < self.box_thresh:
                continue
            paths = unclip(points, self.unclip_ratio)
            # Only a single expanded path is kept: a polygon that splits (or vanishes) is dropped. (PaddleX tests
            # len(np.array(paths)) > 1, which for ragged multi-path results is the first path's point count —
            # always > 1 for a real path — so the outcome is the same.)
            if len(paths) != 1:
                continue
            poly = np.array(paths[0], dtype=np.int64).reshape(-1, 2)
            _, short_side = min_area_quad(poly.reshape(-1, 1, 2))
            if short_side < MIN_SIZE + 2:
                continue
            polys.append(_to_source(poly, scale, limits, dtype=np.int64))
            scores.append(score)
        return polys, scores


# -- geometry helpers (module level: the metrics and analysis code reuse them) ---------------------------------


def min_area_quad(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-area rectangle of ``points`` as ``[4, 2]`` float32, ordered TL, TR, BR, BL, and its short side.

    Ordering: sort the corners by x (stable), the left pair gives TL (smaller y; ties → the later one) and BL, the
    right pair TR (smaller y; ties → the earlier one) and BR — PaddleX's ``get_mini_boxes`` rule, kept with its
    tie behaviour because it decides which corner comes first in the output.
    """
    rect = cv2.minAreaRect(points)
    corners = cv2.boxPoints(rect)
    corners = corners[np.argsort(corners[:, 0], kind="stable")]
    left, right = corners[:2], corners[2:]
    top_left, bottom_left = (left[0], left[1]) if left[1][1] > left[0][1] else (left[1], left[0])
    top_right, bottom_right = (right[0], right[1]) if right[1][1] > right[0][1] else (right[1], right[0])
    quad = np.stack([top_left, top_right, bottom_right, bottom_left]).astype(np.float32)
    return quad, float(min(rect[1]))


def mean_score_in_polygon(prob: np.ndarray, polygon: np.ndarray, clip_floor: bool = True) -> float:
    """Mean of ``prob`` over the pixels of ``polygon`` (filled with integer-truncated vertices).

    ``clip_floor=True`` is the "fast" box score (float vertices, bbox floor/ceil); ``False`` the "slow" contour
    score (integer contour, bbox from min/max) — both clip the bbox to the map.
    """
    h, w = prob.shape[:2]
    xs, ys = polygon[:, 0], polygon[:, 1]
    if clip_floor:
        xmin = max(0, min(math.floor(xs.min()), w - 1))
        xmax = max(0, min(math.ceil(xs.max()), w - 1))
        ymin = max(0, min(math.floor(ys.min()), h - 1))
        ymax = max(0, min(math.ceil(ys.max()), h - 1))
    else:
        xmin, xmax = int(np.clip(xs.min(), 0, w - 1)), int(np.clip(xs.max(), 0, w - 1))
        ymin, ymax = int(np.clip(ys.min(), 0, h - 1)), int(np.clip(ys.max(), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    # subtract in the polygon's own dtype, then truncate toward zero: the exact pixels PaddleX fills
    shifted = polygon - np.array([xmin, ymin], dtype=polygon.dtype)
    cv2.fillPoly(mask, shifted.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(prob[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def unclip(polygon: np.ndarray, unclip_ratio: float) -> list:
    """Expand a polygon by ``area * unclip_ratio / perimeter`` (rounded joins); pyclipper's list of paths."""
    area = cv2.contourArea(polygon)
    length = cv2.arcLength(polygon, True)
    distance = area * unclip_ratio / length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(polygon, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return offset.Execute(distance)


def _is_ragged(paths: list) -> bool:
    return len({len(p) for p in paths}) > 1


def _offset_points(paths: list) -> np.ndarray:
    """The points quad mode re-fits a rectangle to: all paths when they have equal lengths, else the first one
    (PaddleX builds ``np.array(paths)`` and falls back to the first path when that array would be ragged)."""
    if _is_ragged(paths):
        return np.array(paths[0])
    return np.array(paths)


def _to_source(points: np.ndarray, scale: tuple, limits: tuple, dtype=np.int16) -> np.ndarray:
    """Map points from the probability map to the source image: scale, round half-to-even, clip to the size."""
    scaled = points.astype(np.float64) * np.array(scale, dtype=np.float64)
    rounded = np.rint(scaled)
    clipped = np.clip(rounded, 0, np.array(limits, dtype=np.float64))
    return clipped.astype(dtype)
