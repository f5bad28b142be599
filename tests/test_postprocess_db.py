"""DBPostProcess: same boxes and scores as PaddleX's class (the oracle), and known shapes are recovered."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import require
from shapely.geometry import Polygon

from workbench.errors import ConfigError
from workbench.postprocess.db import DBPostProcess, min_area_quad

pdx = require("paddlex.inference.models.text_detection.processors")

SETTINGS = [
    dict(),
    dict(score_mode="slow"),
    dict(use_dilation=True),
    dict(box_type="poly"),
    dict(box_type="poly", use_dilation=True, unclip_ratio=2.0),
    dict(box_thresh=0.35, unclip_ratio=2.0, max_candidates=7),
]


def _pair(**kw):
    """Ours and PaddleX's with the same settings (PaddleX's own defaults differ: unclip 2.0, box_thresh 0.7)."""
    settings = dict(thresh=0.3, box_thresh=0.6, max_candidates=1000, unclip_ratio=1.5, use_dilation=False,
                    score_mode="fast", box_type="quad")
    settings.update(kw)
    return DBPostProcess(**settings), pdx.DBPostProcess(**settings)


def _assert_same(ours, ref, maps, shapes, box_type):
    """Run both exactly as TextDetRunnerPredictor calls PaddleX (``post_op([maps], shapes)``)."""
    ref_boxes, ref_scores = ref([maps], list(shapes))
    results = ours(maps, shapes)
    n_boxes = 0
    for (boxes, scores), rb, rs in zip(results, ref_boxes, ref_scores):
        assert scores == rs  # exact float equality, same order
        if box_type == "quad":
            assert boxes.dtype == np.int16 and boxes.shape == (len(rs), 4, 2)
            assert np.array_equal(boxes, np.asarray(rb).reshape(-1, 4, 2))
        else:
            assert len(boxes) == len(rb)
            for a, b in zip(boxes, rb):
                assert a.dtype == b.dtype and np.array_equal(a, b)
        n_boxes += len(scores)
    return n_boxes


def _blob_map(rng, h, w, cell):
    """Smooth random field in [0, 1]: many blobs of all shapes crossing the thresholds."""
    coarse = rng.random((max(2, h // cell), max(2, w // cell))).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return (1 / (1 + np.exp(-10 * (field - 0.6)))).astype(np.float32)  # sharpen: confident blobs, soft edges


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_random_maps_equal_paddlex(settings):
    rng = np.random.default_rng(1234)
    ours, ref = _pair(**settings)
    total = 0
    for _ in range(10):
        n = 3
        h, w = int(rng.integers(5, 30)) * 8, int(rng.integers(5, 30)) * 8
        maps = np.stack([_blob_map(rng, h, w, int(rng.integers(4, 16)))[None] for _ in range(n)])
        # source sizes that make the scale factors non-trivial (up- and down-scaling, non-integer)
        shapes = np.array([[round(h * rng.uniform(0.4, 2.5)), round(w * rng.uniform(0.4, 2.5)), 1.0, 1.0]
                           for _ in range(n)])
        total += _assert_same(ours, ref, maps, shapes, settings.get("box_type", "quad"))
    assert total >= 15  # the comparison saw real boxes


def test_noise_and_binary_maps_equal_paddlex():
    rng = np.random.default_rng(7)
    ours, ref = _pair()
    noise = rng.random((1, 1, 96, 128)).astype(np.float32)  # speckle: thousands of tiny contours
    binary = (rng.random((1, 1, 96, 128)) > 0.7).astype(np.float32)
    for maps in (noise, binary):
        _assert_same(ours, ref, maps, np.array([[96.0, 128.0, 1.0, 1.0]]), "quad")
    ours_poly, ref_poly = _pair(box_type="poly", box_thresh=0.2)
    _assert_same(ours_poly, ref_poly, binary, np.array([[200.0, 50.0, 1.0, 1.0]]), "poly")


def test_real_model_output_equals_paddlex(fixtures_dir):
    """The parity fixture's map is a real PP-OCRv5_mobile_det eval output (random weights, BN-calibrated)."""
    maps = np.load(fixtures_dir / "parity/PP-OCRv5_mobile_det_bncal_io.npz")["maps"]
    total = 0
    for settings in SETTINGS:
        for box_thresh in (0.6, 0.3):  # random weights: few regions reach the deployed 0.6
            ours, ref = _pair(**{**settings, "box_thresh": box_thresh})
            shapes = np.array([[640.0, 480.0, 2.0, 1.5]])
            total += _assert_same(ours, ref, maps, shapes, settings.get("box_type", "quad"))
    assert total > 30


# -- hand-made maps with known answers -------------------------------------------------------------------------


def _expected_quad(points, unclip_ratio=1.5):
    """The drawn region's min-area rectangle grown by DB's unclip distance (area * ratio / perimeter)."""
    rect = cv2.minAreaRect(points.reshape(-1, 1, 2).astype(np.float32))
    (cx, cy), (w, h), angle = rect
    d = w * h * unclip_ratio / (2 * (w + h))
    return Polygon(cv2.boxPoints(((cx, cy), (w + 2 * d, h + 2 * d), angle)))


