"""`wb tracking replay <run dir> [--uri URI]`: send to MLflow what a run kept in its tracking journal while the
server was away (``workbench.tracking.mlflow.replay``). Safe to run twice: nothing is recorded twice."""

from __future__ import annotations

import argparse


def main(argv: list[str]) -> int:
    from workbench.config.suggest import OneLineArgumentParser
    from workbench.tracking.mlflow import replay

    parser = OneLineArgumentParser(prog="wb tracking", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    rp = sub.add_parser("replay", help="send a run's tracking journal to MLflow")
    rp.add_argument("run_dir", help="the run directory (holds tracking_journal.jsonl)")
    rp.add_argument("--uri", help="send to this tracking URI instead of the one the run used")
    args = parser.parse_args(argv)
    out = replay(args.run_dir, args.uri)
    print(f"{args.run_dir}: {out['operations']} operations ({out['metric_rows']} metric rows) sent to {out['uri']}, "
          f"run {out['run_id']}")
    return 0
