"""`wb eval`: evaluate weights on a labeled set, write the per-sample report, log an MLflow run.

    wb eval recipe=rec_finetune checkpoint=<run id | run dir | checkpoint dir | .pdparams | official name> data.val=...
    wb eval recipe=det_finetune checkpoint=... data.val=... eval.det.resize_mode=upstream

An evaluation of stock weights is a *baseline run* (tag ``wb.kind=eval``); fine-tuning runs name it with
``tracking.baseline_run=<run id>`` and get the comparison in their own run and report. The work is
``workbench.api.evaluation``; this module composes the recipe (Hydra) and prints.
"""

from __future__ import annotations

import sys


def _with_default_run_dir(argv: list[str]) -> list[str]:
    """``argv`` with ``hydra.run.dir`` set to ``runs/<task>/eval_<time>`` unless given, placed among the user's
    overrides: Hydra's argparse takes overrides as one run of words, so one appended after a flag (``--cfg job``,
    ``--help``) or put before ``-m`` is refused."""
    if any(a.startswith("hydra.run.dir=") for a in argv):
        return list(argv)
    run_dir = "hydra.run.dir=runs/${task}/eval_${now:%Y-%m-%d_%H-%M-%S}"
    first = next((i for i, a in enumerate(argv) if "=" in a and not a.startswith("-")), len(argv))
    return [*argv[:first], run_dir, *argv[first:]]


def main(argv: list[str]) -> int:
    import hydra

    from workbench.config.compose import recipes_dir, register_schema

    register_schema()
    sys.argv = ["wb-eval", *_with_default_run_dir(argv)]

    @hydra.main(config_path=str(recipes_dir()), config_name="train", version_base="1.3")
    def _app(cfg):
        from workbench.api.evaluation import run_eval
        from workbench.commands import user_errors_exit

        with user_errors_exit("eval"):
            out = run_eval(cfg)
        print(f"\n{out['model']} on {out['data']}:")
        for k, v in sorted(out["metrics"].items()):
            print(f"  {k:<28} {v:.4f}")
        if out["run_id"]:
            print(f"  MLflow run: {out['run_id']}")

    _app()
    return 0
