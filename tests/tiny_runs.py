"""Tiny real training runs (tiny models, slices of ../shared/data) that tests can build on: export, compare,
analysis, resume. Each takes a few seconds on 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

from workbench.config.schema import TrainConfig


def _tiny(task: str, model: str, out: Path, *, train: Path, val: Path, samples: tuple[int, int],
          batch: tuple[int, int], epochs: int, over: dict) -> TrainConfig:
    """What every tiny run shares: a slice of real data, no workers, no data check, no tracking, every step
    logged. ``over``: ``section__key=value`` (or ``section=value``) overrides, applied last."""
    cfg = TrainConfig(task=task)
    cfg.model.name = model
    cfg.data.train, cfg.data.val = str(train), str(val)
    cfg.data.max_train_samples, cfg.data.max_val_samples = samples
    cfg.data.batch_size, cfg.data.eval_batch_size = batch
    cfg.data.num_workers = 0
    cfg.data.check = False
    cfg.trainer.epochs = epochs
    cfg.trainer.progress_bar = False
    cfg.trainer.log_every_steps = 1
    cfg.trainer.output_dir = str(out)
    cfg.tracking.enabled = False
    for k, v in over.items():
        section, _, key = k.partition("__")
        setattr(getattr(cfg, section), key, v) if key else setattr(cfg, section, v)
    return cfg


def rec_config(shared: Path, out: Path, **over) -> TrainConfig:
    icdar = shared / "data" / "icdar2015_rec" / "label.txt"
    # a few ICDAR labels are too long / use characters outside the English dictionary: skipped, not fatal
    base = {"model__character_dict": str(shared / "fixtures" / "parity" / "ppocrv5_en_dict.txt"),
            "data__policy": "skip", "optim__lr": 2e-3}
    return _tiny("rec", "rec_tiny", out, train=icdar, val=icdar, samples=(64, 16), batch=(16, 16), epochs=2,
                 over={**base, **over})


def det_config(shared: Path, out: Path, **over) -> TrainConfig:
    icdar = shared / "data" / "icdar2015_det" / "label.txt"
    base = {"data__augment": {"crop_size": [320, 320]}, "eval__select_metric": "hmean"}
    return _tiny("det", "det_tiny", out, train=icdar, val=icdar, samples=(8, 3), batch=(2, 1), epochs=1,
                 over={**base, **over})


def textline_config(shared: Path, out: Path, **over) -> TrainConfig:
    """PP-LCNet_x0_25_textline_ori from scratch on ICDAR 2015 crops (a rec file: every crop also turned by 180°)."""
    return _tiny("textline_ori", "PP-LCNet_x0_25_textline_ori", out,
                 train=shared / "data" / "icdar2015_rec" / "label.txt", val=shared / "data" / "sroie_rec" / "label.txt",
                 samples=(64, 16), batch=(16, 16), epochs=1, over={"optim__lr": 2e-3, **over})


def train(cfg: TrainConfig) -> Path:
    import workbench

    return workbench.train(cfg).run_dir
