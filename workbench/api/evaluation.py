"""``wb eval`` as a function: evaluate weights on a labeled set, write the per-sample report, log an MLflow run.

An evaluation of stock weights is a *baseline run* (tag ``wb.kind=eval``); fine-tuning runs name it with
``tracking.baseline_run=<run id>`` and get the comparison in their own run and report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from workbench.errors import ConfigError

log = logging.getLogger("workbench.eval")


def apply_checkpoint_to_config(cfg, ref: str):
    """Point ``cfg.model`` at the weights ``ref`` (resolved by ``workbench.weights.refs``: for a checkpoint or run,
    the weights it stands for, its EMA average when it kept one) and at what comes with them: a checkpoint's model
    name, arch, dictionary and resolved ``max_text_length`` (``meta.json``, ``dict.txt``; the length only where
    the config leaves it null), an imported file's model name and dictionary (``<stem>.import.json``,
    ``<stem>.dict.txt``), an official name's model. Returns the :class:`~workbench.weights.refs.WeightsRef`."""
    from workbench.tasks import registry
    from workbench.weights import refs

    w = refs.resolve(ref, stock=registry.get(cfg.task).stock_models, prefer="best",
                     tracking_uri=cfg.tracking.tracking_uri, fetch=False, what="checkpoint", task=cfg.task)
    if w.kind in (refs.RefKind.PIPELINE, refs.RefKind.INFERENCE_MODEL):
        w.require_weights("checkpoint")
    where = w.checkpoint_dir or ref
    if w.task and w.task != cfg.task:
        raise ConfigError(f"checkpoint {where} is a {w.task} model; use the matching recipe")
    if w.model_name and w.model_name != cfg.model.name:
        log.info("model %s (from %s) instead of the recipe's %s", w.model_name, where, cfg.model.name)
        cfg.model.name = w.model_name
    if w.dictionary is not None:
        cfg.model.character_dict = str(w.dictionary)
    if w.arch:
        cfg.model.arch = dict(w.arch)
    trained_length = (w.checkpoint.meta.get("max_text_length") if w.checkpoint is not None else None)
    if trained_length and cfg.model.max_text_length is None:
        # null = "the longest training label": for a run's weights that is the length the run resolved, so
        # `wb eval` excludes (upstream mode) the same labels as the run's own evaluation did
        cfg.model.max_text_length = int(trained_length)
    cfg.model.pretrained = str(w.weights_file) if w.weights_file is not None else w.model_name
    return w


def _weights_label(w) -> str:
    """``stock`` / the official name / the run, file or registered version the evaluated weights came from."""
    from workbench.tracking.conventions import weights_label
    from workbench.weights.refs import RefKind

    if w.kind in (RefKind.STOCK, RefKind.OFFICIAL):
        return "stock" if w.kind is RefKind.STOCK or w.ref == w.model_name else w.ref
    return weights_label(w.ref)


def run_eval(cfg, run_dir: Optional[Path] = None) -> dict:
    """Evaluate ``cfg.checkpoint`` on ``cfg.data.val``; returns ``{"metrics", "run_id", "run_dir", "files"}``."""
    from workbench.api.training import default_run_dir, default_run_name, hydra_run_dir
    from workbench.config.compose import flatten, to_plain_dict, to_typed
    from workbench.config.schema import TrainConfig
    from workbench.engine.distributed import DistEnv
    from workbench.engine.compiled_eval import check_runtime
    from workbench.engine.trainer import Trainer, seed_everything, set_device
    from workbench.tasks.registry import build_task
    from workbench.tracking.mlflow import RUN_DIR_TAG, Tracker

    typed = cfg if isinstance(cfg, TrainConfig) else to_typed(cfg)
    if not typed.checkpoint:
        raise ConfigError("wb eval needs checkpoint=<run id | run dir | checkpoint dir | .pdparams | official name>")
    if run_dir is None:
        run_dir = Path(typed.trainer.output_dir) if typed.trainer.output_dir else (
            hydra_run_dir() or default_run_dir(typed.task, "eval_"))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    weights_ref = apply_checkpoint_to_config(typed, typed.checkpoint)
    seed_everything(typed.seed)
    check_runtime(typed.eval.runtime, set_device(typed, DistEnv()))
    task = build_task(typed)
    val = task.val_dataset()
    if val is None:
        raise ConfigError("wb eval needs data.val=<label file> (or the demo data)")
    model = task.build_model()
    weights = task.load_initial_weights(model)
    trainer = Trainer(typed, task, run_dir)
    result = trainer.evaluate(model, val)
    info = {"model": typed.model.name, "checkpoint": str(typed.checkpoint), "data": str(typed.data.val),
            "weights": weights.source}
    files = task.write_report(result, run_dir / "report", info=info) if typed.eval.report else []
    (run_dir / "metrics.json").write_text(json.dumps(result.metrics, indent=1))
    run_id = None
    if typed.tracking.enabled:
        tracker = Tracker(
            typed.tracking.tracking_uri, typed.tracking.experiment,
            run_name=typed.tracking.run_name or default_run_name(typed, task, kind="eval",
                                                                 weights=_weights_label(weights_ref)),
            tags={"wb.kind": "eval", "wb.task": typed.task, "wb.model": typed.model.name,
                  RUN_DIR_TAG: str(run_dir.resolve()), "wb.checkpoint": str(typed.checkpoint),
                  **{str(k): str(v) for k, v in typed.tracking.tags.items()}},
            backlog_dir=run_dir,
        )
        tracker.log_params(flatten(to_plain_dict(typed)))
        tracker.log_inputs([d.to_dict() for d in task.datasets(("val",))])
        tracker.log_metrics({f"eval/{k}": v for k, v in result.metrics.items()}, step=0)
        tracker.log_dict(asdict(weights), "weights/initial_weights.json")
        for f in files:
            tracker.log_artifact(f, "report")
        tracker.log_artifact(run_dir / "metrics.json")
        tracker.finish()
        run_id = tracker.run_id
    return {"metrics": result.metrics, "run_id": run_id, "run_dir": run_dir, "files": files,
            "model": typed.model.name, "data": typed.data.val}
