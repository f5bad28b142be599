"""`wb data check`: check label files and images before training (see ``workbench/data/check.py``).

    wb data check rec /my/train.txt --val /my/val.txt --dict ppocrv5_dict.txt
    wb data check det /my/det_train.txt
    wb data check recipe=rec_finetune [data.train=...] [model=...]    # the data and dictionary a recipe trains on
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] != "check":
        from workbench.config.suggest import did_you_mean
        from workbench.errors import ConfigError

        raise ConfigError(f"unknown action {argv[0]!r}{did_you_mean(argv[0], ['check'], 'actions')}; "
                          "e.g. wb data check rec FILE")
    rest = argv[1:]
    if any(a.startswith("recipe=") for a in rest):
        return check_recipe(rest)
    from workbench.data.check import main as check_main

    return check_main(rest)


def check_recipe(overrides: list[str]) -> int:
    """The same check `wb train` runs first, on the composed recipe's data (demo set included) and dictionary."""
    from workbench.config.compose import check_overrides, to_typed
    from workbench.data.check import run_check
    from workbench.tasks import build_task

    cfg = to_typed(check_overrides(overrides, command="data check"))
    task = build_task(cfg)
    report = run_check(cfg.task, [p for p, _ in task.files.train], [p for p, _ in task.files.val],
                       **task.check_options())
    print(report.summary())
    return report.exit_code
