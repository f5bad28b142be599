"""Training augmentation: det polygons stay on their pixels, crops keep text, rec outputs, determinism."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from workbench.data.augment import (
    DetAugmentConfig,
    _copy_paste,
    build_det_augment,
    build_rec_augment,
    random_text_crop,
    random_text_window,
)
from workbench.errors import ConfigError, DataError

BACKGROUND = 60


def _det_sample():
    """480x640 grey image with three filled polygons (4, 5 and 8 points), each in its own colour channel."""
    image = np.full((480, 640, 3), BACKGROUND, np.uint8)
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    polys = [
        np.array([[60, 60], [330, 80], [320, 170], [50, 150]], np.float32),
        np.array([[380, 250], [590, 230], [610, 330], [480, 380], [370, 330]], np.float32),
        np.stack([180 + 110 * np.cos(t), 350 + 70 * np.sin(t)], 1).astype(np.float32),
    ]
    for channel, poly in enumerate(polys):
        layer = np.ascontiguousarray(image[:, :, channel])
        cv2.fillPoly(layer, [np.round(poly).astype(np.int32)], 255)
        image[:, :, channel] = layer
    return {"image": image, "polys": polys, "ignore_tags": [False, False, False], "texts": ["b", "g", "r"]}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_det_polygons_stay_on_their_pixels():
    aug = build_det_augment(seed=0)
    sample = _det_sample()
    checked = 0
    for seed in range(12):
        out = aug(sample, rng=np.random.default_rng(seed))
        image = out["image"]
        assert image.shape == (640, 640, 3) and image.dtype == np.uint8
        valid = image.max(axis=2) > 0  # excludes the black padding and the corners rotated in
        for poly, text in zip(out["polys"], out["texts"]):
            channel = "bgr".index(text)
            ink = (image[:, :, channel] > 160) & valid
            drawn = np.zeros(image.shape[:2], np.uint8)
            cv2.fillPoly(drawn, [np.round(poly).astype(np.int32)], 1)
            drawn = drawn.astype(bool) & valid
            if drawn.sum() < 400:  # a sliver at the crop border: too few pixels for a meaningful IoU
                continue
            # measured ≥ 0.988; a polygon off by 5 px (at 640 px scale) scores < 0.98
            assert _iou(ink, drawn) > 0.98, (seed, text, _iou(ink, drawn))
            checked += 1
    assert checked >= 12


def test_det_flip_maps_vertices_exactly_and_tags_follow_polygons():
    cfg = DetAugmentConfig(flip_p=1.0, rotate=(0, 0), scale=(1, 1), crop_size=(640, 480))
    sample = _det_sample()
    sample["ignore_tags"] = [True, True, True]  # no care polygon -> the crop is the whole image
    out = build_det_augment(cfg)(sample, rng=np.random.default_rng(0))
    assert np.array_equal(out["image"], sample["image"][:, ::-1])
    for before, after in zip(sample["polys"], out["polys"]):
        assert after.dtype == np.float32 and after.shape == before.shape
        np.testing.assert_allclose(after[:, 0], 639 - before[:, 0], atol=1e-4)
        np.testing.assert_allclose(after[:, 1], before[:, 1], atol=1e-4)
    assert out["ignore_tags"] == [True, True, True] and out["texts"] == ["b", "g", "r"]

    # mixed flags: every output polygon keeps the flag of the polygon it came from
    sample = _det_sample()
    sample["ignore_tags"] = [False, True, False]
    aug = build_det_augment(seed=3)
    for seed in range(6):
        out = aug(sample, rng=np.random.default_rng(seed))
        for tag, text in zip(out["ignore_tags"], out["texts"]):
            assert tag == (text == "g")


def test_det_crop_keeps_text_and_never_cuts_it():
    rng = np.random.default_rng(0)
    polys = [np.array([[x, y], [x + 80, y], [x + 80, y + 30], [x, y + 30]], np.float32)
             for x, y in [(30, 40), (300, 200), (520, 400), (150, 600)]]
    non_full = 0
    for _ in range(100):
        x, y, w, h = random_text_crop(rng, (720, 640), polys, 0.1, 50)
        assert w >= 0.1 * 640 and h >= 0.1 * 720
        assert any(not (p[:, 0].max() < x or p[:, 0].min() > x + w or p[:, 1].max() < y or p[:, 1].min() > y + h)
                   for p in polys)
        if (x, y, w, h) != (0, 0, 640, 720):
            non_full += 1
            for p in polys:  # the crop borders run through text-free rows / columns only
                for border in (x, x + w):
                    assert not (p[:, 0].min() < border < p[:, 0].max())
                for border in (y, y + h):
                    assert not (p[:, 1].min() < border < p[:, 1].max())
    assert non_full > 50
    assert random_text_crop(rng, (100, 200), [], 0.1, 50) == (0, 0, 200, 100)

    # through the whole pipeline: a care polygon always survives
    aug = build_det_augment(seed=1)
    for seed in range(10):
        out = aug(_det_sample(), rng=np.random.default_rng(seed))
        assert any(not tag for tag in out["ignore_tags"])


def test_det_window_anywhere_reaches_the_margins():
    """Windows around text hold a line's centre; window_anywhere_p puts that share anywhere on the page, so a
    large scan's text-free margins (dust, stamps: the false boxes) are trained on as background."""
    page_hw, size = (4000, 2800), (640, 640)
    line = [np.array([[1300, 1900], [1500, 1900], [1500, 1940], [1300, 1940]], np.float32)]

    def windows(p, n=400):
        rng = np.random.default_rng(0)
        return np.array([random_text_window(rng, page_hw, line, size, p) for _ in range(n)])

    around = windows(0.0)
    assert (around[:, 2:] == 640).all() and (around[:, 0] <= 1400).all() and (around[:, 0] + 640 > 1400).all()
    assert (around[:, 1] <= 1920).all() and (around[:, 1] + 640 > 1920).all()
    mixed = windows(0.25)
    holds_line = (mixed[:, 0] <= 1400) & (mixed[:, 0] + 640 > 1400) & (mixed[:, 1] <= 1920) & (mixed[:, 1] + 640 > 1920)
    assert 0.15 < 1 - holds_line.mean() < 0.3   # ~25 % drawn anywhere, a few of those land on the line anyway
    assert mixed[:, 0].min() < 300 and mixed[:, 0].max() > 2800 - 640 - 300  # both margins reached
    assert ((mixed[:, :2] >= 0) & (mixed[:, :2] + 640 <= (2800, 4000))).all()  # inside the page

    cfg = DetAugmentConfig(rotate=(0, 0), scale=(1, 1), crop_size=(320, 320), crop_resize=False, window_anywhere_p=1.0)
    out = build_det_augment(cfg)(_det_sample(), rng=np.random.default_rng(0))
    assert out["image"].shape == (320, 320, 3)
    with pytest.raises(ConfigError, match="crop_resize=false"):
        build_det_augment({"window_anywhere_p": 0.2})
    with pytest.raises(ConfigError, match="probability"):
        build_det_augment({"window_anywhere_p": 1.5, "crop_resize": False})


