"""DB targets: the parity fixture, hand-checked geometry, and equality with a plain upstream-style loop."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_db_targets import loop_threshold_map, random_text_lines
from workbench.data.db_targets import DBTargets, effective_shrink_ratio, make_db_targets
from workbench.errors import DataError

MAPS = ("shrink_map", "shrink_mask", "threshold_map", "threshold_mask")


def _rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


def _on_edge_half_pixel(x: int, y: int, poly: np.ndarray) -> bool:
    """Is (x ± 0.5, y) exactly on an edge of the integer polygon ``poly``? (integer arithmetic, doubled coords)"""
    pts = 2 * poly.astype(np.int64)
    for px in (2 * x - 1, 2 * x + 1):
        py = 2 * y
        for i in range(len(pts)):
            (ax, ay), (bx, by) = pts[i], pts[(i + 1) % len(pts)]
            cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
            inside = min(ax, bx) <= px <= max(ax, bx) and min(ay, by) <= py <= max(ay, by)
            if cross == 0 and inside:
                return True
    return False


def test_matches_parity_fixture(fixtures_dir):
    npz = np.load(fixtures_dir / "parity" / "PP-OCRv5_mobile_det_bncal_io.npz")
    quads = npz["quads"]
    out = make_db_targets((320, 320), quads, [False, False], epoch=0, total_epoch=500)
    for key in MAPS:
        assert out[key].dtype == np.float32 and out[key].shape == (320, 320)
    assert np.array_equal(out["shrink_map"], npz["shrink_map"][0])
    assert np.array_equal(out["shrink_mask"], npz["shrink_mask"][0])
    assert np.abs(out["threshold_map"] - npz["threshold_map"][0]).max() <= 1e-6

    # threshold_mask: the fixture was rasterised by OpenCV 5.x; OpenCV 4.10 (pinned here, as PaddleX pins it)
    # breaks ties differently for pixels whose left/right neighbour half-pixel lies exactly on a slanted edge of
    # the expanded polygon. Everything else must be identical, and every difference must be such a tie.
    import pyclipper
    from shapely.geometry import Polygon

    expanded = []
    for q in quads:
        shape = Polygon(q)
        off = pyclipper.PyclipperOffset()
        off.AddPath(q, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        expanded.append(np.array(off.Execute(shape.area * (1 - 0.4**2) / shape.length)[0]))
    diff = np.argwhere(out["threshold_mask"] != npz["threshold_mask"][0])
    assert len(diff) <= 8
    for y, x in diff:
        assert any(_on_edge_half_pixel(int(x), int(y), e) for e in expanded), (x, y)


def test_rectangle_shrink_region_and_threshold_values():
    # 100 x 40 rectangle: D = A (1 - r^2) / L = 4000 * 0.84 / 280 = 12 px
    rect = _rect(50, 50, 150, 90)
    out = make_db_targets((200, 200), [rect], [False])
    expected = np.zeros((200, 200), np.float32)
    expected[62:79, 62:139] = 1  # inward offset of a rectangle is the rectangle 12 px smaller, filled inclusively
    assert np.array_equal(out["shrink_map"], expected)
    assert out["shrink_mask"].min() == 1.0

    thr = out["threshold_map"]
    assert thr[50, 100] == pytest.approx(0.7, abs=1e-6)  # on the top edge
    assert thr[70, 50] == pytest.approx(0.7, abs=1e-6)  # on the left edge
    assert thr[56, 100] == pytest.approx(0.3 + 0.4 * (1 - 6 / 12), abs=1e-6)  # 6 px inside
    assert thr[44, 100] == pytest.approx(0.3 + 0.4 * (1 - 6 / 12), abs=1e-6)  # 6 px outside
    assert thr[70, 100] == pytest.approx(0.3, abs=1e-6)  # centre: 20 px from every edge > D
    assert thr[5, 5] == pytest.approx(0.3, abs=1e-6)  # far away
    assert thr.min() == pytest.approx(0.3, abs=1e-6) and thr.max() == pytest.approx(0.7, abs=1e-6)

    mask = out["threshold_mask"]
    assert mask[40, 100] == 1 and mask[38, 100] == 1 and mask[30, 100] == 0  # expanded by 12 px
    assert mask[70, 100] == 1


def test_small_and_ignored_boxes_are_masked():
    tiny = _rect(20, 20, 80, 25)  # 5 px high < min_text_size 8
    ignored = _rect(100, 100, 180, 140)  # a ### box
    good = _rect(20, 150, 120, 190)
    out = make_db_targets((200, 200), [tiny, ignored, good], [False, True, False])
    sm, mask = out["shrink_map"], out["shrink_mask"]

    assert mask[22, 50] == 0 and sm[10:40, 10:90].sum() == 0  # tiny: masked, no positive pixels
    assert mask[120, 140] == 0 and mask[100:141, 100:181].sum() == 0  # ### box: masked everywhere inside
    assert sm[90:150, 90:190].sum() == 0
    assert out["threshold_mask"][120, 140] == 0  # ### boxes get no threshold target
    assert out["threshold_map"][120, 100] == pytest.approx(0.3, abs=1e-6)
    # a too-small (but not ###) box still gets its border drawn, as upstream
    assert out["threshold_map"][20, 50] == pytest.approx(0.7, abs=1e-6)
    # the good box is untouched by the masking
    assert mask[170, 70] == 1 and sm[170, 70] == 1


def test_polygon_orientation_and_clipping():
    quad = np.array([[30, 40], [160, 30], [165, 80], [35, 90]], np.float32)
    a = make_db_targets((120, 200), [quad], [False])
    b = make_db_targets((120, 200), [quad[::-1]], [False])  # counter-clockwise on screen
    for key in MAPS:
        assert np.array_equal(a[key], b[key]), key

    # a box sticking out of the image on the right: clipped, still a valid positive region inside the image
    out = make_db_targets((100, 100), [_rect(60, 30, 140, 70)], [False])
    assert out["shrink_map"][50, 90] == 1 and out["shrink_map"].sum() > 0
    assert out["threshold_map"][30, 80] == pytest.approx(0.7, abs=1e-6)


def test_many_point_polygon_and_empty_input():
    t = np.linspace(0, np.pi, 7)
    upper = np.stack([100 + 80 * np.cos(t[::-1]), 100 - 80 * np.sin(t[::-1])], 1)
    lower = np.stack([100 + 50 * np.cos(t), 100 - 50 * np.sin(t)], 1)
    curved = np.concatenate([upper, lower]).astype(np.float32)  # 14-point arc band
    out = make_db_targets((200, 200), [curved], [False])
    assert out["shrink_map"][35, 100] == 1  # middle of the band
    assert out["shrink_map"][100, 100] == 0  # inside the arc, not text
    empty = make_db_targets((64, 48), [], [])
    assert empty["shrink_map"].shape == (64, 48) and empty["shrink_map"].sum() == 0
    assert empty["shrink_mask"].min() == 1 and empty["threshold_mask"].sum() == 0
    assert np.allclose(empty["threshold_map"], 0.3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threshold_map_is_bit_identical_to_plain_loop(dtype):
    rng = np.random.default_rng(7)
    for _ in range(4):
        polys = [p.astype(dtype) for p in random_text_lines(rng, 8, size=320)]
        polys = [p for p in polys if np.all(p.max(0) > 0) and np.all(p.min(0) < 319)]  # some part in the image
        ours = make_db_targets((320, 320), polys, [False] * len(polys))
        ref_map, ref_mask = loop_threshold_map([p.copy() for p in polys], [False] * len(polys), 320, 320)
        assert np.array_equal(ours["threshold_map"], ref_map)
        assert np.array_equal(ours["threshold_mask"], ref_mask)


def test_epoch_schedule_and_transform():
    assert effective_shrink_ratio(0.4) == 0.4
    assert effective_shrink_ratio(0.4, epoch=250, total_epoch=500) == pytest.approx(0.5)
    quad = _rect(20, 20, 180, 70)
    sched = make_db_targets((100, 200), [quad], [False], epoch=250, total_epoch=500)
    fixed = make_db_targets((100, 200), [quad], [False], shrink_ratio=0.4 + 0.2 * 250 / 500)
    base = make_db_targets((100, 200), [quad], [False])
    for key in MAPS:
        assert np.array_equal(sched[key], fixed[key])
    assert sched["shrink_map"].sum() > base["shrink_map"].sum()  # larger ratio -> smaller shrink distance

    sample = {"image": np.zeros((100, 200, 3), np.uint8), "polys": [quad], "ignore_tags": [False], "epoch": 250}
    plain = DBTargets()(sample)
    scheduled = DBTargets(total_epoch=500)(sample)
    assert np.array_equal(plain["shrink_map"], base["shrink_map"])  # epoch ignored unless asked
    assert np.array_equal(scheduled["shrink_map"], sched["shrink_map"])
    assert "shrink_map" not in sample and plain["polys"] is sample["polys"]

    with pytest.raises(DataError, match="ignore tags"):
        make_db_targets((10, 10), [quad], [])
    with pytest.raises(DataError, match="'polys'"):
        DBTargets()({"image": np.zeros((4, 4)), "ignore_tags": []})
