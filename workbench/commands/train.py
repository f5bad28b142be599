"""`wb train`: compose the recipe with Hydra, check the data, train, track.

    wb train recipe=rec_finetune                                   # built-in demo data
    wb train recipe=rec_finetune data.train=/my/train.txt data.val=/my/val.txt optim.lr=2e-4
    wb train recipe=rec_finetune trainer.resume=<run dir | MLflow run id>
    wb train -m recipe=rec_finetune optim.lr=1e-4,2e-4               # sweep (Hydra multirun)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

log = logging.getLogger("workbench.train")


def run_training(cfg, run_dir: Path | None = None):
    """Train from a composed (untyped) config; returns the best value of the selection metric."""
    from workbench.config.compose import to_typed
    from workbench.engine.distributed import detect_env, init
    from workbench.engine.trainer import Trainer
    from workbench.tasks import build_task

    from workbench.config.schema import TrainConfig

    typed = cfg if isinstance(cfg, TrainConfig) else to_typed(cfg)
    _command_line_beats_demo_overrides(typed)
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        from workbench.tracking.runs import resume_run_dir

        run_dir = Path(typed.trainer.output_dir or resume_run_dir(typed.trainer.resume, typed.tracking.tracking_uri)
                       or HydraConfig.get().runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    from workbench.engine.launch import check_launched

    check_launched(typed.trainer.devices, typed.trainer.nodes)
    env = detect_env()
    init(env)
    task = build_task(typed)
    if typed.data.check and env.is_main:
        task.check_data(run_dir)
    trainer = Trainer(typed, task, run_dir, env)
    state = trainer.fit()
    log.info("run dir: %s | best %s = %s (step %s)", run_dir, typed.eval.select_metric, state.best_metric, state.best_step)
    return state.best_metric


def _command_line_beats_demo_overrides(typed) -> None:
    """A value given on the command line (``trainer.epochs=3``) is not replaced by ``data.demo.overrides``."""
    from hydra.core.hydra_config import HydraConfig

    from workbench.tasks.common import command_line_keys, drop_demo_overrides

    if not HydraConfig.initialized() or not typed.data.demo.overrides:
        return
    dropped = drop_demo_overrides(typed, command_line_keys(list(HydraConfig.get().overrides.task)))
    if dropped:
        log.info("demo: the command line sets %s (data.demo.overrides not applied there)", ", ".join(dropped))


def run_trial(cfg, job_dir: Path, overrides: list[str]) -> float:
    """One sweep trial: a failure is recorded (trial.json, a FAILED MLflow child run) and returns NaN, so the
    sweep goes on and Optuna marks the trial failed."""
    from workbench.tracking.sweep import record_trial

    try:
        value = run_training(cfg, job_dir)
    except Exception as exc:  # noqa: BLE001 - any trial failure is data for the sweep, not the end of it
        log.exception("trial %s failed", job_dir.name)
        run_id = _failed_child_run(cfg, job_dir, overrides, exc)
        record_trial(job_dir, overrides=overrides, value=None, status="failed", run_id=run_id, error=repr(exc))
        return float("nan")
    run_id = _run_id_of(job_dir)
    record_trial(job_dir, overrides=overrides, value=value, status="ok", run_id=run_id)
    return float("nan") if value is None else float(value)


def _run_id_of(job_dir: Path):
    import json

    f = job_dir / "mlflow_run.json"
    return json.loads(f.read_text()).get("run_id") if f.is_file() else None


def _failed_child_run(cfg, job_dir: Path, overrides: list[str], exc: Exception):
    """The trainer marks its own run FAILED; when it failed before tracking started, leave a FAILED run anyway."""
    import os

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


def main(argv: list[str]) -> int:
    import hydra

    from workbench.config.compose import recipes_dir, register_schema
    from workbench.engine.launch import maybe_launch

    code = maybe_launch(argv)  # trainer.devices>1: run this command once per device under paddle's launcher
    if code is not None:
        return code
    register_schema()
    sys.argv = ["wb-train", *argv]
    result = {}

    @hydra.main(config_path=str(recipes_dir()), config_name="train", version_base="1.3")
    def _app(cfg):
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from workbench.cli import user_errors_exit

        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            with user_errors_exit("train"):
                result["best"] = run_training(cfg)
            return result["best"]
        return run_trial(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))

    _app()
    return 0
