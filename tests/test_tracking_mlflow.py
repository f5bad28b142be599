"""The MLflow adapter against a real tracking server: what is logged arrives; a dying server never stops work."""

from __future__ import annotations

import time

from mlflow.tracking import MlflowClient

from conftest import MlflowServer
from workbench.tracking.mlflow import Tracker


def test_params_metrics_artifacts_reach_the_server(mlflow_server, tmp_path):
    t = Tracker(mlflow_server.uri, "test-tracker", run_name="unit", tags={"wb.task": "toy"}, backlog_dir=tmp_path)
    t.log_params({"optim.lr": 0.001, "data.train": ["a.txt", "b.txt"]})
    for step in range(1, 6):
        t.log_metrics({"train/loss": 1.0 / step}, step=step)
    f = tmp_path / "report.txt"
    f.write_text("hello")
    t.log_artifact(f, "report")
    t.finish()
    run = MlflowClient(mlflow_server.uri).get_run(t.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.001"
    assert run.data.tags["wb.task"] == "toy"
    hist = MlflowClient(mlflow_server.uri).get_metric_history(t.run_id, "train/loss")
    assert [m.step for m in hist] == [1, 2, 3, 4, 5]
    assert [a.path for a in MlflowClient(mlflow_server.uri).list_artifacts(t.run_id, "report")] == ["report/report.txt"]
    assert not (tmp_path / "tracking_backlog.jsonl").exists()


def test_server_going_away_does_not_block_or_lose_metrics(tmp_path):
    server = MlflowServer(tmp_path / "srv")
    server.root.mkdir()
    server.start()
    t = Tracker(server.uri, "test-dying", backlog_dir=tmp_path)
    t.log_metrics({"a": 1.0}, step=1)
    time.sleep(1.0)
    server.stop()
    t0 = time.perf_counter()
    for step in range(2, 200):
        t.log_metrics({"a": float(step)}, step=step)  # must return at once
    assert time.perf_counter() - t0 < 1.0
    t.finish(timeout=20)
    backlog = (tmp_path / "tracking_backlog.jsonl").read_text().splitlines()
    assert len(backlog) >= 198  # every metric not sent is kept locally
    unreachable = Tracker("http://127.0.0.1:9", "x", backlog_dir=tmp_path)  # nothing listens on port 9
    assert not unreachable.enabled
    unreachable.log_metrics({"a": 1.0}, step=1)
    unreachable.finish()


def test_run_names_say_task_model_data_and_overrides():
    from workbench.tracking.conventions import data_name, run_name, weights_label

    overrides = ["recipe=rec_finetune", "data.train=/data/receipts/train.txt", "data.val=/data/receipts/val.txt",
                 "optim.lr=2e-4", "trainer.epochs=20", "model.pretrained=weights/v5_mobile_rec.pdparams",
                 "tracking.experiment=x", "model.freeze_bn=false", "hydra.run.dir=/tmp/x"]
    assert run_name("rec", "PP-OCRv5_mobile_rec", data_name(["/data/receipts/train.txt"]), overrides) == (
        "rec PP-OCRv5_mobile_rec receipts lr2e-4 epochs20 pretrained=v5_mobile_rec freeze_bn=false")
    assert data_name(["/d/shop_train.txt", "/d/more/rec_gt_train.txt"]) == "shop+more"
    assert data_name(["/x/train.txt"], demo=True) == "demo"
    assert run_name("det", "PP-OCRv5_mobile_det", "receipts", kind="eval", weights="stock") == (
        "eval det PP-OCRv5_mobile_det stock receipts")
    assert weights_label("runs/rec/2026-01-01_10-00-00/checkpoints/best") == "2026-01-01_10-00-00"
    assert weights_label("0123456789abcdef0123456789abcdef") == "01234567"
    assert weights_label("models:/receipts/3") == "receipts/3"
    assert len(run_name("rec", "m", "d", [f"k{i}.x=1" for i in range(100)])) <= 120


def test_experiments_are_created_as_model_training_experiments(mlflow_server):
    from workbench.tracking.conventions import EXPERIMENT_KIND_TAG, MODEL_TRAINING
    from workbench.tracking.mlflow import create_run

    client = MlflowClient(mlflow_server.uri)
    create_run("kind-new", "r", {}, mlflow_server.uri)
    assert client.get_experiment_by_name("kind-new").tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    old = client.create_experiment("kind-old")  # made before the workbench set kinds: it gets one
    Tracker(mlflow_server.uri, "kind-old").finish()
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    chosen = client.create_experiment("kind-chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    Tracker(mlflow_server.uri, "kind-chosen").finish()  # a kind someone chose is kept
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_an_unreachable_server_is_one_line_saying_how_to_reach_it(tmp_path):
    """`wb compare` of MLflow runs with nothing listening: one line naming the server and what to do."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from workbench.tracking.hints import failure_text, is_unreachable

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    run = "0123456789abcdef0123456789abcdef"
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "compare", run, run, "--tracking-uri",
                           "http://127.0.0.1:9"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line == (f"wb compare: error: MLflow run {run}: MLflow at http://127.0.0.1:9 is not reachable: start it "
                    "(`mlflow server --host 127.0.0.1 --port 9`) or point MLFLOW_TRACKING_URI / tracking_uri= at a "
                    "running server")
    assert not is_unreachable(ValueError("RESOURCE_DOES_NOT_EXIST: run x")) and failure_text(
        ValueError("a\nb"), "sqlite:///x.db") == "MLflow at sqlite:///x.db: ValueError: a"


def test_registered_version_uris_and_tags():
    import pytest

    from workbench.tracking.hints import TrackingError
    from workbench.tracking.registry import ModelVersion, parse_uri, version_tags

    assert parse_uri("models:/receipts-ocr/3") == ("receipts-ocr", "3", None)
    assert parse_uri("models:/receipts-ocr@champion") == ("receipts-ocr", None, "champion")
    for bad in ("models:/receipts-ocr", "models:/a/b/c", "models:/x/latest"):
        with pytest.raises(TrackingError, match="models:/<name>/<version> or models:/<name>@<alias>"):
            parse_uri(bad)
    tags = version_tags(export_run="e" * 32, folder="/x/export/mine", verified=True,
                        modules={"det": {"name": "PP-OCRv5_mobile_det", "dir": None},
                                 "rec": {"name": "PP-OCRv5_mobile_rec", "dir": "rec"}},
                        exported={"rec": {"checkpoint": "/runs/rec/1/checkpoints/best", "mlflow_run_id": "r" * 32}})
    assert tags["wb.verification"] == f"runs:/{'e' * 32}/export/verification.md" and tags["wb.verified"] == "true"
    assert (tags["wb.det_module"], tags["wb.rec_module"], tags["wb.rec_run"]) == ("stock", "fine-tuned", "r" * 32)
    v = ModelVersion("m", "1", "e" * 32, "runs:/e/export", tags)
    assert v.fine_tuned() == ["rec"] and v.checkpoint("rec") == "/runs/rec/1/checkpoints/best"
    assert v.training_run("det") is None and v.module_kind("det") == "stock"
