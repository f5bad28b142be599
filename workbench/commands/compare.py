"""`wb compare A B`: two evaluations of one module, metrics side by side and what changed per sample.

    wb compare <run id | run dir | report dir> <run id | run dir | report dir> [--metric acc] [--out DIR]
    wb compare models:/receipts-ocr/1 models:/receipts-ocr@candidate [--task rec]    # two registered versions

A is the reference (e.g. the stock model's baseline evaluation), B the candidate (e.g. the fine-tuned one).
Writes ``compare.json`` and a self-contained ``compare.html`` to ``--out`` (default ``reports/compare_<A>_<B>``)
and warns when B is worse than A on the selected metric. The work is ``workbench.analysis.compare.run_compare``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def parse_args(argv: list[str]) -> argparse.Namespace:
    from workbench.config.suggest import OneLineArgumentParser

    p = OneLineArgumentParser(prog="wb compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="reference: MLflow run id, run directory, report directory or models:/<name>/<version>")
    p.add_argument("b", help="candidate: MLflow run id, run directory, report directory or models:/<name>/<version>")
    p.add_argument("--task", help="for registered versions: the module to compare (det / rec; default: the one "
                                  "both fine-tuned)")
    p.add_argument("--metric", help="metric that decides better / worse (default: the runs' eval.select_metric, "
                                    "else the task's: acc for rec, hmean for det)")
    p.add_argument("--out", type=Path, help="output folder (default: reports/compare_<A>_<B>)")
    p.add_argument("--tracking-uri",
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    p.add_argument("--max-cases", type=int, default=100, help="pictured samples / images per kind (default 100)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit with status 1 when B is worse than A on the metric (for CI)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    from workbench.analysis.compare import format_text, run_compare

    args = parse_args(argv)
    result = run_compare(args.a, args.b, metric=args.metric, out_dir=args.out, tracking_uri=args.tracking_uri,
                         max_cases=args.max_cases, task=args.task)
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    print(format_text(result, colour=colour))
    print("\nwritten: " + ", ".join(str(f) for f in result.files))
    if args.fail_on_regression and result.regressed_on_metric:
        return 1
    return 0