def test_det_determinism_and_input_untouched():
    aug = build_det_augment(seed=0)
    sample = _det_sample()
    original = sample["image"].copy()
    a = aug(sample, rng=np.random.default_rng(42))
    b = build_det_augment(seed=123)(sample, rng=np.random.default_rng(42))
    c = aug(sample, rng=np.random.default_rng(43))
    assert np.array_equal(a["image"], b["image"])
    assert len(a["polys"]) == len(b["polys"]) and all(np.array_equal(p, q) for p, q in zip(a["polys"], b["polys"]))
    assert not np.array_equal(a["image"], c["image"])
    assert np.array_equal(sample["image"], original) and len(sample["polys"]) == 3
    # the object's own generator, seeded at build time, is reproducible too
    x = build_det_augment(seed=5)(sample)
    y = build_det_augment(seed=5)(sample)
    assert np.array_equal(x["image"], y["image"])


def test_det_copy_paste_pastes_text_pixels():
    rng = np.random.default_rng(0)
    image = np.full((400, 400, 3), BACKGROUND, np.uint8)
    own = [np.array([[10, 10], [100, 10], [100, 40], [10, 40]], np.float32)]
    other_image = np.zeros((200, 300, 3), np.uint8)
    quad = np.array([[20, 50], [220, 50], [220, 100], [20, 100]], np.float32)
    other_image[50:100, 20:220] = (0, 0, 255)
    other = {"image": other_image, "polys": [quad], "ignore_tags": [False], "texts": ["pasted"]}
    out_image, polys, tags, texts = _copy_paste(image, own, [False], ["own"], other, rng, 0.2, True)
    assert len(polys) == 2 and texts == ["own", "pasted"] and tags == [False, False]
    drawn = np.zeros((400, 400), np.uint8)
    cv2.fillPoly(drawn, [np.round(polys[1]).astype(np.int32)], 1)
    red = out_image[:, :, 2] > 160
    assert _iou(red, drawn.astype(bool)) > 0.9
    # pasted where it does not overlap the existing polygon's box
    assert not red[10:41, 10:101].any()


