"""The rec and det tasks train end to end on real data slices and leave complete checkpoints."""

from __future__ import annotations

from workbench.engine.checkpoint import read_checkpoint


def test_tiny_rec_run_leaves_best_and_latest(tiny_rec_run):
    best = read_checkpoint(tiny_rec_run / "checkpoints" / "best")
    latest = read_checkpoint(tiny_rec_run / "checkpoints" / "latest")
    assert latest.state.finished and latest.state.global_step == 8
    assert best.meta["task"] == "rec" and best.meta["model_name"] == "rec_tiny"
    assert best.dict_file is not None and len(best.dict_file.read_text().splitlines()) == 436
    assert {"acc", "norm_edit_dis", "acc_honest", "ned_honest"} <= set(latest.state.last_metrics)


def test_tiny_det_run_leaves_best_and_latest(tiny_det_run):
    latest = read_checkpoint(tiny_det_run / "checkpoints" / "latest")
    assert latest.state.finished and latest.state.global_step == 4
    assert latest.meta["task"] == "det" and latest.meta["postprocess"]["box_thresh"] == 0.6
    assert {"hmean", "precision", "recall", "hmean_upstream_resize"} <= set(latest.state.last_metrics)
