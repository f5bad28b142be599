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