def _rec_sample(text="Hello", width=200):
    image = np.full((40, width, 3), 200, np.uint8)
    cv2.putText(image, text, (4, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2)
    return {"image": image, "text": text, "path": "x.png"}


def test_rec_augment_shapes_dtypes_and_determinism():
    aug = build_rec_augment(seed=0)
    sample = _rec_sample()
    outs = [aug(sample, rng=np.random.default_rng(s)) for s in range(20)]
    for out in outs:
        img = out["image"]
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert 40 - 8 <= img.shape[0] <= 40 and img.shape[1] == 200  # at most 8 rows cropped, width kept
        assert out["text"] == "Hello" and out["path"] == "x.png"
    assert len({o["image"].tobytes() for o in outs}) > 15  # it does augment
    again = aug(sample, rng=np.random.default_rng(7))
    assert np.array_equal(again["image"], outs[7]["image"])
    assert np.array_equal(build_rec_augment(seed=9)(sample)["image"], build_rec_augment(seed=9)(sample)["image"])


def test_rec_concat_follows_upstream_limits():
    only_concat = dict(concat_p=1.0, tia_p=0, crop_p=0, blur_p=0, color_p=0, noise_p=0, invert_p=0)
    aug = build_rec_augment(only_concat)
    rng = np.random.default_rng(0)
    extra = _rec_sample("ab", width=60)
    out = aug({**_rec_sample("Hi", width=80), "ext_data": [extra, extra]}, rng=rng)
    # 80/40 + 60/40 = 3.5 <= 320/48; then 2 + 1.5... each piece resized to height 48
    assert out["text"] == "Hiabab" and "ext_data" not in out
    assert out["image"].shape == (48, 96 + 72 + 72, 3)

    # too wide: 200/40 + 60/40 = 6.5 <= 6.67 ok once, then over
    out = aug({**_rec_sample("Hello", width=200), "ext_data": [extra, extra]}, rng=rng)
    assert out["text"] == "Helloab"
    # too long: 24 + 2 > 25
    out = aug({**_rec_sample("x" * 24, width=80), "ext_data": [extra]}, rng=rng)
    assert out["text"] == "x" * 24 and out["image"].shape == (40, 80, 3)
    # concat_p 0: ext_data dropped, nothing merged
    out = build_rec_augment({**only_concat, "concat_p": 0.0})({**_rec_sample("Hi", 80), "ext_data": [extra]})
    assert out["text"] == "Hi" and "ext_data" not in out


def test_config_and_input_errors():
    with pytest.raises(ConfigError, match="unknown key 'flip'"):
        build_det_augment({"flip": 0.5})
    with pytest.raises(ConfigError, match="probability"):
        build_rec_augment({"blur_p": 2})
    with pytest.raises(ConfigError, match="scale"):
        build_det_augment({"scale": [3, 0.5]})
    with pytest.raises(DataError, match="HWC uint8"):
        build_rec_augment()({"image": np.zeros((4, 4), np.uint8), "text": "a"})
    with pytest.raises(DataError, match="ignore tags"):
        build_det_augment()({"image": np.zeros((8, 8, 3), np.uint8), "polys": [np.zeros((4, 2))], "ignore_tags": []})
    assert build_det_augment({"copy_paste": True}).ext_data_num == 1
    assert build_rec_augment().ext_data_num == 2


def test_rec_crop_and_invert_steps():
    steps_off = dict(concat_p=0, tia_p=0, crop_p=0, blur_p=0, color_p=0, noise_p=0, invert_p=0)
    image = np.random.default_rng(0).integers(0, 256, (40, 100, 3)).astype(np.uint8)
    crop = build_rec_augment({**steps_off, "crop_p": 1.0})
    heights = set()
    for seed in range(20):
        out = crop({"image": image, "text": "a"}, rng=np.random.default_rng(seed))["image"]
        h = out.shape[0]
        heights.add(h)
        assert np.array_equal(out, image[40 - h :]) or np.array_equal(out, image[:h])  # rows off top or bottom
    assert heights <= set(range(32, 40)) and len(heights) > 3
    invert = build_rec_augment({**steps_off, "invert_p": 1.0})
    assert np.array_equal(invert({"image": image, "text": "a"})["image"], 255 - image)


def test_rec_low_ink_only_lightens_the_ink():
    """Dark text on light paper: only pixels darker than the paper change, only lighter and never past it, some
    ink is lost on every draw, and a draw is reproducible from its seed."""
    steps_off = dict(concat_p=0, tia_p=0, crop_p=0, blur_p=0, color_p=0, noise_p=0, invert_p=0)
    image = np.full((32, 160, 3), 230, np.uint8)
    cv2.putText(image, "TOTAL 12.50", (4, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (20, 20, 20), 2)
    ink = image[..., 0] < 230
    aug = build_rec_augment({**steps_off, "low_ink_p": 1.0})
    for seed in range(10):
        out = aug({"image": image, "text": "a"}, rng=np.random.default_rng(seed))["image"]
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.array_equal(out[~ink], image[~ink])  # the paper is untouched
        assert (out >= image).all() and (out <= 230).all()  # ink only lightens, up to the paper's shade
        assert (out[ink] > image[ink]).mean() > 0.02  # and some of it does
        again = aug({"image": image, "text": "a"}, rng=np.random.default_rng(seed))["image"]
        assert np.array_equal(out, again)
    assert np.array_equal(build_rec_augment({**steps_off, "low_ink_p": 0.0})({"image": image, "text": "a"})["image"],
                          image)
    with pytest.raises(ConfigError, match="probability"):
        build_rec_augment({"low_ink_p": -0.1})


def test_det_augment_then_db_targets():
    from workbench.data.db_targets import DBTargets

    aug, targets = build_det_augment(seed=0), DBTargets()
    for seed in range(4):
        out = targets(aug(_det_sample(), rng=np.random.default_rng(seed)))
        assert out["shrink_map"].shape == (640, 640) and out["threshold_map"].dtype == np.float32
        positive = out["shrink_map"] > 0
        assert positive.sum() > 1000
        ink = out["image"].max(axis=2) > 160  # any of the three coloured polygons
        assert (positive & ink).sum() / positive.sum() > 0.97  # the shrunk text cores sit on the text pixels
