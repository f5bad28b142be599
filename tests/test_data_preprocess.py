"""Eval / pipeline preprocessing must equal PaddleX's own processors bit for bit on real images."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from conftest import require

from workbench.data.preprocess import (
    DetResize,
    DetShape,
    batch_rec,
    normalize_det,
    preprocess_det,
    preprocess_rec_batch,
    resize_norm_rec,
    resize_norm_rec_fixed,
)

pdx_det = require("paddlex.inference.models.text_detection.processors")
pdx_rec = require("paddlex.inference.models.text_recognition.processors")
from paddlex.inference.models.common import ToCHWImage  # noqa: E402


def _read(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image


@pytest.fixture(scope="module")
def det_images(data_dir):
    """A few real pages of different sizes plus derived edge cases (tiny, very long strip)."""
    paths = [
        data_dir / "icdar2015_det/images/train/img_1.jpg",  # 720x1280
        data_dir / "sroie_det/images/train/011.jpg",  # tall receipt
        data_dir / "msra_td500_det/images/test/IMG_0156.JPG",
        data_dir / "ccpd_plate_det/images/test/ccpd_000.jpg",
    ]
    images = {p.name: _read(p) for p in paths}
    page = images["img_1.jpg"]
    images["strip_100x1280"] = np.ascontiguousarray(page[300:400])  # min-736 upscale hits the 4000 cap
    images["tiny_20x30"] = np.ascontiguousarray(page[100:120, 200:230])  # h + w < 64 → zero padding
    images["exact_640x960"] = cv2.resize(page, (960, 640))  # already multiples of 32 → no resize
    return images


def _paddlex_det(image, limit_side_len, limit_type, max_side_limit):
    """How TextDetRunnerPredictor.process runs Resize → Normalize → ToCHW for one image."""
    resize = pdx_det.DetResizeForTest(limit_side_len=limit_side_len, limit_type=limit_type)
    imgs, shapes = resize([image], limit_side_len=limit_side_len, limit_type=limit_type, max_side_limit=max_side_limit)
    # the exported inference.yml's NormalizeImage: scale "1./255." (a string PaddleX evaluates), order hwc
    normalize = pdx_det.NormalizeImage(
        mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], scale=1 / 255, order="hwc"
    )
    (chw,) = ToCHWImage()(normalize(imgs))
    return imgs[0], chw, shapes[0]


@pytest.mark.parametrize(
    "resize",
    [
        DetResize.pipeline(),
        DetResize.paddlex_module(),
        DetResize(736, "min", 4000),
        DetResize(640, "resize_long", 4000),
    ],
    ids=["pipeline-min64", "module-max960", "min736", "resize_long640"],
)
def test_det_resize_and_normalize_equal_paddlex(det_images, resize):
    for name, image in det_images.items():
        ours_resized, shape = resize(image)
        ref_resized, ref_chw, ref_shape = _paddlex_det(
            image, resize.limit_side_len, resize.limit_type, resize.max_side_limit
        )
        assert ours_resized.shape == ref_resized.shape, name
        assert np.array_equal(ours_resized, ref_resized), name
        assert np.array_equal(shape.as_array(), ref_shape), (name, shape, ref_shape)
        ours_chw, shape2 = preprocess_det(image, resize)
        assert shape2 == shape
        assert ours_chw.dtype == np.float32 and ours_chw.shape == ref_chw.shape, name
        assert np.array_equal(ours_chw, ref_chw), name
        h, w = ours_chw.shape[1:]
        assert h % 32 == 0 and w % 32 == 0


def test_det_resize_geometry(det_images):
    page = det_images["img_1.jpg"]  # 720 x 1280
    resized, shape = DetResize.pipeline()(page)
    # no upscale (short side 720 >= 64), but 720/32 = 22.5 rounds half-to-even to 22: the pipeline shrinks to 704
    assert resized.shape[:2] == (704, 1280)
    assert shape == DetShape(720, 1280, 704 / 720, 1.0)
    resized, shape = DetResize.upstream_eval()(page)  # short side → 736
    assert resized.shape[:2] == (736, 1312)  # 1280 * 736/720 = 1308.4 → nearest multiple of 32 → 1312
    assert shape.ratio_h == 736 / 720 and shape.ratio_w == 1312 / 1280
    strip = det_images["strip_100x1280"]
    resized, _ = DetResize.upstream_eval()(strip)  # 736 x 9420 → capped: 312 x 4000 → rounded to 32
    assert resized.shape[:2] == (320, 4000)
    uncapped, _ = DetResize.upstream_eval(max_side_limit=None)(strip)
    assert uncapped.shape[:2] == (736, 9408)  # 9420 / 32 = 294.4 → 294 * 32
    tiny, shape = DetResize.pipeline()(det_images["tiny_20x30"])
    assert (shape.src_h, shape.src_w) == (20, 30)  # padded internally to 32x32, original size reported
    assert tiny.shape[:2] == (64, 64)  # 32x32 → short side 64
    assert np.all(tiny[-20:, -20:] == 0)  # the zero padding (bottom/right) survives the upscale


def test_upstream_normalisation_matches_fixture(fixtures_dir):
    """Upstream's training-side arithmetic reproduces the parity fixture's input exactly (README §2.2)."""
    npz = np.load(fixtures_dir / "parity/PP-OCRv5_mobile_det_bncal_io.npz")
    image = npz["input_uint8_bgr_nhwc"][0]
    expected = npz["input"][0]
    ours = normalize_det(image, arithmetic="upstream")
    assert np.array_equal(ours, expected)
    # the deployed arithmetic differs from it by at most a couple of float32 ulps, never more
    deployed = normalize_det(image, arithmetic="paddlex")
    assert np.abs(deployed - expected).max() < 1e-6


def test_normalize_det_channel_order_and_rgba():
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0] = 255  # channel 0 (B in OpenCV order) gets mean/std of index 0
    out = normalize_det(image)
    assert out.shape == (3, 2, 2)
    assert out[0, 0, 0] == pytest.approx((1 - 0.485) / 0.229, abs=1e-6)
    assert out[1, 0, 0] == pytest.approx(-0.456 / 0.224, abs=1e-6)
    rgba = np.concatenate([image, np.full((2, 2, 1), 7, np.uint8)], axis=2)
    assert np.array_equal(normalize_det(rgba), out)
    with pytest.raises(ValueError):
        normalize_det(np.zeros((4, 4), np.uint8))


@pytest.fixture(scope="module")
def rec_crops(data_dir):
    root = data_dir / "sroie_rec"
    lines = (root / "label.txt").read_text(encoding="utf-8").splitlines()[:12]
    crops = [_read(root / line.split("\t")[0]) for line in lines]
    root = data_dir / "icdar2015_rec"
    lines = (root / "label.txt").read_text(encoding="utf-8").splitlines()[:6]
    crops += [_read(root / line.split("\t")[0]) for line in lines]
    page = _read(data_dir / "icdar2015_det/images/train/img_1.jpg")
    crops.append(np.ascontiguousarray(page[100:115, 0:1280]))  # ratio 85 → canvas 4096 > 3200: squeezed
    crops.append(np.ascontiguousarray(page[100:160, 0:20]))  # taller than wide
    return crops


def test_rec_dynamic_resize_equals_paddlex(rec_crops):
    ref_op = pdx_rec.OCRReisizeNormImg(rec_image_shape=[3, 48, 320])
    refs = ref_op(rec_crops)
    for crop, ref in zip(rec_crops, refs):
        ours = resize_norm_rec(crop)
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        assert np.array_equal(ours, ref)
    # the predictor's ToBatch over the sorted batch, as TextRecRunnerPredictor does
    (ref_batch,) = pdx_rec.ToBatch()(refs)
    ours_batch = preprocess_rec_batch(rec_crops)
    assert ours_batch.shape == ref_batch.shape and np.array_equal(ours_batch, ref_batch)
    assert ours_batch.shape[3] == 3200  # the 1280x15 strip hits the width cap
    assert np.array_equal(batch_rec([resize_norm_rec(c) for c in rec_crops]), ours_batch)


def test_rec_explicit_batch_ratio_and_range(rec_crops):
    crop = rec_crops[0]
    h, w = crop.shape[:2]
    out = resize_norm_rec(crop, max_wh_ratio=20.0)  # upstream predict_rec style: canvas from the batch max ratio
    assert out.shape == (3, 48, 960)
    resized_w = min(960, math.ceil(48 * w / h))
    assert np.all(out[:, :, resized_w:] == 0)
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_rec_fixed_resize_matches_upstream_formula(rec_crops):
    for crop in rec_crops:
        ours, valid_ratio = resize_norm_rec_fixed(crop)
        assert ours.shape == (3, 48, 320)
        h, w = crop.shape[:2]
        resized_w = min(320, math.ceil(48 * w / h))
        expected = np.zeros((3, 48, 320), np.float32)
        body = cv2.resize(crop, (resized_w, 48)).astype(np.float32).transpose(2, 0, 1) / 255
        expected[:, :, :resized_w] = (body - 0.5) / 0.5
        assert np.array_equal(ours, expected)
        assert valid_ratio == pytest.approx(min(1.0, resized_w / 320))
    # the fixed 48x320 and PaddleX's dynamic resize agree for crops up to ratio 320/48
    narrow = [c for c in rec_crops if c.shape[1] / c.shape[0] <= 320 / 48]
    assert narrow
    for crop in narrow:
        assert np.array_equal(resize_norm_rec_fixed(crop)[0], resize_norm_rec(crop))
