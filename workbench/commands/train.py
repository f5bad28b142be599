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
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = Path(typed.trainer.output_dir or HydraConfig.get().runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = detect_env()
    init(env)
    task = build_task(typed)
    if typed.data.check and env.is_main:
        task.check_data(run_dir)
    trainer = Trainer(typed, task, run_dir, env)
    state = trainer.fit()
    log.info("run dir: %s | best %s = %s (step %s)", run_dir, typed.eval.select_metric, state.best_metric, state.best_step)
    return state.best_metric


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
        result["best"] = run_training(cfg)
        return result["best"]

    _app()
    return 0
