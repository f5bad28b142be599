"""`wb data check`: check label files and images before training (see ``workbench/data/check/``).

    wb data check rec /my/train.txt --val /my/val.txt --dict ppocrv5_dict.txt
    wb data check det /my/det_train.txt
    wb data check textline_ori /my/rec_train.txt /my/upside_down.txt    # rec files and class lists
    wb data check recipe=rec_finetune [data.train=...] [model=...]    # the data and dictionary a recipe trains on
    wb data check --list-codes
    wb data crops sroie_det/label.txt --out data/receipt_lines     # det pages -> rec crops, as the pipeline cuts
    wb data crops sroie_det/label.txt --det runs/det --out data/receipt_lines_det   # cut from the boxes it detects
    wb data split sroie_det/label.txt sroie_rec/label.txt --val 0.25 --out data/receipts   # by document

Exit code: 0 = the data would train under the chosen policy; 1 = it would not; 2 = bad command line / unreadable
dictionary. The kinds are the registered tasks (``workbench.tasks.registry``); each brings its own options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if argv and argv[0] == "split":
        return split_files(argv[1:])
    if argv and argv[0] == "crops":
        return crop_files(argv[1:])
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv[0] != "check":
        from workbench.config.suggest import did_you_mean
        from workbench.errors import ConfigError

        raise ConfigError(f"unknown action {argv[0]!r}{did_you_mean(argv[0], ['check', 'split', 'crops'], 'actions')}; "
                          "e.g. wb data check rec FILE")
    rest = argv[1:]
    if any(a.startswith("recipe=") for a in rest):
        return check_recipe(rest)
    return check_files(rest)


def build_parser() -> argparse.ArgumentParser:
    from workbench.config.suggest import OneLineArgumentParser
    from workbench.tasks import registry

    p = OneLineArgumentParser(
        prog="wb data check",
        description="Check label files and their images before training. Exit code 0: the data would train under "
                    "the policy; 1: it would not; 2: bad arguments.")
    p.add_argument("kind", choices=registry.names(),
                   help=", ".join(f"{e.name}: {e.title} labels" for e in registry.TASKS.values()))
    p.add_argument("files", nargs="+", type=Path, help="training label file(s)")
    p.add_argument("--val", nargs="+", type=Path, default=[], action="extend", help="validation label file(s)")
    added = set()
    for entry in registry.TASKS.values():  # kinds that share a family (the orientation checks) share options
        add = getattr(entry.label_check.add_arguments, "__func__", entry.label_check.add_arguments)
        if add not in added:
            added.add(add)
            entry.label_check.add_arguments(p)
    p.add_argument("--root", type=Path, help="image paths are relative to this folder (default: each label "
                   "file's folder)")
    p.add_argument("--policy", choices=("strict", "skip"), default="strict",
                   help="the data policy training will use (default strict)")
    p.add_argument("--accept", action="append", default=[], metavar="CODE",
                   help="accept an acceptable error code as a warning (e.g. truncated_image)")
    p.add_argument("--out", type=Path, help="report folder (default outputs/data_check/<kind>-<time>)")
    p.add_argument("--write-clean", action="store_true",
                   help="write <label>.clean.txt next to each label file without the lines with errors")
    p.add_argument("--no-pictures", action="store_true", help="skip the montage and histograms")
    p.add_argument("--no-decode", action="store_true", help="read image headers only (faster, sees less)")
    p.add_argument("--workers", type=int, default=2, help="image reading threads (2)")
    p.add_argument("--examples", type=int, default=5, help="examples per finding code in the report (5)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal, for large sets)")
    return p


def check_files(argv: list[str]) -> int:
    """``wb data check <kind> FILE...``; returns the exit code."""
    from workbench.data.check import codes_table, run_check
    from workbench.data.findings import DataPolicy
    from workbench.errors import WorkbenchError
    from workbench.tasks import registry

    if "--list-codes" in argv:
        print(codes_table())
        return 0
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse exits on --help (0) and on bad arguments (2)
        return int(e.code or 0)
    try:
        check = registry.get(args.kind).label_check.from_args(args)
        report = run_check(check, args.files, args.val, out_dir=args.out, write_clean=args.write_clean,
                           pictures=not args.no_pictures, policy=DataPolicy(args.policy, frozenset(args.accept)),
                           root=args.root, decode_images=not args.no_decode, workers=args.workers,
                           progress=args.progress, examples=args.examples)
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    return report.exit_code


def check_recipe(overrides: list[str]) -> int:
    """The same check `wb train` runs first, on the composed recipe's data (demo set included) and dictionary."""
    from workbench.api import check_data

    report = check_data(overrides)
    print(report.summary())
    return report.exit_code


