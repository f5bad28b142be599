"""``wb weights import`` of the stock text-line orientation classifier (``textline_orientation_cls.onnx``, weights
stored as graph constants) into ``ch_ppocr_mobile_v2.0_cls``: the imported model reproduces onnxruntime on real
crops from ../shared, turned both ways.

Measured (this test's probe: 12 ICDAR 2015 + 12 SROIE crops, each upright and turned by 180°, PaddleX's classifier
preprocessing): max |diff| of the probabilities 8.8e-6 (16 ICDAR crops x 2 through the command), decided classes
identical. A wrong mapping gives differences of order 0.1 .. 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import paddle

from workbench.models import zoo
from workbench.weights import importers as imp

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _crops(data_dir: Path, folder: str, n: int) -> list[np.ndarray]:
    rows = (data_dir / folder / "label.txt").read_text(encoding="utf-8").splitlines()[:n]
    return [cv2.imread(str(data_dir / folder / r.split("\t", 1)[0])) for r in rows]


def test_imported_classifier_matches_onnxruntime_on_real_crops(stock_textline_weights, stock, data_dir):
    spec = zoo.get_spec("ch_ppocr_mobile_v2.0_cls")
    model = zoo.build_model(spec.name)
    model.set_state_dict(paddle.load(str(stock_textline_weights)))
    model.eval()
    crops = _crops(data_dir, "icdar2015_rec", 12) + _crops(data_dir, "sroie_rec", 12)
    batches = imp.preprocess_images("textline_ori", crops, spec=spec, turned=True)
    assert sum(len(b) for b in batches) == 48
    parity = imp.compare_with_source(model, imp.source_runtime(stock / "textline_orientation_cls.onnx"), batches,
                                     decode=lambda p: [(int(i), 0.0) for i in p.argmax(-1)])
    assert parity["samples"] == 48
    assert parity["max_abs_diff"] < 1e-4 and parity["text_mismatches"] == 0
    record = json.loads(stock_textline_weights.with_name("textline_cls.import.json").read_text())
    assert record["model_name"] == "ch_ppocr_mobile_v2.0_cls" and record["task"] == "textline_ori"
    assert record["mapped_units"] == 54 and record["initialised"] == []  # every tensor comes from the graph


def test_wb_weights_import_prints_how_to_fine_tune(stock, data_dir, tmp_path):
    out = tmp_path / "cls.pdparams"
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "weights", "import", str(stock / "textline_orientation_cls.onnx"),
         "--model", "ch_ppocr_mobile_v2.0_cls", "--out", str(out), "--probe",
         str(data_dir / "sroie_rec" / "label.txt"), "--probe-count", "8"],
        capture_output=True, text=True, env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": str(Path(sys.executable).parent)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "decoded classes differing: 0" in proc.stdout and "16 images from" in proc.stdout
    assert f"wb train recipe=textline_ori_finetune model.name=ch_ppocr_mobile_v2.0_cls model.pretrained={out}" \
        in proc.stdout
    assert out.is_file()
