"""`wb`: the command line. Each subcommand lives in ``workbench/commands/<name>.py`` and is imported only when used
(importing Paddle / MLflow takes seconds)."""

from __future__ import annotations

import importlib
import logging
import sys

COMMANDS = {
    "train": ("workbench.commands.train", "fine-tune a module: wb train recipe=rec_finetune [key=value ...] [-m]"),
    "eval": ("workbench.commands.evaluate", "evaluate weights: wb eval recipe=det_finetune checkpoint=<run|path>"),
    "export": ("workbench.commands.export", "export to PaddleX + verify: wb export det=<run|ckpt> rec=<run|ckpt> out=DIR"),
    "analyze": ("workbench.commands.analyze", "end-to-end error attribution: wb analyze pipeline data=... det=... rec=..."),
    "compare": ("workbench.commands.compare", "compare two runs or reports: wb compare <run A> <run B>"),
    "data": ("workbench.commands.data", "check / split data: wb data check rec|det FILE... [--dict D] | wb data split FILE... --out DIR"),
    "weights": ("workbench.commands.weights", "fetch / import weights: wb weights fetch|import ..."),
    "tracking": ("workbench.commands.tracking", "send what a run kept while MLflow was away: wb tracking replay RUN_DIR"),
}


def _ignore_file_size_signal() -> None:
    """A write past the file-size limit (ulimit -f) then fails with an error the workbench reports (which file,
    how many bytes), instead of the signal killing the process without a word."""
    import signal

    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _quiet_paddle_import() -> None:
    """``import paddle`` warns 'No ccache found' (its C++ extension builder's concern) in every process on a machine
    without ccache: two lines of noise atop every command's output. wb builds its one extension once per machine
    (``workbench.kernels``) and caches it, so the CLI, which owns the process, drops exactly that warning."""
    import warnings

    warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)


def usage() -> str:
    lines = ["usage: wb <command> [args]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


_HELP_FLAGS = ("-h", "--help")


def command_help(name: str) -> str | None:
    """``wb train --help`` / ``wb eval --help`` without a recipe: the command's usage (its module docstring) and the
    recipes to choose from. Hydra's own help composes the config first, which needs a recipe (with one given,
    Hydra's help is shown: every key of the composed config)."""
    from workbench.config.compose import HYDRA_COMMANDS, group_options

    if name not in HYDRA_COMMANDS:
        return None
    doc = (importlib.import_module(COMMANDS[name][0]).__doc__ or "").strip()
    recipes = " | ".join(group_options("recipe"))
    return (f"{doc}\n\nrecipes: {recipes}\n"
            f"Every key of a recipe, with its value: wb {name} recipe=<recipe> --cfg job")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in (*_HELP_FLAGS, "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        from workbench.config.suggest import did_you_mean

        print(f"wb: unknown command {name!r}{did_you_mean(name, COMMANDS, 'commands')} (wb --help for usage)",
              file=sys.stderr)
        return 2
    from workbench.errors import WorkbenchError

    if any(a in _HELP_FLAGS for a in rest) and not any(a.startswith("recipe=") for a in rest):
        text = command_help(name)
        if text is not None:
            print(text)
            return 0
    _ignore_file_size_signal()
    _quiet_paddle_import()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S")
    try:
        from workbench.config.compose import check_command_line

        check_command_line(name, rest)  # a mistyped recipe / option / key: one line, before Hydra starts
        module = importlib.import_module(COMMANDS[name][0])
        code = module.main(rest)
    except WorkbenchError as exc:
        print(f"wb {name}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # argparse / Hydra exits: the same status, returned (callers of main() get it too)
        if isinstance(exc.code, int) or exc.code is None:
            return int(exc.code or 0)
        print(exc.code, file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
