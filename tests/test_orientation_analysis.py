"""`wb analyze pipeline ... textline_ori=...`: the 3-module pipeline in process, measured against the text-line
orientation module, with the wrongly oriented crops written as the next orientation training set; and the
in-process pipeline equals PaddleX's on the same three exported models."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from workbench.analysis.attribution import CORRECT, ORIENTATION
from workbench.analysis.run import parse_args, run_analysis

pytestmark = pytest.mark.slow


def _upside_down_set(data_dir: Path, out: Path, lines=(16, 19)) -> Path:
    """ICDAR 2015 images (label lines ``lines``) turned by 180°, their polygons turned with them."""
    rows = (data_dir / "icdar2015_det" / "label.txt").read_text(encoding="utf-8").splitlines()
    out.mkdir(parents=True, exist_ok=True)
    label = []
    for i in lines:
        rel, ann = rows[i - 1].split("\t", 1)
        image = cv2.imread(str(data_dir / "icdar2015_det" / rel))
        h, w = image.shape[:2]
        name = f"turned_{Path(rel).name}"
        cv2.imwrite(str(out / name), np.ascontiguousarray(image[::-1, ::-1]))
        boxes = json.loads(ann)
        for b in boxes:
            b["points"] = [[w - x, h - y] for x, y in b["points"]]
        label.append(f"{name}\t{json.dumps(boxes)}\n")
    (out / "label.txt").write_text("".join(label), encoding="utf-8")
    return out / "label.txt"


def test_orientation_errors_are_measured_against_the_module(stock_weights, stock_textline_weights, stock, data_dir,
                                                           tmp_path):
    data = _upside_down_set(data_dir, tmp_path / "data")
    common = [f"data={data}", f"det={stock_weights['det']}", f"rec={stock_weights['rec']}",
              f"rec_dict={stock / 'ppocrv5_dict.txt'}"]
    without = run_analysis(parse_args(common + [f"out={tmp_path / 'without'}"]))
    with_module = run_analysis(parse_args(common + [f"textline_ori={stock_textline_weights}",
                                                    f"out={tmp_path / 'with'}"]))
    a, b = without["verdict"], with_module["verdict"]
    assert a.total == b.total == 23
    # upside down and no orientation model: the misread texts that read right turned are orientation errors
    assert a.by_outcome[ORIENTATION] >= 5 and a.correct <= 2
    assert with_module["describe"]["text-line orientation"] and "textline_ori" in with_module["describe"]
    o = with_module["orientation"]
    # the stock classifier (PaddleOCR 2.x's, imported from ONNX, = onnxruntime within 1e-5) turns half of these
    # detected crops upright (10 of 20; 0.80 of ICDAR 2015's ground-truth crops): the module is measured as it is
    assert o["crops"] >= 10 and o["turned"] >= 0.5 * o["crops"]
    assert b.correct >= a.correct + 4 and b.by_outcome[ORIENTATION] < a.by_outcome[ORIENTATION]
    left = [g for g in with_module["gts"] if g["outcome"] == ORIENTATION and g.get("pred_rotated_correct")]
    assert o["wrong_turns"] + o["missed_turns"] == len(left)
    # the texts the module left wrong are the next orientation training set, labelled with their truth
    n = with_module["next_training_set"]
    assert n["textline_ori_samples"] == sum(1 for g in with_module["gts"] if g["outcome"] == ORIENTATION
                                            and (g.get("pred_rotated_correct") or g.get("rotated_correct")))
    if n["textline_ori_samples"]:
        from workbench.data.orientation import TEXTLINE_CLASSES, OrientationDataset

        ds = OrientationDataset([n["textline_ori_label_file"]], TEXTLINE_CLASSES, derive=("rec",))
        assert ds.formats == {n["textline_ori_label_file"]: "class"}
    assert a.first is not None and "text-line orientation" in [m.module for m in a.modules]
    corrects = {g["text"] for g in with_module["gts"] if g["outcome"] == CORRECT}
    assert len(corrects) >= 5


def test_in_process_pipeline_equals_paddlex_with_a_textline_model(tiny_det_run, tiny_rec_run, stock_textline_run,
                                                                 data_dir, tmp_path):
    """The three modules exported (no verification) and run by paddlex.create_pipeline vs WorkbenchPipeline:
    same boxes, same orientation decisions, same texts."""
    from workbench.analysis.pipeline import WorkbenchPipeline, load_pipeline
    from workbench.export import inference_model, inference_yml
    from workbench.models import zoo
    from workbench.tasks import registry

    folders = {}
    for task, run in (("det", tiny_det_run), ("rec", tiny_rec_run), ("textline_ori", stock_textline_run)):
        source = inference_model.load_export_source(str(run), task)
        inference_model.save_inference_model(source, tmp_path / task)
        writer = registry.get(task).export_writer
        post = {"max_candidates": 1000, "score_mode": "fast", "thresh": 0.2, "box_thresh": 0.4, "unclip_ratio": 1.5}
        content = writer.inference_config(source, post if task == "det" else {})
        inference_yml.write_inference_yml(tmp_path / task, content, source.describe())
        folders[task] = tmp_path / task
        assert zoo.get_spec(source.model_name).task == task
    settings = {"thresh": 0.2, "box_thresh": 0.4}
    theirs = load_pipeline(str(folders["det"]), str(folders["rec"]), textline_ori=str(folders["textline_ori"]),
                           settings=settings)
    ours = load_pipeline(str(tiny_det_run), str(tiny_rec_run), textline_ori=str(stock_textline_run),
                         settings=settings)
    assert isinstance(ours, WorkbenchPipeline) and theirs.kind == "paddlex" and ours.orientation_model
    image = cv2.imread(str(data_dir / "icdar2015_det" / "images" / "train" / "img_1.jpg"))[::-1, ::-1].copy()
    a, b = ours.run(image), theirs.run(image)
    assert len(a.polys) == len(b.polys) >= 4
    assert a.angles == b.angles and set(a.angles) <= {0, 1}
    assert a.texts == b.texts
