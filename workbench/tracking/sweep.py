"""Sweeps (Hydra multirun) in MLflow: one parent run holding the sweep definition and the leaderboard, one child
run per trial (the trainer's own run, tagged with the parent), failing trials recorded instead of stopping the sweep.

Hydra calls :class:`SweepTracking` (configured under ``hydra.callbacks`` in ``recipes/train.yaml``) at the start
and end of a multirun; each trial writes ``trial.json`` into its own job directory (``record_trial``), which works
the same with the basic launcher and with parallel launchers (joblib locally, submitit on SLURM), whose jobs run in
other processes.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("workbench.sweep")

PARENT_ENV = "WB_PARENT_RUN_ID"
TRIAL_FILE = "trial.json"


def record_trial(job_dir: Path, *, overrides: list[str], value: Optional[float], status: str,
                 run_id: Optional[str], error: Optional[str] = None) -> None:
    Path(job_dir).mkdir(parents=True, exist_ok=True)
    (Path(job_dir) / TRIAL_FILE).write_text(json.dumps(
        {"overrides": overrides, "value": value, "status": status, "run_id": run_id, "error": error}, indent=1))


def leaderboard(trials: list[dict], mode: str = "max") -> list[dict]:
    """Trials ordered best first; failed (or NaN) trials last, in job order."""
    def ok(t):
        return t["status"] == "ok" and t["value"] is not None and not math.isnan(t["value"])

    good = sorted([t for t in trials if ok(t)], key=lambda t: t["value"], reverse=(mode == "max"))
    return good + [t for t in trials if not ok(t)]


def format_leaderboard(board: list[dict], metric: str) -> str:
    """A table of the trials, showing only the overrides that differ between them (the swept ones)."""
    common = set.intersection(*(set(t["overrides"]) for t in board)) if len(board) > 1 else set()
    lines = [f"{'rank':>4}  {metric:>10}  {'status':<7} overrides"]
    for i, t in enumerate(board, 1):
        v = "-" if t["value"] is None or (isinstance(t["value"], float) and math.isnan(t["value"])) else f"{t['value']:.4f}"
        swept = [o for o in t["overrides"] if o not in common]
        lines.append(f"{i:>4}  {v:>10}  {t['status']:<7} {' '.join(swept)}")
    return "\n".join(lines)


class SweepTracking(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from workbench.tracking.mlflow import Tracker

        # Only plain values on self: parallel launchers (joblib) pickle the callbacks with every job.
        self.parent_run_id = None
        t = config.get("tracking", {})
        if not t.get("enabled", True):
            return
        sweep = OmegaConf.to_container(config.hydra.sweeper, resolve=False)
        tracker = Tracker(
            t.get("tracking_uri"), t.get("experiment", "ocr-workbench"),
            run_name=f"sweep {config.get('task', '')} {Path(config.hydra.sweep.dir).name}",
            tags={"wb.kind": "sweep", "wb.task": str(config.get("task")), "wb.sweep_dir": str(config.hydra.sweep.dir)},
        )
        if tracker.run_id:
            self.parent_run_id = tracker.run_id
            os.environ[PARENT_ENV] = tracker.run_id
            overrides = list(config.hydra.overrides.task)
            tracker.log_params({"sweeper": sweep.get("_target_", "basic"), "overrides": overrides,
                                **{f"space.{k}": v for k, v in (sweep.get("params") or {}).items()}})
            tracker.log_dict({"sweeper": sweep, "overrides": overrides}, "sweep/definition.json")
            tracker.finish(status=None)  # flush; the run stays open until the sweep ends

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        trials = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob(f"*/{TRIAL_FILE}"),
                                                            key=lambda p: _job_num(p.parent.name))]
        metric = config.get("eval", {}).get("select_metric", "value")
        mode = config.get("eval", {}).get("select_mode", "max")
        board = leaderboard(trials, mode)
        text = format_leaderboard(board, metric)
        print(f"\nsweep leaderboard ({len(trials)} trials, {metric}, {mode}):\n{text}\n", flush=True)
        (sweep_dir / "leaderboard.json").write_text(json.dumps(board, indent=1))
        (sweep_dir / "leaderboard.txt").write_text(text + "\n")
        if not getattr(self, "parent_run_id", None):
            return
        from workbench.tracking.mlflow import Tracker

        t = config.get("tracking", {})
        tracker = Tracker(t.get("tracking_uri"), t.get("experiment", "ocr-workbench"), run_id=self.parent_run_id)
        best = board[0] if board and board[0]["status"] == "ok" else None
        tracker.log_artifact(sweep_dir / "leaderboard.json", "sweep")
        tracker.log_artifact(sweep_dir / "leaderboard.txt", "sweep")
        failed = sum(t["status"] != "ok" for t in trials)
        tracker.log_metrics({"trials": len(trials), "failed_trials": failed,
                             **({f"best/{metric}": best["value"]} if best else {})})
        if best:
            tracker.set_tags({"wb.best_trial_run": best["run_id"] or "", "wb.best_overrides": " ".join(best["overrides"])})
        tracker.finish("FINISHED" if best else "FAILED")
        os.environ.pop(PARENT_ENV, None)


def _job_num(name: str) -> int:
    return int(name) if name.isdigit() else 1 << 30
