"""Run by tests under `paddle.distributed.launch` (and alone, for the single-process reference).

    python dist_worker.py toy <out_dir> <batch_size> [resume]   toy regression training (no BN / dropout)
    python dist_worker.py rec_eval <out_dir> <run_dir>         evaluation of a tiny rec checkpoint
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workbench.engine.distributed import detect_env, init  # noqa: E402


def toy(out: Path, batch_size: int, resume: str | None) -> None:
    from toy_task import ToyTask
    from test_engine_trainer import make_cfg
    from workbench.engine.trainer import Trainer

    env = detect_env()
    init(env)
    cfg = make_cfg(out, epochs=2)
    cfg.data.batch_size = batch_size
    cfg.trainer.resume = resume

    class NoDropout(ToyTask):
        def build_model(self):
            m = super().build_model()
            m.drop.p = 0.0
            return m

    state = Trainer(cfg, NoDropout(cfg, n_train=64, n_val=16), out, env).fit()
    if env.is_main:
        (out / "result.json").write_text(json.dumps({"global_step": state.global_step,
                                                     "samples_seen": state.samples_seen,
                                                     "world_size": env.world_size}))


def rec_eval(out: Path, run_dir: str) -> None:
    from tiny_runs import rec_config
    from workbench.api.evaluation import apply_checkpoint_to_config
    from workbench.engine.trainer import Trainer
    from workbench.tasks import build_task

    env = detect_env()
    init(env)
    shared = Path(__file__).resolve().parents[2] / "shared"
    import os

    shared = Path(os.environ.get("WB_SHARED_DIR", shared))
    cfg = rec_config(shared, out)
    cfg.data.max_val_samples = 37  # not a multiple of the world size: shards differ in length
    cfg.data.eval_batch_size = 5
    apply_checkpoint_to_config(cfg, run_dir)
    task = build_task(cfg)
    model = task.build_model()
    task.load_initial_weights(model)
    result = Trainer(cfg, task, out, env).evaluate(model, task.val_dataset())
    if env.is_main:
        (out / f"eval_{env.world_size}.json").write_text(json.dumps(
            {"metrics": result.metrics, "preds": [(r["index"], r["pred"], r["score"]) for r in result.records]}))


if __name__ == "__main__":
    kind, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if kind == "toy":
        toy(out, int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        rec_eval(out, sys.argv[3])
