"""`wb eval`: evaluate weights on a labeled set, write the per-sample report, log an MLflow run.

    wb eval recipe=rec_finetune checkpoint=<run id | run dir | checkpoint dir | .pdparams | official name> data.val=...
    wb eval recipe=det_finetune checkpoint=... data.val=... eval.det.resize_mode=upstream

An evaluation of stock weights is a *baseline run* (tag ``wb.kind=eval``); fine-tuning runs name it with
``tracking.baseline_run=<run id>`` and get the comparison in their own run and report.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from workbench.errors import ConfigError

log = logging.getLogger("workbench.eval")


def apply_checkpoint_to_config(cfg, ref: str):
    """Point ``cfg.model`` at the weights ``ref``; a workbench checkpoint also fixes model name and dictionary."""
    from workbench.engine.checkpoint import DICT_FILE, is_checkpoint_dir, read_checkpoint
    from workbench.tracking.mlflow import looks_like_run_id

    path = Path(ref)
    ckpt_dir = None
    if path.is_dir() or looks_like_run_id(ref):
        from workbench.tracking.runs import resolve_checkpoint

        ckpt_dir = resolve_checkpoint(ref, prefer="best", tracking_uri=cfg.tracking.tracking_uri)
    elif path.is_file() and path.name == "model.pdparams" and is_checkpoint_dir(path.parent):
        ckpt_dir = path.parent
    if ckpt_dir is not None:
        c = read_checkpoint(ckpt_dir)
        name = c.meta.get("model_name")
        if c.meta.get("task") and c.meta["task"] != cfg.task:
            raise ConfigError(f"checkpoint {ckpt_dir} is a {c.meta['task']} model; use the matching recipe")
        if name and name != cfg.model.name:
            log.info("model %s (from the checkpoint) instead of the recipe's %s", name, cfg.model.name)
            cfg.model.name = name
        if (ckpt_dir / DICT_FILE).is_file():
            cfg.model.character_dict = str(ckpt_dir / DICT_FILE)
        arch = c.meta.get("arch")
        if arch:
            cfg.model.arch = arch
        cfg.model.pretrained = str(ckpt_dir / "model.pdparams")
        return ckpt_dir
    cfg.model.pretrained = ref
    return None


def run_eval(cfg, run_dir: Path | None = None) -> dict:
    from workbench.config.compose import flatten, to_plain_dict, to_typed
    from workbench.engine.trainer import Trainer, seed_everything, set_device
    from workbench.tasks import build_task
    from workbench.tracking.mlflow import RUN_DIR_TAG, Tracker

    from workbench.config.schema import TrainConfig
    from workbench.engine.distributed import DistEnv

    typed = cfg if isinstance(cfg, TrainConfig) else to_typed(cfg)
    if not typed.checkpoint:
        raise ConfigError("wb eval needs checkpoint=<run id | run dir | checkpoint dir | .pdparams | official name>")
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = Path(typed.trainer.output_dir or HydraConfig.get().runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    apply_checkpoint_to_config(typed, typed.checkpoint)
    seed_everything(typed.seed)
    set_device(typed, DistEnv())
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
    print(f"\n{typed.model.name} on {typed.data.val}:")
    for k, v in sorted(result.metrics.items()):
        print(f"  {k:<28} {v:.4f}")
    if typed.tracking.enabled:
        tracker = Tracker(
            typed.tracking.tracking_uri, typed.tracking.experiment,
            run_name=typed.tracking.run_name or f"eval {typed.model.name}",
            tags={"wb.kind": "eval", "wb.task": typed.task, "wb.model": typed.model.name, RUN_DIR_TAG: str(run_dir.resolve()),
                  "wb.checkpoint": str(typed.checkpoint), **{str(k): str(v) for k, v in typed.tracking.tags.items()}},
            backlog_dir=run_dir,
        )
        tracker.log_params(flatten(to_plain_dict(typed)))
        tracker.log_metrics({f"eval/{k}": v for k, v in result.metrics.items()}, step=0)
        tracker.log_dict(asdict(weights), "weights/initial_weights.json")
        for f in files:
            tracker.log_artifact(f, "report")
        tracker.log_artifact(run_dir / "metrics.json")
        tracker.finish()
        if tracker.run_id:
            print(f"  MLflow run: {tracker.run_id}")
    return {"metrics": result.metrics, "run_id": tracker.run_id if typed.tracking.enabled else None,
            "run_dir": run_dir}


def main(argv: list[str]) -> int:
    import hydra

    from workbench.config.compose import recipes_dir, register_schema

    register_schema()
    sys.argv = ["wb-eval", *argv]
    if not any(a.startswith("hydra.run.dir=") for a in argv):
        sys.argv.append("hydra.run.dir=runs/${task}/eval_${now:%Y-%m-%d_%H-%M-%S}")

    @hydra.main(config_path=str(recipes_dir()), config_name="train", version_base="1.3")
    def _app(cfg):
        from workbench.cli import user_errors_exit

        with user_errors_exit("eval"):
            run_eval(cfg)

    _app()
    return 0
