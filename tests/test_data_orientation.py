"""Orientation data: class lists and rec / det files turned into classes, the turns PaddleX applies, and the
classifier preprocessing (= PaddleX's ``ClasRunnerPredictor``, bit for bit)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from workbench.data.findings import DataPolicy
from workbench.data.orientation import (
    DOC_CLASSES, TEXTLINE_CLASSES, OrientationDataset, OrientationEvalTransform, detect_format, pipeline_turn,
    read_orientation_labels, turn_clockwise, turn_upright,
)
from workbench.data.preprocess import ClsPreprocess
from workbench.errors import ConfigError, DataError


def _image(path, h=20, w=50, seed=0):
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3)).astype(np.uint8)
    cv2.imwrite(str(path), img)
    return img


def test_class_tokens_name_angle_or_index():
    assert [TEXTLINE_CLASSES.parse(t) for t in ("0_degree", "180_degree", "180", "180°", "1", "0", "90", "x")] == \
        [0, 1, 1, 1, 1, 0, None, None]
    assert [DOC_CLASSES.parse(t) for t in ("0", "90", "180", "270", "1", "3", "4", "45")] == [0, 1, 2, 3, 1, 3, None, None]
    assert detect_format(["180_degree", "0"], TEXTLINE_CLASSES) == "class"
    assert detect_format(["hello", "0"], TEXTLINE_CLASSES) == "rec"
    # a class list with a typo stays a class list (the typo is an unknown_class finding, not a rec text)
    assert detect_format(["180_degree", "0_degree", "sideways"], TEXTLINE_CLASSES) == "class"
    assert detect_format(['[{"transcription": "a", "points": []}]'], DOC_CLASSES) == "det"


def test_a_class_list_tab_or_paddleclas_space_and_bad_labels_with_their_line(tmp_path):
    for name in ("a.png", "b c.png", "d.png"):
        _image(tmp_path / name)
    f = tmp_path / "cls.txt"
    f.write_text("a.png\t180_degree\nb c.png 0\nd.png\tupside\n")
    samples, findings, fmt = read_orientation_labels(f, TEXTLINE_CLASSES, derive=("rec",), label_format="class")
    assert fmt == "class"
    assert [(s.line, s.image_path.name, s.angle, s.derived) for s in samples] == [(1, "a.png", 180, False),
                                                                                  (2, "b c.png", 0, False)]
    assert [(x.code, x.line) for x in findings] == [("unknown_class", 3)]
    with pytest.raises(DataError, match="unknown_class"):
        OrientationDataset([f], TEXTLINE_CLASSES, derive=("rec",), label_format="class", policy=DataPolicy("strict"))


def test_every_rec_crop_gives_every_class_and_the_image_is_turned(tmp_path):
    img = _image(tmp_path / "crop.png")
    f = tmp_path / "rec.txt"
    f.write_text("crop.png\tSOME TEXT\ncrop.png\t0\n")
    ds = OrientationDataset([f], TEXTLINE_CLASSES, derive=("rec",), shuffle=False)
    assert ds.formats == {str(f): "rec"}
    assert [(s.line, s.angle, s.derived) for s in ds.samples] == [(1, 0, True), (1, 180, True), (2, 0, True),
                                                                  (2, 180, True)]
    item = ds[1]
    assert int(item["label"]) == 1 and int(item["angle"]) == 180 and item["derived"]
    np.testing.assert_array_equal(item["image"], img[::-1, ::-1])
    assert ds.class_counts() == {"0_degree": 2, "180_degree": 2}


def test_pages_of_a_det_file_give_four_orientations_and_pages_without_text_none(tmp_path):
    _image(tmp_path / "p1.png", 40, 30)
    _image(tmp_path / "p2.png", 40, 30)
    box = {"transcription": "TOTAL", "points": [[1, 1], [20, 1], [20, 9], [1, 9]]}
    f = tmp_path / "det.txt"
    f.write_text(f"p1.png\t{json.dumps([box])}\np2.png\t{json.dumps([{**box, 'transcription': '###'}])}\n")
    samples, findings, fmt = read_orientation_labels(f, DOC_CLASSES, derive=("det",))
    assert fmt == "det" and [s.angle for s in samples] == [0, 90, 180, 270]
    assert [(x.code, x.line) for x in findings] == [("no_orientation_signal", 2)]
    with pytest.raises(ConfigError, match="a det label file gives no textline_ori samples"):
        read_orientation_labels(f, TEXTLINE_CLASSES, derive=("rec",), task="textline_ori")


def test_class_angles_are_clockwise_and_paddlex_turns_them_back():
    from paddlex.inference.pipelines.components import rotate_image

    img = np.random.default_rng(1).integers(0, 255, (37, 60, 3)).astype(np.uint8)
    for angle in (0, 90, 180, 270):
        turned = turn_clockwise(img, angle)
        np.testing.assert_array_equal(turn_upright(turned, angle), img)
        back = rotate_image(turned, angle)  # what PaddleX does with a predicted angle
        np.testing.assert_array_equal(pipeline_turn(turned, angle), back)
        assert back.shape == img.shape
        if angle:  # up to PaddleX's one-pixel shift (its centre is w / 2), the upright image
            diffs = [np.abs(back[dy:, dx:].astype(int) - img[: img.shape[0] - dy, : img.shape[1] - dx]).mean()
                     for dy in (0, 1) for dx in (0, 1)]
            assert min(diffs) == 0.0
    assert np.array_equal(turn_clockwise(img, 90), np.rot90(img, -1))  # 90° clockwise: the top goes right


@pytest.mark.parametrize("name", ["PP-LCNet_x0_25_textline_ori", "PP-LCNet_x1_0_doc_ori", "ch_ppocr_mobile_v2.0_cls"])
def test_classifier_preprocessing_equals_paddlex(name, data_dir):
    from paddlex.inference.common.reader import ReadImage
    from paddlex.inference.models.common import Normalize, Resize, ResizeByShort, ToCHWImage
    from paddlex.inference.models.image_classification.processors import Crop

    from workbench.models import zoo

    spec = zoo.get_spec(name)
    ours = ClsPreprocess.from_spec(spec.preprocess)
    p = dict(spec.preprocess)
    ops = [ReadImage(format="RGB")]
    ops.append(Resize(target_size=[p["size"][1], p["size"][0]], interp="LINEAR") if p.get("size")
               else ResizeByShort(target_short_edge=p["resize_short"], size_divisor=None, interp="LINEAR"))
    if p.get("crop"):
        ops.append(Crop(crop_size=p["crop"]))
    ops += [Normalize(scale=p["scale"], mean=list(p["mean"]), std=list(p["std"])), ToCHWImage()]
    crops = sorted((data_dir / "sroie_rec" / "images" / "train").iterdir())[:3]
    images = [cv2.imread(str(p)) for p in crops] + [cv2.imread(str(data_dir / "icdar2015_det/images/train/img_1.jpg"))]
    assert all(im is not None for im in images)
    for image in images:
        x = [image]
        for op in ops:
            x = op(x)
        np.testing.assert_array_equal(ours(image), x[0])


def test_eval_transform_feeds_the_model_size(tmp_path):
    _image(tmp_path / "crop.png", 31, 97)
    f = tmp_path / "rec.txt"
    f.write_text("crop.png\tx\n")
    prep = ClsPreprocess(size=(80, 160))
    ds = OrientationDataset([f], TEXTLINE_CLASSES, OrientationEvalTransform(prep), derive=("rec",), shuffle=False)
    assert ds[0]["image"].shape == (3, 80, 160) and ds[0]["image"].dtype == np.float32
