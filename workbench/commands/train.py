"""`wb train`: compose the recipe with Hydra, check the data, train, track.

    wb train recipe=rec_finetune                                   # built-in demo data
    wb train recipe=rec_finetune data.train=/my/train.txt data.val=/my/val.txt optim.lr=2e-4
    wb train recipe=rec_finetune trainer.resume=<run dir | MLflow run id>
    wb train -m recipe=rec_finetune optim.lr=1e-4,2e-4               # sweep (Hydra multirun)

The work is ``workbench.api.training``; this module composes the recipe (Hydra), launches one process per device
when asked, and hands each sweep trial over.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import hydra

    from workbench.api.training import prepare_launch
    from workbench.config.compose import recipes_dir, register_schema
    from workbench.engine.launch import maybe_launch

    # trainer.devices>1: run this command once per device under paddle's launcher
    code = maybe_launch(argv, prepare=prepare_launch)
    if code is not None:
        return code
    register_schema()
    sys.argv = ["wb-train", *argv]

    @hydra.main(config_path=str(recipes_dir()), config_name="train", version_base="1.3")
    def _app(cfg):
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from workbench.api.training import run_training, run_trial
        from workbench.commands import user_errors_exit

        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            with user_errors_exit("train"):
                return run_training(cfg).best_metric
        return run_trial(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))

    _app()
    return 0
