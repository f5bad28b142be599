"""A run killed mid-step, mid-evaluation or mid-MLflow-log and resumed ends with the same MLflow history as a run
that never stopped: every (metric, step) once, same values; nothing journaled is lost. (train_step:3 is killed
before the first checkpoint: the resume starts again from the beginning, as the same run.)"""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from test_engine_checkpoint_faults import assert_same_run, run_worker

TIMING = "train/samples_per_sec"  # wall-clock figures: their steps must match, their values cannot


def history(uri: str, run_dir) -> dict:
    import json

    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    out = {}
    for key in run.data.metrics:
        rows = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        out[key] = [s for s, _ in rows] if key == TIMING else rows
    return out, run


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ref = root / "ref"
    r = run_worker("toy", ref, f"tracking_uri={uri}", "experiment=ref")
    assert r.returncode == 0, r.stderr[-3000:]
    return uri, ref


@pytest.mark.parametrize("fault", ["tracking_send:30", "train_step:13", "eval_batch:3", "train_step:3"])
def test_killed_and_resumed_run_has_the_uninterrupted_history(tmp_path, store, fault):
    uri, ref = store
    run = tmp_path / "run"
    experiment = f"experiment=killed-{fault}"
    r = run_worker("toy", run, f"tracking_uri={uri}", experiment, fault=fault)
    assert r.returncode == -9, r.stderr[-3000:]
    r = run_worker("toy", run, f"tracking_uri={uri}", experiment, f"resume={run}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_run(ref, run)
    (want, ref_run), (got, run_info) = history(uri, ref), history(uri, run)
    assert got == want
    assert sum(len(v) for v in got.values()) > 60  # train/* every step, eval/* and best/* every epoch, final/*
    assert run_info.info.status == "FINISHED" and run_info.data.tags.get("wb.resumed_at_step")
    assert len(MlflowClient(uri).search_runs([run_info.info.experiment_id])) == 1  # one run, continued
