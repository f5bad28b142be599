"""`wb compare A B`: two evaluations of one module, metrics side by side and what changed per sample.

    wb compare <run id | run dir | report dir> <run id | run dir | report dir> [--metric acc] [--out DIR]

A is the reference (e.g. the stock model's baseline evaluation), B the candidate (e.g. the fine-tuned one).
Writes ``compare.json`` and a self-contained ``compare.html`` to ``--out`` (default ``reports/compare_<A>_<B>``)
and warns when B is worse than A on the selected metric.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def parse_args(argv: list[str]) -> argparse.Namespace:
    from workbench.config.suggest import OneLineArgumentParser

    p = OneLineArgumentParser(prog="wb compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="reference: MLflow run id, run directory or report directory")
    p.add_argument("b", help="candidate: MLflow run id, run directory or report directory")
    p.add_argument("--metric", help="metric that decides better / worse (default: the runs' eval.select_metric, "
                                    "else acc for rec, hmean for det)")
    p.add_argument("--out", type=Path, help="output folder (default: reports/compare_<A>_<B>)")
    p.add_argument("--tracking-uri",
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    p.add_argument("--max-cases", type=int, default=100, help="pictured samples / images per kind (default 100)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit with status 1 when B is worse than A on the metric (for CI)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    from workbench.analysis.compare import compare, default_out_dir, format_text, load_side, write_outputs

    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per small file is noise here
    with tempfile.TemporaryDirectory(prefix="wb-compare-") as tmp:
        a = load_side(args.a, args.tracking_uri, Path(tmp) / "a")
        b = load_side(args.b, args.tracking_uri, Path(tmp) / "b")
        result = compare(a, b, args.metric)
        out_dir = args.out or default_out_dir(a, b)
        files = write_outputs(result, out_dir, args.max_cases)
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    print(format_text(result, colour=colour))
    print("\nwritten: " + ", ".join(str(f) for f in files))
    if args.fail_on_regression and result.regressed_on_metric:
        return 1
    return 0
