"""``wb train`` as a function: build the task from the typed config, check the data, train, track; sweeps'
trials record their outcome instead of stopping the sweep."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

log = logging.getLogger("workbench.train")


@dataclass
class TrainResult:
    run_dir: Path
    state: object  # workbench.engine.checkpoint.TrainState at the end
    select_metric: str

    @property
    def best_metric(self) -> Optional[float]:
        return self.state.best_metric

    @property
    def best_step(self) -> Optional[int]:
        return self.state.best_step


def default_run_dir(task: str, kind: str = "") -> Path:
    """Where a run goes when neither ``trainer.output_dir`` nor Hydra says: ``runs/<task>/<kind><time>``."""
    return Path("runs") / task / f"{kind}{_dt.datetime.now():%Y-%m-%d_%H-%M-%S}"


def hydra_run_dir() -> Optional[Path]:
    """Hydra's run directory when running inside a Hydra app (``wb train`` / ``wb eval``), else None."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None


def hydra_overrides() -> list[str]:
    """The command-line overrides of the running Hydra app (a sweep trial's: its own), else ``[]``."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def default_run_name(typed, task, *, kind: str = "", weights: str = "") -> str:
    """The MLflow run's name when ``tracking.run_name`` gives none: ``rec PP-OCRv5_mobile_rec receipts lr2e-4``
    (task, model, the training data's name — the evaluation data's for ``wb eval`` —, the overrides)."""
    from workbench.tracking.conventions import run_name

    split = "val" if kind == "eval" else "train"
    infos = task.datasets((split,))
    return run_name(typed.task, typed.model.name, infos[0].name if infos else "", hydra_overrides(), kind=kind,
                    weights=weights)


def run_training(cfg, run_dir: Optional[Path] = None) -> TrainResult:
    """Train from a typed config (``TrainConfig``) or a composed one (Hydra ``DictConfig``)."""
    from workbench.config.compose import to_typed
    from workbench.config.schema import TrainConfig
    from workbench.engine.distributed import detect_env, init
    from workbench.engine.launch import check_launched
    from workbench.engine.runs import resume_run_dir
    from workbench.engine.trainer import Trainer
    from workbench.tasks.registry import build_task

    typed = cfg if isinstance(cfg, TrainConfig) else to_typed(cfg)
    _command_line_beats_demo_overrides(typed)
    # a resumed run goes on in its own run dir, so it ends with the outputs of one that never stopped
    if run_dir is None:
        run_dir = Path(typed.trainer.output_dir or resume_run_dir(typed.trainer.resume, typed.tracking.tracking_uri)
                       or hydra_run_dir() or default_run_dir(typed.task))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_launched(typed.trainer.devices, typed.trainer.nodes)
    env = detect_env()
    init(env)
    task = build_task(typed)
    if typed.data.check and env.is_main:
        task.check_data(run_dir)
    hooks = []
    if typed.tracking.baseline_run:
        from workbench.analysis.baseline import BaselineComparison

        hooks.append(BaselineComparison(typed.tracking.baseline_run, typed.tracking.tracking_uri,
                                        typed.eval.select_metric))
    name = None if typed.tracking.run_name or not typed.tracking.enabled else default_run_name(typed, task)
    state = Trainer(typed, task, run_dir, env, after_training=hooks, run_name=name).fit()
    log.info("run dir: %s | best %s = %s (step %s)", run_dir, typed.eval.select_metric, state.best_metric,
             state.best_step)
    return TrainResult(run_dir, state, typed.eval.select_metric)


def prepare_launch(cfg) -> None:
    """Before the workers of a multi-device run start: generate the demo set once for all ranks."""
    from workbench.tasks import registry

    if cfg.data.train is None:
        registry.get(cfg.task).task.make_demo(cfg.data.demo)


def _command_line_beats_demo_overrides(typed) -> None:
    """A value given on the command line (``trainer.epochs=3``) is not replaced by ``data.demo.overrides``.
    Only a demo run (no ``data.train``, no ``model.pretrained``) applies those overrides, so only it says so."""
    from hydra.core.hydra_config import HydraConfig

    from workbench.tasks.common import command_line_keys, demo_trains_from_scratch, drop_demo_overrides

    if not HydraConfig.initialized() or not typed.data.demo.overrides or not demo_trains_from_scratch(typed):
        return
    dropped = drop_demo_overrides(typed, command_line_keys(list(HydraConfig.get().overrides.task)))
    if dropped:
        log.info("demo: the command line sets %s (data.demo.overrides not applied there)", ", ".join(dropped))


def run_trial(cfg, job_dir: Path, overrides: list[str]) -> float:
    """One sweep trial: a failure is recorded (trial.json, a FAILED MLflow child run) and returns NaN, so the
    sweep goes on and Optuna marks the trial failed."""
    from workbench.tracking.sweep import record_trial

    try:
        value = run_training(cfg, job_dir).best_metric
    except Exception as exc:  # noqa: BLE001 - any trial failure is data for the sweep, not the end of it
        log.exception("trial %s failed", job_dir.name)
        run_id = _failed_child_run(cfg, job_dir, overrides, exc)
        record_trial(job_dir, overrides=overrides, value=None, status="failed", run_id=run_id, error=repr(exc))
        return float("nan")
    run_id = _run_id_of(job_dir)
    record_trial(job_dir, overrides=overrides, value=value, status="ok", run_id=run_id)
    return float("nan") if value is None else float(value)


def _run_id_of(job_dir: Path):
    f = job_dir / "mlflow_run.json"
    return json.loads(f.read_text()).get("run_id") if f.is_file() else None


def _failed_child_run(cfg, job_dir: Path, overrides: list[str], exc: Exception):
    """The trainer marks its own run FAILED; when it failed before tracking started, leave a FAILED run anyway."""
    from workbench.tracking.mlflow import Tracker

    run_id = _run_id_of(job_dir)
    t = cfg.get("tracking", {})
    if run_id or not t.get("enabled", True):
        return run_id
    tracker = Tracker(t.get("tracking_uri"), t.get("experiment", "ocr-workbench"), run_name=f"trial {job_dir.name}",
                      parent_run_id=os.environ.get("WB_PARENT_RUN_ID"), tags={"wb.kind": "trial"},
                      backlog_dir=job_dir)
    tracker.log_params({"overrides": overrides})
    tracker.log_text(repr(exc), "error.txt")
    tracker.finish("FAILED")
    return tracker.run_id
