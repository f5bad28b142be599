"""Tiny real training runs (tiny models, slices of ../shared/data) that tests can build on: export, compare,
analysis, resume. Each takes a few seconds on 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

from workbench.config.schema import TrainConfig


def rec_config(shared: Path, out: Path, **over) -> TrainConfig:
    cfg = TrainConfig(task="rec")
    cfg.model.name = "rec_tiny"
    cfg.model.character_dict = str(shared / "fixtures" / "parity" / "ppocrv5_en_dict.txt")
    cfg.data.train = str(shared / "data" / "icdar2015_rec" / "label.txt")
    cfg.data.val = str(shared / "data" / "icdar2015_rec" / "label.txt")
    cfg.data.policy = "skip"  # a few ICDAR labels are too long / use characters outside the English dictionary
    cfg.data.max_train_samples = 64
    cfg.data.max_val_samples = 16
    cfg.data.batch_size = 16
    cfg.data.eval_batch_size = 16
    cfg.data.num_workers = 0
    cfg.data.check = False
    cfg.trainer.epochs = 2
    cfg.trainer.progress_bar = False
    cfg.trainer.log_every_steps = 1
    cfg.trainer.output_dir = str(out)
    cfg.optim.lr = 2e-3
    cfg.tracking.enabled = False
    for k, v in over.items():
        section, _, key = k.partition("__")
        setattr(getattr(cfg, section), key, v) if key else setattr(cfg, section, v)
    return cfg


def det_config(shared: Path, out: Path, **over) -> TrainConfig:
    cfg = TrainConfig(task="det")
    cfg.model.name = "det_tiny"
    cfg.data.train = str(shared / "data" / "icdar2015_det" / "label.txt")
    cfg.data.val = str(shared / "data" / "icdar2015_det" / "label.txt")
    cfg.data.max_train_samples = 8
    cfg.data.max_val_samples = 3
    cfg.data.batch_size = 2
    cfg.data.eval_batch_size = 1
    cfg.data.num_workers = 0
    cfg.data.check = False
    cfg.data.augment = {"crop_size": [320, 320]}
    cfg.trainer.epochs = 1
    cfg.trainer.progress_bar = False
    cfg.trainer.log_every_steps = 1
    cfg.trainer.output_dir = str(out)
    cfg.eval.select_metric = "hmean"
    cfg.tracking.enabled = False
    for k, v in over.items():
        section, _, key = k.partition("__")
        setattr(getattr(cfg, section), key, v) if key else setattr(cfg, section, v)
    return cfg


def train(cfg: TrainConfig) -> Path:
    import workbench

    return workbench.train(cfg).run_dir


def textline_config(shared: Path, out: Path, **over) -> TrainConfig:
    """PP-LCNet_x0_25_textline_ori from scratch on ICDAR 2015 crops (a rec file: every crop also turned by 180°)."""
    cfg = TrainConfig(task="textline_ori")
    cfg.model.name = "PP-LCNet_x0_25_textline_ori"
    cfg.data.train = str(shared / "data" / "icdar2015_rec" / "label.txt")
    cfg.data.val = str(shared / "data" / "sroie_rec" / "label.txt")
    cfg.data.max_train_samples = 64
    cfg.data.max_val_samples = 16
    cfg.data.batch_size = 16
    cfg.data.eval_batch_size = 16
    cfg.data.num_workers = 0
    cfg.data.check = False
    cfg.trainer.epochs = 1
    cfg.trainer.progress_bar = False
    cfg.trainer.log_every_steps = 1
    cfg.trainer.output_dir = str(out)
    cfg.optim.lr = 2e-3
    cfg.tracking.enabled = False
    for k, v in over.items():
        section, _, key = k.partition("__")
        setattr(getattr(cfg, section), key, v) if key else setattr(cfg, section, v)
    return cfg
