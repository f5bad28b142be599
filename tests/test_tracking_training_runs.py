"""Training and evaluation runs tracked in a real MLflow server: params, per-step losses, eval metrics,
artifacts, tags; a baseline `wb eval` run compared with a later fine-tuning run."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from tiny_runs import rec_config, train
from workbench.api.evaluation import run_eval


def _artifacts(client, run_id, path=None):
    out = []
    for a in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, a.path) if a.is_dir else [a.path]
    return out


def test_training_run_is_tracked_and_loss_falls(shared_dir, tmp_path, mlflow_server):
    cfg = rec_config(shared_dir, tmp_path / "run", trainer__epochs=3)
    cfg.tracking.enabled = True
    cfg.tracking.tracking_uri = mlflow_server.uri
    cfg.tracking.experiment = "test-rec-training"
    train(cfg)
    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("test-rec-training")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["model.name"] == "rec_tiny" and p["optim.lr"] == "0.002" and p["data.max_train_samples"] == "64"
    assert p["data_summary.train_samples"] == "64"
    losses = [m.value for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert len(losses) == 12  # one per step (log_every_steps=1)
    assert sum(losses[-3:]) / 3 < 0.96 * sum(losses[:3]) / 3, losses  # 12 steps from scratch: a clear fall
    assert len(client.get_metric_history(run.info.run_id, "eval/acc")) == 3  # every epoch
    assert {"train/samples_per_sec", "train/lr", "eval/norm_edit_dis", "eval/acc_honest"} <= set(run.data.metrics)
    tags = run.data.tags
    assert "mlflow.source.git.commit" in tags and "wb.data.train" in tags and tags["wb.run_dir"]
    arts = _artifacts(client, run.info.run_id)
    assert "checkpoints/best/model.pdparams" in arts and "checkpoints/latest/state.json" in arts
    assert "report/report.html" in arts and "config/config.json" in arts and "data/summary.json" in arts


def test_finetune_run_is_compared_with_its_baseline(shared_dir, tmp_path, mlflow_server, tiny_rec_run):
    # 1. the baseline: `wb eval` of the starting weights, logged as its own run
    base_cfg = rec_config(shared_dir, tmp_path / "eval")
    base_cfg.checkpoint = str(tiny_rec_run)
    base_cfg.tracking.enabled = True
    base_cfg.tracking.tracking_uri = mlflow_server.uri
    base_cfg.tracking.experiment = "test-baseline"
    out = run_eval(base_cfg, run_dir=tmp_path / "eval")
    baseline_id = out["run_id"]
    client = MlflowClient(mlflow_server.uri)
    base_run = client.get_run(baseline_id)
    assert base_run.data.tags["wb.kind"] == "eval"
    assert abs(base_run.data.metrics["eval/acc"] - out["metrics"]["acc"]) < 1e-9
    # 2. fine-tune from those weights, naming the baseline
    cfg = rec_config(shared_dir, tmp_path / "ft", trainer__epochs=1)
    cfg.model.pretrained = str(tiny_rec_run)
    cfg.tracking.enabled = True
    cfg.tracking.tracking_uri = mlflow_server.uri
    cfg.tracking.experiment = "test-baseline"
    cfg.tracking.baseline_run = baseline_id
    train(cfg)
    exp = client.get_experiment_by_name("test-baseline")
    (ft,) = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_id != baseline_id]
    m = ft.data.metrics
    assert m["baseline/acc"] == base_run.data.metrics["eval/acc"]
    assert abs(m["vs_baseline/acc"] - (m["eval/acc"] - m["baseline/acc"])) < 1e-6 or "best/acc" in m
    assert ft.data.tags["wb.baseline_run"] == baseline_id
    arts = _artifacts(client, ft.info.run_id)
    assert "compare_baseline/compare.html" in arts and "compare_baseline/compare.json" in arts


def test_detection_run_is_tracked(shared_dir, tmp_path, mlflow_server):
    from tiny_runs import det_config

    cfg = det_config(shared_dir, tmp_path / "run")
    cfg.tracking.enabled = True
    cfg.tracking.tracking_uri = mlflow_server.uri
    cfg.tracking.experiment = "test-det-training"
    train(cfg)
    client = MlflowClient(mlflow_server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("test-det-training").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["model.name"] == "det_tiny"
    m = run.data.metrics
    assert {"eval/hmean", "eval/precision", "eval/recall", "eval/hmean_upstream_resize", "train/loss_shrink_maps",
            "train/loss_threshold_maps", "train/loss_binary_maps"} <= set(m)
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 4
    arts = _artifacts(client, run.info.run_id)
    assert "report/report.html" in arts and "report/boxes.csv" in arts and "checkpoints/best/model.pdparams" in arts
