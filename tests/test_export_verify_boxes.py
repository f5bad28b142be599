"""Export verification of det boxes: maps equal within float noise may differ by a box at a threshold; then our
post-process on PaddleX's map must give PaddleX's boxes, else the check fails."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from workbench.export.verify.ours import DetSteps, StageCheck, TheirDet, compare_det
from workbench.export.verify.report import Report, Tolerances


def _post(prob, shapes):
    """A stand-in DB post-process: one unit box per map value above 0.5, scored by that value."""
    values = np.asarray(prob, dtype=np.float64).reshape(-1)
    keep = np.nonzero(values > 0.5)[0]
    boxes = [np.array([[i, 0], [i + 1, 0], [i + 1, 1], [i, 1]], dtype=np.float64) for i in keep]
    return [(boxes, list(values[keep]))]


def _check(ours_map, their_map, their_boxes):
    wb = SimpleNamespace(det_input=lambda image, resize: (image, SimpleNamespace(as_array=lambda: np.zeros(4))),
                         det_map=lambda x: (np.asarray(ours_map, np.float32), 1e-6))
    report = Report(Tolerances())
    check = StageCheck(report, "module", wb, report.tolerances)
    image = np.zeros((1, 3, 2, 2), np.float32)
    polys, scores = their_boxes
    compare_det(check, "page.jpg", image, DetSteps(resize=None, post=_post),
                TheirDet(x=image, prob_map=np.asarray(their_map, np.float32), polys=polys, scores=scores))
    return report


def test_a_box_at_the_threshold_is_judged_on_the_post_process():
    ours = [0.2, 0.5000001, 0.9]
    theirs = [0.2, 0.4999999, 0.9]
    (their_boxes,) = _post(theirs, None)
    report = _check(ours, theirs, their_boxes)
    assert report.passed, report.failures()
    assert any(c.what.startswith("det boxes from our map") for c in report.checks)


def test_post_processing_that_differs_still_fails():
    ours = [0.2, 0.5000001, 0.9]
    theirs = [0.2, 0.4999999, 0.9]
    (boxes, scores), = _post([0.9, 0.9, 0.9], None)  # PaddleX reports three boxes its own map does not hold
    report = _check(ours, theirs, (boxes, scores))
    assert not report.passed
    assert any(c.what == "det box count (ours vs PaddleX)" for c in report.failures())


def test_maps_beyond_noise_are_not_excused():
    ours = [0.2, 0.9, 0.9]
    theirs = [0.2, 0.1, 0.9]
    report = _check(ours, theirs, _post(theirs, None)[0])
    assert not report.passed
    failed = {c.what for c in report.failures()}
    assert "det probability map max abs diff" in failed and "det box count (ours vs PaddleX)" in failed
