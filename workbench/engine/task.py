"""The Task interface: what the generic trainer needs to know about a module (recognition, detection, ...).

It lives in the engine, the layer that calls it; the tasks (``workbench.tasks``) implement it. The trainer owns
the loop, optimisation, checkpoints, tracking and devices; a Task owns everything OCR-specific: the model and its
starting weights, the data, the loss, and how predictions are scored.
Evaluation is split in two so that it is exact under data parallelism: every rank ``predict``s its shard of the
evaluation set into plain per-sample records, the records are gathered, and ``score`` computes the metrics once
over all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from workbench.config.schema import TrainConfig


@dataclass
class EvalResult:
    metrics: dict[str, float]
    records: list[dict] = field(default_factory=list)  # one row per sample (see the task for columns)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. confusion counts for reports


@dataclass
class WeightsReport:
    """How the starting weights were obtained; goes into checkpoint meta and MLflow."""

    source: Optional[str] = None  # path / official name / None (random init)
    loaded_keys: int = 0
    total_keys: int = 0
    reinitialised: list = field(default_factory=list)  # keys re-initialised on purpose (dictionary change)
    notes: list = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.source is None or self.loaded_keys + len(self.reinitialised) == self.total_keys


class Task(ABC):
    name: str = "?"

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    # --- model ---------------------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self):
        """A fresh model of ``cfg.model.name`` (random init)."""

    @abstractmethod
    def load_initial_weights(self, model) -> WeightsReport:
        """Load ``cfg.model.pretrained`` strictly (missing / mismatched keys are an error listing them)."""

    # --- data ----------------------------------------------------------------------------------------------
    @abstractmethod
    def train_dataset(self): ...

    @abstractmethod
    def val_dataset(self): ...

    @abstractmethod
    def collate_train(self, samples: list): ...

    @abstractmethod
    def collate_eval(self, samples: list): ...

    def check_data(self, run_dir: Path) -> None:
        """Run `wb data check` on the training data before training (``data.check``); raise on blocking errors."""

    def data_summary(self) -> dict:
        """Sizes, fingerprints and findings of the data (MLflow params / tags)."""
        return {}

    def datasets(self, splits: tuple[str, ...] = ("train", "val")) -> list:
        """The data of ``splits`` as ``workbench.tracking.conventions.DatasetInfo`` records (MLflow dataset
        inputs: name, label files, digest, sample count); ``[]`` when the task has none to name."""
        return []

    # --- training ------------------------------------------------------------------------------------------
    def batch_sort_keys(self, dataset) -> Optional[Any]:
        """One number per sample of ``dataset`` (e.g. the input width) to batch similar samples together, so
        padding a batch costs little; None: batches in plain (shuffled) order."""
        return None

    def batch_meta(self, epoch: int, batch_index: int) -> Optional[dict]:
        """Settings shared by the samples of one training batch (None: nothing)."""
        return None

    @abstractmethod
    def build_loss(self): ...

    @abstractmethod
    def training_step(self, model, loss_fn, batch) -> tuple[dict, int]:
        """Forward + loss on one batch; returns (losses with a 'loss' tensor, number of samples)."""

    # --- evaluation ----------------------------------------------------------------------------------------
    @abstractmethod
    def predict(self, model, batch) -> list[dict]:
        """Model predictions for an evaluation batch as plain per-sample records (picklable)."""

    def eval_input_spec(self) -> Optional[list]:
        """``paddle.static.InputSpec`` s of the evaluation graph (``eval.runtime``); None: evaluate eagerly."""
        return None

    @abstractmethod
    def score(self, records: list[dict]) -> EvalResult:
        """Metrics over all records of the evaluation set."""

    def write_report(self, result: EvalResult, out_dir: Path, info: Optional[dict] = None) -> list[Path]:
        """Per-sample table + HTML report; returns the files written (logged to MLflow)."""
        return []

    # --- checkpoints ---------------------------------------------------------------------------------------
    def checkpoint_meta(self) -> dict:
        return {"task": self.name, "model_name": self.cfg.model.name}

    def dictionary_lines(self) -> Optional[list[str]]:
        return None
