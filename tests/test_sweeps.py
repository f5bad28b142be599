"""Hydra multirun sweeps tracked in MLflow: a parent run with the sweep definition and leaderboard, one child run
per trial, and a deliberately failing trial that is recorded without stopping the sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import require
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


def tiny_rec_overrides(shared):
    return [
        "recipe=rec_finetune", "model=rec_tiny", f"model.character_dict={shared}/fixtures/parity/ppocrv5_en_dict.txt",
        f"data.train={shared}/data/icdar2015_rec/label.txt", f"data.val={shared}/data/icdar2015_rec/label.txt",
        "data.policy=skip", "data.check=false", "data.max_train_samples=32", "data.max_val_samples=8",
        "data.batch_size=16", "data.num_workers=0", "trainer.epochs=1", "trainer.progress_bar=false",
    ]


def test_three_trial_sweep_with_a_failing_trial(shared_dir, tmp_path, mlflow_server):
    argv = ["train", "-m", *tiny_rec_overrides(shared_dir), "optim.name=adam,adamw,bogus",
            f"tracking.tracking_uri={mlflow_server.uri}", "tracking.experiment=test-sweep",
            f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    r = subprocess.run([sys.executable, "-m", "workbench.cli", *argv], capture_output=True, text=True, timeout=900,
                       cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert r.returncode == 0, r.stderr[-4000:]
    assert "sweep leaderboard (3 trials, acc, max)" in r.stdout
    board = json.loads((tmp_path / "sweep" / "leaderboard.json").read_text())
    assert [t["status"] for t in board] == ["ok", "ok", "failed"]
    assert "optim.name=bogus" in board[2]["overrides"] and "bogus" in board[2]["error"]
    assert board[0]["value"] >= board[1]["value"]

    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("test-sweep")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("wb.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED", "FINISHED"]
    assert {t["run_id"] for t in board} == {c.info.run_id for c in children}
    assert parent.data.metrics["trials"] == 3 and parent.data.metrics["failed_trials"] == 1
    assert parent.data.metrics["best/acc"] == board[0]["value"]
    assert parent.data.tags["wb.best_trial_run"] == board[0]["run_id"]
    arts = [a.path for a in client.list_artifacts(parent.info.run_id, "sweep")]
    assert "sweep/leaderboard.json" in arts and "sweep/definition.json" in [
        a.path for a in client.list_artifacts(parent.info.run_id, "sweep")] + arts


def test_optuna_sweep_over_the_declared_space_with_parallel_trials(shared_dir, tmp_path):
    require("hydra_plugins.hydra_optuna_sweeper", "the [sweep] extra")
    require("hydra_plugins.hydra_joblib_launcher", "the [sweep] extra")
    argv = ["train", "-m", *tiny_rec_overrides(shared_dir), "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2",
            "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "tracking=off",
            f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    r = subprocess.run([sys.executable, "-m", "workbench.cli", *argv], capture_output=True, text=True, timeout=900,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    board = json.loads((tmp_path / "sweep" / "leaderboard.json").read_text())
    assert len(board) == 2 and all(t["status"] == "ok" for t in board)
    lrs = [float(next(o for o in t["overrides"] if o.startswith("optim.lr=")).split("=")[1]) for t in board]
    assert all(1e-5 <= lr <= 2e-3 for lr in lrs) and lrs[0] != lrs[1]  # drawn from the recipe's declared space