def split_files(argv: list[str]) -> int:
    """``wb data split FILE... --out DIR``: train/val label files split by source document (``data/split.py``)."""
    from workbench.config.suggest import OneLineArgumentParser
    from workbench.data.split import split_label_files

    p = OneLineArgumentParser(
        prog="wb data split",
        description="Split label files (rec or det) into <out>/<name>_train.txt and <name>_val.txt by source "
                    "document (403_047.png and 403.jpg are document 403), the same documents held out in every "
                    "file. The first file gets exactly round(val x its documents) held out: put the smallest first.")
    p.add_argument("files", nargs="+", type=Path, help="label files to split together")
    p.add_argument("--out", type=Path, required=True, help="folder for the split label files")
    p.add_argument("--val", type=float, default=0.2, help="share of documents held out (0.2)")
    p.add_argument("--seed", type=int, default=0, help="which documents are held out (0)")
    p.add_argument("--group-pattern", help="regular expression on the image file name whose first group (or match) "
                   "is the document id (default: the stem without a trailing _<digits>)")
    p.add_argument("--root", type=Path, help="image paths are relative to this folder (default: the label file's)")
    args = p.parse_args(argv)  # bad arguments / errors: one line, exit 2, printed by `wb`'s entry point
    results = split_label_files(args.files, args.out, val_fraction=args.val, seed=args.seed,
                                group_pattern=args.group_pattern, root=args.root)
    for r in results:
        print(r.summary())
        for line, why in r.skipped_lines[:5]:
            print(f"  {r.source}:{line}: not split ({why})")
    return 0


def crop_files(argv: list[str]) -> int:
    """``wb data crops DET_LABELS... --out DIR``: rec training crops cut from det-labelled pages (``data/crops.py``)."""
    from workbench.config.suggest import OneLineArgumentParser

    p = OneLineArgumentParser(
        prog="wb data crops",
        description="Cut every transcribed care box of det label files the way PaddleX's OCR pipeline crops a "
                    "detected box, and write them as a rec label file <out>/label.txt (+ <out>/crops/). A crop "
                    "keeps its page's name (<page>_<box>.png), so splits by document keep pages and crops together.")
    p.add_argument("files", nargs="+", type=Path, help="det label files")
    p.add_argument("--out", type=Path, required=True, help="folder for label.txt and crops/")
    p.add_argument("--root", type=Path, help="image paths are relative to this folder (default: the label file's)")
    p.add_argument("--det", metavar="MODEL",
                   help="cut each labelled line from the box this det model finds for it (IoU >= --min-iou), as the "
                        "deployed pipeline will crop it; any reference `wb analyze` takes (run, checkpoint, "
                        ".pdparams, stock)")
    p.add_argument("--min-iou", type=float, default=0.5, help="--det: the least IoU of a detected box with its "
                   "labelled line (0.5)")
    args = p.parse_args(argv)  # bad arguments / errors: one line, exit 2, printed by `wb`'s entry point
    if not 0.0 < args.min_iou <= 1.0:
        p.error(f"--min-iou {args.min_iou}: choose a value in (0, 1]")
    from workbench.reports.progress import Progress

    from workbench.data.crops import crops_from_det_pages, read_det_pages

    pages = read_det_pages(args.files, root=args.root)  # label errors first, before any detector loads
    detector = None
    if args.det:
        from workbench.analysis.pipeline import load_detector

        detector = load_detector(args.det)
    with Progress(len(pages), "detect + crop", "page", enabled=detector is not None) as bar:  # minutes with --det
        result = crops_from_det_pages(pages, args.out, detector=detector, min_iou=args.min_iou,
                                      progress=bar.update)
    print(result.summary())
    return 0
