"""The orientation tasks on the registry: training and evaluation at tiny size, the report with its confusion
table, wb eval of the imported stock classifier, the data check, and wb compare on classifier records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.tasks import registry

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_registry_lists_the_orientation_tasks_in_pipeline_order():
    assert registry.names() == ["doc_ori", "det", "textline_ori", "rec"]
    tl, doc = registry.get("textline_ori"), registry.get("doc_ori")
    assert (tl.pipeline_module, tl.stock_model, tl.recipe) == ("TextLineOrientation", "PP-LCNet_x1_0_textline_ori",
                                                               "textline_ori_finetune")
    assert (doc.pipeline_module, doc.stock_model, doc.recipe) == ("DocOrientationClassify", "PP-LCNet_x1_0_doc_ori",
                                                                  "doc_ori_finetune")
    assert tl.export_writer.optional and doc.export_writer.optional
    assert not registry.get("det").export_writer.optional


def test_tiny_textline_run_trains_scores_and_reports(tiny_textline_run):
    run = Path(tiny_textline_run)
    meta = json.loads((run / "checkpoints" / "best" / "meta.json").read_text())
    assert meta["task"] == "textline_ori" and meta["classes"] == ["0_degree", "180_degree"]
    assert meta["image_shape"] == [3, 80, 160] and meta["trained_steps"] > 0 and meta["weights_complete"]
    summary = json.loads((run / "report" / "summary.json").read_text())
    m = summary["metrics"]
    assert summary["task"] == "textline_ori" and m["n"] == 16 and m["n_0_degree"] == m["n_180_degree"] == 8
    assert 0.0 <= m["acc"] <= 1.0 and {"recall_0_degree", "precision_180_degree"} <= set(m)
    rows = [json.loads(line) for line in (run / "report" / "records.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and {"gt_label", "pred_label", "correct", "angle", "derived", "label_file", "line"} <= set(rows[0])
    assert sum(r["correct"] for r in rows) == round(m["acc"] * 16)
    html = (run / "report" / "report.html").read_text()
    assert "Confusion" in html and "labelled \\ predicted" in html and "turned from an upright image" in html


def test_the_imported_stock_classifier_evaluates_on_real_crops(stock_textline_weights, data_dir, tmp_path):
    """wb eval reads the model name from the import record; the stock model decides SROIE crops turned either way
    far above chance (measured: acc 0.885 on the first 200 crops x 2; PaddleX's stretch-to-48x192 input is not the
    padded input it was trained with)."""
    import workbench

    cfg = workbench.compose(["recipe=textline_ori_finetune", f"checkpoint={stock_textline_weights}",
                             f"data.val={data_dir / 'sroie_rec' / 'label.txt'}", "data.max_val_samples=100",
                             "tracking=off", f"trainer.output_dir={tmp_path}"])
    result = workbench.evaluate(cfg, tmp_path)
    assert result["metrics"]["n"] == 100
    assert result["metrics"]["acc"] > 0.8


def test_doc_orientation_trains_on_pages_turned_four_ways(shared_dir, tmp_path):
    from tiny_runs import textline_config, train

    cfg = textline_config(shared_dir, tmp_path / "run", task="doc_ori")
    cfg.model.name = "doc_ori_tiny"
    cfg.data.train = cfg.data.val = str(shared_dir / "data" / "icdar2015_det" / "label.txt")
    cfg.data.max_train_samples, cfg.data.max_val_samples, cfg.data.batch_size = 8, 8, 8
    run = Path(train(cfg))
    m = json.loads((run / "report" / "summary.json").read_text())["metrics"]
    assert m["n"] == 8 and all(m[f"n_{c}"] == 2 for c in ("0", "90", "180", "270"))


def test_a_det_file_for_text_lines_is_a_one_line_error(shared_dir, tmp_path):
    import workbench
    from workbench.errors import ConfigError

    cfg = workbench.compose(["recipe=textline_ori_finetune", "tracking=off",
                             f"data.train={shared_dir / 'data' / 'icdar2015_det' / 'label.txt'}"])
    with pytest.raises(ConfigError, match=r"icdar2015_det/label.txt: a det label file gives no textline_ori"):
        registry.build_task(cfg).train_dataset()


def test_wb_data_check_textline_ori_reads_rec_files_and_class_lists(data_dir, tmp_path):
    crops = data_dir / "sroie_rec"
    rows = (crops / "label.txt").read_text(encoding="utf-8").splitlines()[:6]
    cls = tmp_path / "cls.txt"
    cls.write_text("".join(f"{crops / r.split(chr(9))[0]}\t{'180_degree' if i % 2 else '0_degree'}\n"
                           for i, r in enumerate(rows)) + f"{crops / rows[0].split(chr(9))[0]}\tsideways\n")
    rec = tmp_path / "rec.txt"
    rec.write_text("".join(f"{crops / r.split(chr(9))[0]}\t{r.split(chr(9))[1]}\n" for r in rows))
    env = {"PYTHONPATH": str(PROJECT_ROOT), "PATH": str(Path(sys.executable).parent)}
    ok = subprocess.run([sys.executable, "-m", "workbench.cli", "data", "check", "textline_ori", str(rec),
                         "--out", str(tmp_path / "ok"), "--no-pictures"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert report["stats"]["samples_per_class"]["train"] == {"0_degree": 6, "180_degree": 6}
    bad = subprocess.run([sys.executable, "-m", "workbench.cli", "data", "check", "textline_ori", str(cls),
                          "--out", str(tmp_path / "bad"), "--no-pictures"], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "unknown_class" in bad.stdout
    findings = [json.loads(line) for line in (tmp_path / "bad" / "findings.jsonl").read_text().splitlines()]
    assert [(f["code"], f["file"], f["line"]) for f in findings if f["severity"] == "error"] == \
        [("unknown_class", str(cls), 7)]


def test_compare_two_classifier_evaluations_sample_by_sample(tmp_path):
    from workbench.analysis.compare import compare, load_side
    from workbench.reports.records import write_record_files

    def side(name, preds):
        rows = [{"index": i, "gt_class": g, "pred_class": p, "gt_label": ["0_degree", "180_degree"][g],
                 "pred_label": ["0_degree", "180_degree"][p], "correct": g == p, "score": 0.9, "angle": 180 * g,
                 "image_path": f"/x/{i}.png", "label_file": "/x/label.txt", "line": i + 1} for i, (g, p) in
                enumerate(zip([0, 1, 0, 1], preds))]
        acc = sum(r["correct"] for r in rows) / 4
        (tmp_path / name).mkdir()  # the report writers write into an existing folder (as the reports make it)
        write_record_files(rows, tmp_path / name, task="textline_ori", title=name, metrics={"acc": acc}, info={})
        return load_side(str(tmp_path / name), None, tmp_path / "dl")

    c = compare(side("a", [0, 1, 1, 0]), side("b", [0, 0, 0, 1]))
    assert c.kind == "class" and c.task == "textline_ori" and c.metric == "acc"
    assert (c.counts["fixed"], c.counts["regressed"], c.counts["both_right"]) == (2, 1, 1)
    assert {f["key"] for f in c.fixed} == {"/x/label.txt:3", "/x/label.txt:4"}
    assert c.to_json()["regressed"][0]["pred_b"] == "0_degree"
