"""`wb data check`: check label files and images before training (see ``workbench/data/check.py``).

    wb data check rec /my/train.txt --val /my/val.txt --dict ppocrv5_dict.txt
    wb data check det /my/det_train.txt
    wb data check recipe=rec_finetune [data.train=...] [model=...]    # the data and dictionary a recipe trains on
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "check":
        print(__doc__, file=sys.stderr)
        return 2
    rest = argv[1:]
    if any(a.startswith("recipe=") for a in rest):
        return check_recipe(rest)
    from workbench.data.check import main as check_main

    return check_main(rest)


def check_recipe(overrides: list[str]) -> int:
    """The same check `wb train` runs first, on the composed recipe's data (demo set included) and dictionary."""
    from hydra import compose, initialize_config_dir

    from workbench.config.compose import recipes_dir, register_schema, to_typed
    from workbench.data.check import run_check
    from workbench.tasks import build_task

    register_schema()
    with initialize_config_dir(config_dir=str(recipes_dir()), version_base="1.3"):
        cfg = to_typed(compose(config_name="train", overrides=overrides))
    task = build_task(cfg)
    report = run_check(cfg.task, [p for p, _ in task.files.train], [p for p, _ in task.files.val],
                       **task.check_options())
    print(report.summary())
    return report.exit_code
