"""Recognition training through the real task: exact resume, EMA, bad input errors at the command line,
pipeline-mode evaluation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import paddle
import pytest

from tiny_runs import rec_config, train
from workbench.engine import checkpoint as ckpt
from workbench.engine.trainer import Trainer
from workbench.tasks import build_task
from workbench.tasks.rec import RecTask


def _weights(run, name="latest"):
    return {k: np.asarray(v) for k, v in paddle.load(str(run / "checkpoints" / name / "model.pdparams")).items()}


class InterruptingRecTask(RecTask):
    """Raises KeyboardInterrupt (as Ctrl-C would) at the n-th training step."""

    def __init__(self, cfg, at):
        super().__init__(cfg)
        self.at, self.calls = at, 0

    def training_step(self, model, loss_fn, batch):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return super().training_step(model, loss_fn, batch)


def test_resumed_rec_run_ends_with_the_same_weights(shared_dir, tmp_path):
    # augmentation on (per-sample RNG), dropout on (Paddle RNG), 2 loader workers: all must replay exactly
    over = dict(trainer__epochs=2, data__num_workers=2, data__max_train_samples=48,
                data__augment={"concat_p": 0.5, "tia_p": 0.4, "blur_p": 0.4, "noise_p": 0.4})
    train(rec_config(shared_dir, tmp_path / "full", **over))
    cfg = rec_config(shared_dir, tmp_path / "part", **over)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, InterruptingRecTask(cfg, at=4), tmp_path / "part").fit()
    assert ckpt.read_checkpoint(tmp_path / "part" / "checkpoints" / "latest").state.global_step == 3
    train(rec_config(shared_dir, tmp_path / "part", trainer__resume=str(tmp_path / "part"), **over))
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_ema_weights_are_saved_and_evaluated(shared_dir, tmp_path):
    cfg = rec_config(shared_dir, tmp_path / "run", trainer__epochs=1)
    cfg.trainer.ema.enabled = True
    cfg.trainer.ema.decay = 0.9
    train(cfg)
    c = ckpt.read_checkpoint(tmp_path / "run" / "checkpoints" / "latest")
    ema = paddle.load(str(c.ema_file))
    raw = paddle.load(str(c.model_file))
    assert int(ema["updates"]) == 4
    k = "head.ctc_head.fc.weight"
    assert not np.allclose(np.asarray(ema[k]), np.asarray(raw[k]))  # a real average, not a copy


def test_pipeline_mode_evaluation_uses_dynamic_width(shared_dir, tmp_path, tiny_rec_run):
    from workbench.api.evaluation import run_eval

    sroie = str(shared_dir / "data" / "sroie_rec" / "label.txt")  # receipt lines: many wider than 320/48
    fixed = rec_config(shared_dir, tmp_path / "fixed", data__val=sroie)
    fixed.checkpoint = str(tiny_rec_run)
    pipe = rec_config(shared_dir, tmp_path / "pipe", data__val=sroie)
    pipe.checkpoint = str(tiny_rec_run)
    pipe.eval.rec.resize_mode = "pipeline"
    a, b = run_eval(fixed, tmp_path / "fixed"), run_eval(pipe, tmp_path / "pipe")
    assert a["metrics"]["n"] == b["metrics"]["n"] == 16
    task = build_task(pipe)
    widths = {task.val_dataset().load(i, None)["image"].shape[-1] for i in range(16)}
    assert len(widths) > 1 and all(w >= 320 for w in widths)  # keep ratio, at least 320 as PaddleX


def test_bad_label_line_fails_the_run_naming_file_and_line(shared_dir, tmp_path):
    src = shared_dir / "data" / "icdar2015_rec"
    lines = (src / "label.txt").read_text().splitlines()[:20]
    lines[6] = lines[6].replace("\t", " ")  # wrong delimiter on line 7
    bad = tmp_path / "train.txt"
    bad.write_text("\n".join(f"{src}/{l}" if "\t" in l else f"{src}/{l}" for l in lines) + "\n")
    r = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "train", "recipe=rec_finetune", "model=rec_tiny",
         f"model.character_dict={shared_dir}/fixtures/parity/ppocrv5_en_dict.txt", f"data.train={bad}",
         f"data.val={bad}", "tracking=off", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 2
    assert f"{bad}:7" in r.stderr and "no_tab" in r.stderr
    assert "Traceback" not in r.stderr


def test_multi_scale_batches_share_one_drawn_size_and_train(shared_dir, tmp_path):
    from workbench.engine.loader import BatchLoader, EpochSampler

    cfg = rec_config(shared_dir, tmp_path / "run", trainer__max_steps=3)
    cfg.data.multi_scale = [[320, 32], [320, 48], [320, 64]]
    task = build_task(cfg)
    ds = task.train_dataset()
    loader = BatchLoader(ds, EpochSampler(ds, 16, seed=cfg.seed), task.collate_train, batch_meta=task.batch_meta)
    heights = [b["image"].shape[2] for b in loader.iter_epoch(0)]
    assert set(heights) <= {32, 48, 64} and len(set(heights)) > 1
    assert heights == [task.batch_meta(0, k)["image_shape"][1] for k in range(len(heights))]
    train(cfg)  # every height trains (the backbone pools to a fixed sequence length)


def test_eval_of_a_run_uses_the_text_length_the_run_resolved(shared_dir, tmp_path):
    """model.max_text_length=null resolves to the longest training label; `wb eval` of that run (no training data)
    must exclude (upstream mode) the same labels as the run's own evaluation, not those over the default 25."""
    from workbench.api.evaluation import apply_checkpoint_to_config
    from workbench.data.labels import read_rec_labels

    receipts = str(shared_dir / "data" / "sroie_rec" / "label.txt")  # 1 line in 8 is longer than 25 characters
    cfg = rec_config(shared_dir, tmp_path / "run", model__max_text_length=None, trainer__epochs=1, data__train=receipts)
    cfg.data.max_train_samples = 16
    run = train(cfg)
    longest = max(len(s.text) for s in read_rec_labels(cfg.data.train)[0])
    resolved = ckpt.read_checkpoint(run / "checkpoints" / "best").meta["max_text_length"]
    assert resolved >= longest > 25
    for given, expected in ((None, resolved), (30, 30)):
        ev = rec_config(shared_dir, tmp_path / "eval", model__max_text_length=given)
        apply_checkpoint_to_config(ev, str(run))
        assert ev.model.max_text_length == expected


def test_min_width_trains_short_words_narrow_and_evaluates_at_the_pipeline_canvas(shared_dir, tmp_path):
    """data.min_width: keep-ratio training crops may be narrower than the pipeline's 320 px canvas (less padding
    to compute); evaluation still resizes as PaddleX does (at least 320); a fixed-width run refuses the key."""
    from workbench.errors import ConfigError

    cfg = rec_config(shared_dir, tmp_path / "run", data__width_mode="keep_ratio", data__min_width=64,
                     data__augment={"concat_p": 0.0}, trainer__max_steps=2)
    task = build_task(cfg)
    train_widths = [task.train_dataset().load(i, np.random.default_rng(0))["image"].shape[-1] for i in range(16)]
    eval_widths = [task.val_dataset().load(i, None)["image"].shape[-1] for i in range(16)]
    assert min(train_widths) >= 64 and sum(w < 320 for w in train_widths) >= 8  # ICDAR words: most under 320
    assert min(eval_widths) >= 320
    train(cfg)  # narrow batches train (CTC has W/8 steps)
    with pytest.raises(ConfigError, match="data.min_width=64: needs data.width_mode=keep_ratio"):
        build_task(rec_config(shared_dir, tmp_path / "fixed", data__min_width=64))
