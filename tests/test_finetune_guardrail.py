"""Fine-tuning never regresses silently: the starting weights are scored on val first (cached), the run ends with
"start X -> tuned Y", a regression is recorded in the checkpoint and `wb export` refuses it unless told otherwise."""

from __future__ import annotations

import json

import pytest

from tiny_runs import rec_config, train


@pytest.fixture(scope="module")
def start_weights(shared_dir, tmp_path_factory):
    """A tiny rec model trained a little: something with a non-trivial NED to start fine-tuning from."""
    run = train(rec_config(shared_dir, tmp_path_factory.mktemp("start") / "run", trainer__epochs=3))
    return run / "checkpoints" / "best"


def _finetune(shared_dir, out, weights, lr):
    return train(rec_config(shared_dir, out, model__pretrained=str(weights), optim__lr=lr, trainer__epochs=1,
                            eval__select_metric="norm_edit_dis", optim__warmup_epochs=0.0))


def test_start_metrics_are_cached_and_a_regression_is_refused_by_export(shared_dir, tmp_path, start_weights,
                                                                        monkeypatch, caplog):
    import logging

    from workbench.engine.checkpoint import read_checkpoint
    from workbench.errors import ExportError

    monkeypatch.setenv("WB_CACHE_DIR", str(tmp_path / "cache"))
    caplog.set_level(logging.INFO, logger="workbench.train")
    same = _finetune(shared_dir, tmp_path / "same", start_weights, lr=0.0)  # no update: tuned == start
    summary = json.loads((same / "start_vs_tuned.json").read_text())
    assert summary["start"] == pytest.approx(summary["tuned"]) and not summary["regression"]
    assert len(list((tmp_path / "cache" / "start_evals").glob("*.json"))) == 1

    caplog.clear()
    broken = _finetune(shared_dir, tmp_path / "broken", start_weights, lr=5.0)  # a learning rate that wrecks it
    assert any("cached" in r.getMessage() for r in caplog.records)  # the same weights + val: not evaluated again
    summary = json.loads((broken / "start_vs_tuned.json").read_text())
    assert summary["regression"] and summary["tuned"] < summary["start"]
    assert any(r.getMessage().startswith("REGRESSION") for r in caplog.records)
    meta = read_checkpoint(broken / "checkpoints" / "best").meta
    assert meta["start_metric"] == pytest.approx(summary["start"])

    import workbench

    with pytest.raises(ExportError, match="regression on val .*allow_regression=true"):
        workbench.export_pipeline(rec=str(broken), out=str(tmp_path / "export"), tracking="off")
    assert not (tmp_path / "export").exists()


def test_regression_of_reads_the_checkpoint_meta():
    from workbench.export.run import regression_of

    assert regression_of({"start_metric": 0.8, "metric_value": 0.7, "select_metric": "acc"})
    assert regression_of({"start_metric": 0.8, "metric_value": 0.9}) is None
    assert regression_of({"start_metric": 0.2, "metric_value": 0.3, "select_mode": "min"})
    assert regression_of({"metric_value": 0.3}) is None  # trained from scratch: nothing to compare