def test_axis_aligned_rectangles_recovered():
    prob = np.zeros((1, 1, 160, 320), np.float32)
    prob[0, 0, 20:41, 30:131] = 0.8  # pixel centres x 30..130, y 20..40: a 100 x 20 rectangle
    prob[0, 0, 100:131, 200:301] = 0.95  # 100 x 30
    post = DBPostProcess()
    (boxes, scores), = post(prob, np.array([[160.0, 320.0, 1.0, 1.0]]))
    assert len(boxes) == 2
    # OpenCV lists contours bottom-up here; match by position instead of relying on that
    order = np.argsort(boxes[:, 0, 1])
    boxes, scores = boxes[order], [scores[i] for i in order]
    assert scores[0] == pytest.approx(0.8, abs=1e-6) and scores[1] == pytest.approx(0.95, abs=1e-6)
    d1 = 100 * 20 * 1.5 / 240  # 12.5 px
    d2 = 100 * 30 * 1.5 / 260  # 17.3 px
    for box, (x0, y0, x1, y1), d in zip(boxes, [(30, 20, 130, 40), (200, 100, 300, 130)], [d1, d2]):
        expected = np.array([[x0 - d, y0 - d], [x1 + d, y0 - d], [x1 + d, y1 + d], [x0 - d, y1 + d]])
        expected = np.clip(expected, 0, [320, 160])
        assert np.abs(box - expected).max() <= 1.5, (box, expected)  # pyclipper works on integer coordinates
        # clockwise from top-left
        assert box[0, 0] < box[1, 0] and box[0, 1] < box[3, 1] and box[2, 0] > box[3, 0]


def test_rotated_quad_recovered_and_scaled():
    quad = np.array([[60, 80], [220, 40], [232, 88], [72, 128]], np.float64)  # ~165 x 50, rotated ~14°
    prob = np.zeros((160, 320), np.float32)
    cv2.fillPoly(prob, [quad.astype(np.int32)], 0.9)
    post = DBPostProcess()
    # source image twice the map size: boxes come back in source coordinates
    (boxes, scores), = post(prob[None, None], np.array([[320.0, 640.0, 2.0, 2.0]]))
    # the "fast" score averages over the min-area rectangle, which includes a few background pixels
    assert len(boxes) == 1 and 0.8 < scores[0] < 0.9
    expected = _expected_quad(np.argwhere(prob > 0)[:, ::-1])
    expected = Polygon(np.asarray(expected.exterior.coords) * 2)
    found = Polygon(boxes[0])
    iou = found.intersection(expected).area / found.union(expected).area
    assert iou > 0.95
    # corners come in the drawn order (TL, TR, BR, BL): each is nearest to its own drawn corner
    distances = np.linalg.norm(boxes[0][:, None, :] - quad[None] * 2, axis=2)
    assert list(distances.argmin(axis=1)) == [0, 1, 2, 3]
    # clockwise on screen is counter-clockwise for shapely (its y axis points up)
    assert Polygon(boxes[0]).exterior.is_ccw


def test_filters_low_score_and_tiny_regions():
    prob = np.zeros((1, 1, 64, 64), np.float32)
    prob[0, 0, 5:25, 5:40] = 0.5  # above thresh 0.3 but scores below box_thresh 0.6
    prob[0, 0, 40:42, 40:42] = 1.0  # 2 x 2 px: short side < 3
    (boxes, scores), = DBPostProcess()(prob, np.array([[64.0, 64.0, 1.0, 1.0]]))
    assert boxes.shape == (0, 4, 2) and scores == []
    (boxes, scores), = DBPostProcess(box_thresh=0.5)(prob, np.array([[64.0, 64.0, 1.0, 1.0]]))
    assert len(boxes) == 1 and scores[0] == pytest.approx(0.5)  # a box scoring exactly box_thresh is kept


def test_boxes_clipped_to_source_image():
    prob = np.zeros((1, 1, 64, 64), np.float32)
    prob[0, 0, 0:20, 0:64] = 1.0  # touches three borders: the unclipped box would leave the image
    (boxes, _), = DBPostProcess()(prob, np.array([[32.0, 32.0, 0.5, 0.5]]))
    assert len(boxes) == 1
    assert boxes.min() == 0 and boxes[..., 0].max() == 32  # clipped to [0, src_w] inclusive


def test_poly_mode_returns_polygons():
    prob = np.zeros((1, 1, 96, 160), np.float32)
    pts = np.array([[20, 30], [80, 20], [140, 40], [140, 70], [80, 55], [20, 70]], np.int32)  # bent text line
    cv2.fillPoly(prob[0, 0], [pts], 0.9)
    (polys, scores), = DBPostProcess(box_type="poly")(prob, np.array([[96.0, 160.0, 1.0, 1.0]]))
    assert len(polys) == 1 and scores[0] == pytest.approx(0.9, abs=0.01)
    poly = Polygon(polys[0])
    assert len(polys[0]) > 4 and poly.is_valid and poly.contains(Polygon(pts))


def test_min_area_quad_orders_corners():
    quad, short = min_area_quad(np.array([[[10, 10]], [[50, 10]], [[50, 30]], [[10, 30]]], np.int32))
    assert short == 20
    assert np.array_equal(quad, np.array([[10, 10], [50, 10], [50, 30], [10, 30]], np.float32))


def test_rejects_bad_settings_and_shapes():
    with pytest.raises(ConfigError):
        DBPostProcess(score_mode="accurate")
    with pytest.raises(ConfigError):
        DBPostProcess(box_type="rbox")
    with pytest.raises(ValueError):
        DBPostProcess()(np.zeros((1, 2, 8, 8), np.float32), np.array([[8.0, 8.0, 1, 1]]))
    with pytest.raises(ValueError):
        DBPostProcess()(np.zeros((2, 1, 8, 8), np.float32), np.array([[8.0, 8.0, 1, 1]]))
