"""A training run in its own process, for tests that kill it (``WB_FAULT``, see ``workbench.faults``) or
limit it (``fsize=<bytes>``: RLIMIT_FSIZE, a disk that is full for any file growing past that size).

    python fault_worker.py toy|rec_tiny|det_tiny <run_dir> [epochs=N] [resume=<run dir>] [tracking_uri=URI]
                                                           [fsize=BYTES] [lr=X]

Exits 0 when training finished, 2 with one line on stderr for a WorkbenchError (as ``wb`` does); a SIGKILL from
a fault point ends it with -9.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SHARED = Path(os.environ.get("WB_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared")).resolve()


def build(kind: str, run_dir: Path, opts: dict):
    from workbench.tasks import build_task

    if kind == "toy":
        from test_engine_trainer import make_cfg
        from toy_task import ToyTask

        cfg = make_cfg(run_dir, epochs=int(opts.get("epochs", 3)))
        task_factory = lambda c: ToyTask(c)  # noqa: E731
    else:
        from tiny_runs import det_config, rec_config

        cfg = (rec_config if kind == "rec_tiny" else det_config)(SHARED, run_dir)
        cfg.trainer.epochs = int(opts.get("epochs", cfg.trainer.epochs))
        task_factory = build_task
    cfg.trainer.output_dir = str(run_dir)
    cfg.trainer.num_threads = 1
    if "lr" in opts:
        cfg.optim.lr = float(opts["lr"])
    if opts.get("resume"):
        cfg.trainer.resume = opts["resume"]
    if opts.get("tracking_uri"):
        cfg.tracking.enabled = True
        cfg.tracking.tracking_uri = opts["tracking_uri"]
        cfg.tracking.experiment = opts.get("experiment", "faults")
        cfg.tracking.log_checkpoints = False
    return cfg, task_factory(cfg)


def main(argv: list[str]) -> int:
    kind, run_dir = argv[0], Path(argv[1])
    opts = dict(a.split("=", 1) for a in argv[2:])
    if "fsize" in opts:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as `wb` does: a write past the limit fails with EFBIG
        limit = int(opts["fsize"])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from workbench.engine.trainer import Trainer
    from workbench.errors import WorkbenchError

    cfg, task = build(kind, run_dir, opts)
    try:
        state = Trainer(cfg, task, run_dir).fit()
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (run_dir / "result.json").write_text(json.dumps({"global_step": state.global_step,
                                                     "best_metric": state.best_metric}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
