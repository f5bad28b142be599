"""Module-specific parts of training and evaluation (see ``base.Task``)."""

from __future__ import annotations

from workbench.config.schema import TrainConfig
from workbench.errors import ConfigError


def build_task(cfg: TrainConfig):
    # Imported lazily: each task pulls in its own models and data code.
    if cfg.task == "rec":
        from workbench.tasks.rec import RecTask

        return RecTask(cfg)
    if cfg.task == "det":
        from workbench.tasks.det import DetTask

        return DetTask(cfg)
    raise ConfigError(f"task={cfg.task!r}: choose rec or det (pick a recipe: recipe=rec_finetune | det_finetune)")
