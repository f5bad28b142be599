"""Demo data generator: reproducible, idempotent, labels consistent with the rendered pixels."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from workbench.data.synth import (
    DEMO_ALPHABET,
    demo_font_paths,
    det_demo_sample,
    generate_det_demo,
    generate_rec_demo,
    render_det_image,
)
from workbench.errors import DataError


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_rec_demo_is_reproducible_and_well_formed(tmp_path):
    a = generate_rec_demo(tmp_path / "a", n_train=24, n_val=6, seed=3)
    b = generate_rec_demo(tmp_path / "b", n_train=24, n_val=6, seed=3)
    c = generate_rec_demo(tmp_path / "c", n_train=24, n_val=6, seed=4)
    assert a.generated and b.generated
    assert _files(a.root) == _files(b.root)
    assert a.train.read_text() != c.train.read_text()

    used = set()
    for label_file, count in ((a.train, 24), (a.val, 6)):
        lines = label_file.read_text(encoding="utf-8").splitlines()
        assert len(lines) == count
        for line in lines:
            rel, text = line.split("\t")
            assert rel.startswith("images/") and rel.endswith(".png")
            assert 1 <= len(text) <= 12 and set(text) <= set(DEMO_ALPHABET)
            image = cv2.imread(str(a.root / rel), cv2.IMREAD_UNCHANGED)
            assert image is not None and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            assert 20 <= image.shape[0] <= 80 and image.shape[1] >= 8
            used.update(text)
    assert a.dict_path.read_text(encoding="utf-8").splitlines() == sorted(used)


def test_generation_is_idempotent_and_safe(tmp_path):
    root = tmp_path / "rec"
    first = generate_rec_demo(root, n_train=5, n_val=2, seed=0)
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    again = generate_rec_demo(root, n_train=5, n_val=2, seed=0)
    assert first.generated and not again.generated
    assert stamp == {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}

    changed = generate_rec_demo(root, n_train=3, n_val=1, seed=0)  # other parameters: redone, no stale images
    assert changed.generated and len(list((root / "images").iterdir())) == 4

    (root / "images" / "train_000000.png").unlink()  # an incomplete set is redone
    assert generate_rec_demo(root, n_train=3, n_val=1, seed=0).generated

    manifest = json.loads((root / "manifest.json").read_text())
    manifest["complete"] = False  # as left by an interrupted run
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert generate_rec_demo(root, n_train=3, n_val=1, seed=0).generated

    foreign = tmp_path / "mine"
    (foreign / "images").mkdir(parents=True)
    (foreign / "train.txt").write_text("images/x.jpg\thello\n")
    with pytest.raises(DataError, match="not empty"):
        generate_rec_demo(foreign, n_train=2, n_val=1, seed=0)
    assert (foreign / "train.txt").read_text() == "images/x.jpg\thello\n"
    with pytest.raises(DataError, match="at least one image"):
        generate_det_demo(tmp_path / "none", n_train=0, n_val=0, seed=0)


def test_det_ink_lies_inside_tight_polygons():
    fonts = demo_font_paths()
    checked = 0
    for seed in range(6):
        image, lines, ink = render_det_image(np.random.default_rng(seed), fonts, num_lines=6)
        assert image.shape == (480, 640, 3) and image.dtype == np.uint8 and ink.shape == (480, 640)
        assert lines and ink.max() > 0.9
        union = np.zeros((480, 640), np.uint8)
        for text, poly in lines:
            assert poly.shape == (4, 2) and poly.dtype == np.int32 and text.strip() == text and text
            assert poly[:, 0].min() >= 0 and poly[:, 0].max() <= 639 and poly[:, 1].max() <= 479
            edge_tl_tr = poly[1] - poly[0]
            edge_tl_bl = poly[3] - poly[0]
            assert _cross(edge_tl_tr, edge_tl_bl) > 0  # TL, TR, BR, BL: clockwise on screen (y down)
            cv2.fillPoly(union, [poly], 1)
            # tight: ink comes within 3.5 px of every edge (the box is the ink box grown by 2 px)
            own = np.zeros((480, 640), np.uint8)
            cv2.fillPoly(own, [poly], 1)
            ys, xs = np.nonzero((ink > 0.3) & (own > 0))
            pts = np.stack([xs, ys], 1).astype(np.float64)
            for i in range(4):
                a, b = poly[i].astype(np.float64), poly[(i + 1) % 4].astype(np.float64)
                d = np.abs(_cross(b - a, pts - a)) / np.linalg.norm(b - a)
                assert d.min() <= 3.5, (seed, text, i, d.min())
            checked += 1
        assert not (ink > 0.02)[union == 0].any()  # every bit of ink is inside some polygon
    assert checked >= 15


def test_det_demo_files_match_the_rendering(tmp_path):
    demo = generate_det_demo(tmp_path / "det", n_train=10, n_val=2, seed=5)
    again = generate_det_demo(tmp_path / "det", n_train=10, n_val=2, seed=5)
    assert demo.generated and not again.generated and demo.dict_path is None
    lines = demo.train.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10 and len(demo.val.read_text().splitlines()) == 2
    for index, line in enumerate(lines):
        rel, label = line.split("\t")
        boxes = json.loads(label)
        image, rendered, _ = det_demo_sample(5, 0, index)
        assert np.array_equal(cv2.imread(str(demo.root / rel)), image)
        assert [b["transcription"] for b in boxes] == [t for t, _ in rendered]
        assert [b["points"] for b in boxes] == [p.tolist() for _, p in rendered]
        if index == 9:
            assert boxes == []  # every 10th image has no text
        else:
            assert boxes and all(len(b["points"]) == 4 for b in boxes)
