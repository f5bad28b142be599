"""`wb analyze pipeline`: run the whole OCR pipeline on labeled images and attribute every error to a module.

    wb analyze pipeline data=/my/det_labels.txt det=<run|path|export dir|stock> rec=<...> out=reports/receipts
        [case_insensitive=true] [ignore_space=true] [limit=N] [score_thresh=0.5] ...

Every key of ``workbench.analysis.run.AnalyzeConfig`` can be given as ``key=value``; see that module for what is
analysed and written. This module parses and prints.
"""

from __future__ import annotations

from workbench.errors import ConfigError


def main(argv: list[str]) -> int:
    from workbench.analysis import run

    if not argv or argv[0] in ("-h", "--help", "help"):
        print(run.__doc__)
        return 0
    what, rest = argv[0], argv[1:]
    if what != "pipeline":
        raise ConfigError(f"wb analyze {what}: unknown analysis; available: pipeline")
    if rest and rest[0] in ("-h", "--help"):
        print(run.__doc__)
        return 0
    result = run.run_analysis(run.parse_args(rest))
    print(run.format_verdict(result))
    return 0
