"""Pieces both tasks share: which label files to use (the user's, or the built-in demo set)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from workbench.config.schema import DataConfig, TrainConfig
from workbench.errors import ConfigError

log = logging.getLogger("workbench.data")


@dataclass
class DataFiles:
    train: list[tuple[Path, float]] = field(default_factory=list)
    val: list[tuple[Path, float]] = field(default_factory=list)
    demo: bool = False  # the built-in demo set is used
    demo_dict: Optional[Path] = None  # rec: the demo set's dictionary


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [str(value)]
    return [str(v) for v in value]


def resolve_data_files(data: DataConfig, kind: str) -> DataFiles:
    """``data.train`` / ``data.val`` as (file, ratio) lists; with no ``data.train`` the demo set is generated."""
    train, val = _as_list(data.train), _as_list(data.val)
    if not train:
        from workbench.data import synth

        gen = synth.generate_rec_demo if kind == "rec" else synth.generate_det_demo
        demo = gen(data.demo.dir, data.demo.n_train, data.demo.n_val, data.demo.seed)
        log.info("no data.train given: using the built-in %s demo set in %s", kind, demo.root)
        return DataFiles(
            train=[(Path(demo.train), 1.0)],
            val=[(Path(p), 1.0) for p in val] or [(Path(demo.val), 1.0)],
            demo=True,
            demo_dict=Path(demo.dict_path) if getattr(demo, "dict_path", None) else None,
        )
    ratios = data.train_ratios or [1.0] * len(train)
    if len(ratios) != len(train):
        raise ConfigError(f"data.train_ratios has {len(ratios)} values for {len(train)} train files")
    for p in train + val:
        if not Path(p).is_file():
            raise ConfigError(f"label file not found: {p}")
    if not val:
        log.warning("no data.val given: no evaluation, no best checkpoint (only 'latest')")
    return DataFiles(train=[(Path(p), float(r)) for p, r in zip(train, ratios)], val=[(Path(p), 1.0) for p in val])


def apply_demo_model(cfg: TrainConfig, files: DataFiles) -> None:
    """On the demo set, train ``data.demo.model`` from scratch unless starting weights were given (see DemoConfig)."""
    demo = cfg.data.demo
    if files.demo and demo.model and not cfg.model.pretrained and cfg.model.name != demo.model:
        log.warning(
            "demo: training %s from scratch on the synthetic set instead of %s (data.demo.model). Give data.train "
            "(and model.pretrained) to fine-tune %s on your data.", demo.model, cfg.model.name, cfg.model.name,
        )
        cfg.model.name = demo.model
        cfg.model.arch = dict(demo.arch)
