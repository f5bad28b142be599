"""Training and evaluation runs tracked in a real MLflow server: params, per-step losses, eval metrics,
artifacts, tags; a baseline `wb eval` run compared with a later fine-tuning run."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from tiny_runs import rec_config, train
from workbench.api.evaluation import run_eval


def _artifacts(client, run_id, path=None):
    out = []
    for a in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, a.path) if a.is_dir else [a.path]
    return out


def test_training_run_is_tracked_and_loss_falls(shared_dir, tmp_path, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
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

    # what the MLflow UI shows: a model-training experiment, a readable name, the data, the machine's load
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.info.run_name == "rec rec_tiny icdar2015_rec"  # task, model, data (label.txt is named by its folder)
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation"}
    summary_fp = {t[len("wb.data."):]: v for t, v in tags.items() if t.startswith("wb.data.")}
    for context, split, n in (("training", "train", 64), ("validation", "val", 16)):
        d = inputs[context]
        assert d.name == "icdar2015_rec" and d.digest == summary_fp[split] and d.source_type == "local"
        assert json.loads(d.source)["uri"] == str(shared_dir / "data" / "icdar2015_rec" / "label.txt")
        assert json.loads(d.profile)["num_samples"] == n
    system = [k for k in run.data.metrics if k.startswith("system/")]
    assert "system/cpu_utilization_percentage" in system and "system/system_memory_usage_megabytes" in system


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
    # the comparison is of the best evaluation (the best checkpoint), whichever evaluation was last
    assert abs(m["vs_baseline/acc"] - (m["best/acc"] - m["baseline/acc"])) < 1e-6
    assert ft.data.tags["wb.baseline_run"] == baseline_id
    # one experiment; the baseline is named as such and the tuned run's description links it
    assert base_run.info.run_name == f"eval rec rec_tiny {tiny_rec_run.name} icdar2015_rec"
    (evaluated,) = base_run.inputs.dataset_inputs  # an evaluation names only the data it evaluated on
    assert evaluated.tags[0].value == "evaluation" and evaluated.dataset.name == "icdar2015_rec"
    assert json.loads(evaluated.dataset.profile)["num_samples"] == 16
    link = f"(#/experiments/{exp.experiment_id}/runs/{baseline_id}?workflowType=machine_learning)"  # the ML view
    assert f"[{base_run.info.run_name}]{link}" in ft.data.tags["mlflow.note.content"]
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
