"""The guardrail against fine-tuning making things worse: a training run compared with its baseline run.

``tracking.baseline_run=<run id | run dir>`` (e.g. a ``wb eval`` of the stock weights) makes ``wb train`` put this
run's best evaluation next to the baseline's, as metrics (``baseline/*``, ``vs_baseline/*``), a printed table and
the compare report (fixed / regressed samples) in the run (``compare_baseline/``). ``workbench.api.training``
hands :class:`BaselineComparison` to the trainer as an after-training hook; the trainer knows nothing about it.
"""

from __future__ import annotations

import logging
from typing import Optional

log = logging.getLogger("workbench.train")


class BaselineComparison:
    def __init__(self, ref: str, tracking_uri: Optional[str], select_metric: str):
        self.ref, self.tracking_uri, self.select_metric = ref, tracking_uri, select_metric

    def __call__(self, run) -> None:
        """``run``: :class:`workbench.engine.trainer.FinishedTraining`. A comparison that cannot be made is a
        warning: it must not fail a finished training."""
        from workbench.analysis.compare import compare, format_text, load_side, write_outputs

        try:
            base = load_side(self.ref, self.tracking_uri, workdir=run.run_dir / ".baseline")
            mine = load_side(str(run.run_dir), self.tracking_uri)
            c = compare(base, mine, self.select_metric)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning("could not compare with baseline run %s: %s", self.ref, exc)
            return
        deltas = {}
        for k, v in run.best.metrics.items():
            if k in base.metrics:
                deltas[f"baseline/{k}"] = base.metrics[k]
                deltas[f"vs_baseline/{k}"] = v - base.metrics[k]
        run.tracker.log_metrics(deltas, step=run.global_step)
        run.tracker.set_tags({"wb.baseline_run": self.ref})
        for f in write_outputs(c, run.run_dir / "compare_baseline"):
            run.tracker.log_artifact(f, "compare_baseline")
        log.info("compared with baseline %s:\n%s", self.ref, format_text(c))
