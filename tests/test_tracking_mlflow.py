"""The MLflow adapter against a real tracking server: what is logged arrives; a server that is down at start, dies
mid-run or comes back later never stops work and loses no metric row (counted); two runs share a sqlite store."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time

from mlflow.tracking import MlflowClient

from conftest import MlflowServer
from workbench.tracking.mlflow import JOURNAL_FILE, SENT_FILE, Tracker, read_journal, replay


def _rows(uri, run_id, key="a"):
    return [(m.step, m.value) for m in sorted(MlflowClient(uri).get_metric_history(run_id, key), key=lambda m: m.step)]


def test_params_metrics_artifacts_reach_the_server(mlflow_server, tmp_path):
    t = Tracker(mlflow_server.uri, "test-tracker", run_name="unit", tags={"wb.task": "toy"}, backlog_dir=tmp_path)
    t.log_params({"optim.lr": 0.001, "data.train": ["a.txt", "b.txt"]})
    for step in range(1, 6):
        t.log_metrics({"train/loss": 1.0 / step}, step=step)
    t.log_metrics({"train/loss": 99.0}, step=5)  # a step already recorded is not recorded twice
    f = tmp_path / "report.txt"
    f.write_text("hello")
    t.log_artifact(f, "report")
    t.finish()
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(t.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.001"
    assert run.data.tags["wb.task"] == "toy"
    assert _rows(mlflow_server.uri, t.run_id, "train/loss") == [(s, 1.0 / s) for s in range(1, 6)]
    assert [a.path for a in client.list_artifacts(t.run_id, "report")] == ["report/report.txt"]
    journal = read_journal(tmp_path / JOURNAL_FILE)
    assert json.loads((tmp_path / SENT_FILE).read_text())["seq"] == journal[-1]["seq"]  # everything sent
    assert json.loads((tmp_path / "mlflow_run.json").read_text())["run_id"] == t.run_id


def test_server_killed_mid_run_then_back_loses_no_row(tmp_path):
    server = MlflowServer(tmp_path / "srv")
    server.root.mkdir()
    server.start()
    t = Tracker(server.uri, "test-dying", backlog_dir=tmp_path / "run")
    t.log_metrics({"a": 1.0}, step=1)
    t.log_params({"p": 1})
    t._stop.wait(1.5)  # let the sender deliver step 1
    server.stop()
    for step in range(2, 200):
        t.log_metrics({"a": float(step)}, step=step)  # returns at once: only journaled and queued
    t.finish(retry_for=2)
    assert t.journal_path.is_file()
    # the server comes back (same store): replaying the journal sends exactly what it lacks
    back = MlflowServer(server.root)
    back.port, back.uri = server.port, server.uri
    back.start()
    try:
        out = replay(tmp_path / "run")
        assert out["run_id"] == t.run_id and out["metric_rows"] >= 198
        assert _rows(back.uri, t.run_id) == [(s, float(s)) for s in range(1, 200)]  # 199 rows, none twice
        again = replay(tmp_path / "run")  # nothing left: nothing sent twice
        assert again["operations"] == 0 and len(_rows(back.uri, t.run_id)) == 199
        assert MlflowClient(back.uri).get_run(t.run_id).info.status == "FINISHED"
    finally:
        back.stop()


def test_server_down_at_start_and_back_mid_run(tmp_path):
    """No server when training starts: it goes on, metrics are journaled; the server starts mid-run: the run is
    created then and receives every row logged before and after."""
    server = MlflowServer(tmp_path / "srv")
    server.root.mkdir()
    t = Tracker(server.uri, "test-late", run_name="late", backlog_dir=tmp_path / "run")
    assert t.run_id is None and t.enabled
    for step in range(1, 51):
        t.log_metrics({"a": float(step)}, step=step)
    server.start()
    try:
        for step in range(51, 101):
            t.log_metrics({"a": float(step)}, step=step)
        t.finish(timeout=120, retry_for=60)
        assert t.run_id is not None
        assert _rows(server.uri, t.run_id) == [(s, float(s)) for s in range(1, 101)]
        run = MlflowClient(server.uri).get_run(t.run_id)
        assert run.info.status == "FINISHED" and run.info.run_name == "late"
    finally:
        server.stop()


def test_unreachable_server_keeps_everything_locally_and_prints_the_replay_command(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a sqlite store keeps artifacts in ./mlruns
    t = Tracker("http://127.0.0.1:9", "x", backlog_dir=tmp_path)  # nothing listens on port 9
    for step in range(1, 31):
        t.log_metrics({"a": float(step), "b": 0.5}, step=step)
    t.finish(retry_for=1)
    assert t.run_id is None
    rows = sum(len(e["payload"][0]) for e in read_journal(tmp_path / JOURNAL_FILE) if e["kind"] == "metrics")
    assert rows == 60
    assert f"wb tracking replay {tmp_path}" in caplog.text
    # replay into a local store instead (e.g. the server moved)
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    out = replay(tmp_path, uri)
    assert out["metric_rows"] == 60 and _rows(uri, out["run_id"], "b") == [(s, 0.5) for s in range(1, 31)]


def test_system_metrics_start_when_a_late_run_is_created(tmp_path, monkeypatch):
    """System metrics go straight to MLflow (not through the journal): with the server down at start, the monitor
    starts when the worker creates the run, and samples the rest of the training."""
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    server = MlflowServer(tmp_path / "srv")
    server.root.mkdir()
    t = Tracker(server.uri, "test-late-system", backlog_dir=tmp_path / "run", system_metrics=True)
    assert t.run_id is None
    server.start()
    try:
        deadline = time.monotonic() + 120
        step = 0
        while t.run_id is None and time.monotonic() < deadline:  # the worker retries with a growing backoff
            step += 1
            t.log_metrics({"a": float(step)}, step=step)
            time.sleep(0.5)
        assert t.run_id is not None
        time.sleep(4)  # a few samples at 1 s
        t.finish(timeout=120, retry_for=60)
        metrics = MlflowClient(server.uri).get_run(t.run_id).data.metrics
        assert "system/cpu_utilization_percentage" in metrics and metrics["a"] == float(step)
    finally:
        server.stop()


_CONCURRENT = textwrap.dedent("""
    import sys
    from workbench.tracking.mlflow import Tracker
    uri, name, folder = sys.argv[1:4]
    t = Tracker(uri, "shared-store", run_name=name, backlog_dir=folder)
    t.log_params({"name": name})
    for step in range(1, 301):
        t.log_metrics({"loss": step / 1000.0, "acc": 1 - step / 1000.0}, step=step)
    t.finish(timeout=300, retry_for=120)
    print(t.run_id)
""")


def test_two_runs_logging_to_one_sqlite_store_at_once(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT, uri, name, str(tmp_path / name)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("r1", "r2")]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    run_ids = [o[0].strip().splitlines()[-1] for o in outs]
    assert len(set(run_ids)) == 2
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for run_id in run_ids:
        for key in ("loss", "acc"):
            assert [s for s, _ in _rows(uri, run_id, key)] == list(range(1, 301))


def test_an_operation_mlflow_refuses_does_not_hold_back_the_rest(tmp_path, caplog, monkeypatch):
    """A parameter logged again with another value is refused for good: it is reported, not retried forever."""
    monkeypatch.chdir(tmp_path)  # a sqlite store keeps artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    t = Tracker(uri, "refused", backlog_dir=tmp_path / "run")
    t.log_params({"p": 1})
    t.log_params({"p": 2})
    for step in range(1, 11):
        t.log_metrics({"a": float(step)}, step=step)
    t.finish(timeout=60, retry_for=5)
    assert _rows(uri, t.run_id) == [(s, float(s)) for s in range(1, 11)]
    assert MlflowClient(uri).get_run(t.run_id).info.status == "FINISHED"
    assert "MLflow refused a params operation" in caplog.text


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
