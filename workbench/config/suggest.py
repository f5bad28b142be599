""""Did you mean ...?": the closest valid names for a mistyped recipe, config group option, key or flag, and an
argparse parser whose errors are that one line (exit 2) instead of a usage block."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from typing import Iterable


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``choices`` nearest to ``word`` (by difflib's ratio; also the choices ``word`` is a prefix
    of or that share its last dotted part, e.g. ``optim.lrr`` -> ``optim.lr``)."""
    choices = sorted(set(choices))
    near = difflib.get_close_matches(word, choices, n=n, cutoff=0.6)
    if not near:
        last = word.rsplit(".", 1)[-1]
        near = [c for c in choices if c.startswith(word) or c.rsplit(".", 1)[-1] == last][:n]
    return near


def did_you_mean(word: str, choices: Iterable[str], what: str = "") -> str:
    """``"; did you mean x or y?"`` (or the list of choices when none is close); ``what`` names the choices."""
    choices = sorted(set(choices))
    near = closest(word, choices)
    if near:
        return "; did you mean " + " or ".join(near) + "?"
    if choices and len(choices) <= 25:
        return f"; {what or 'choices'}: {', '.join(choices)}"
    return ""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the closest valid option or choice, exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        hint = ""
        m = re.match(r"unrecognized arguments: (.*)", message)
        if m:
            flags = _option_strings(self)
            first = next((w for w in m.group(1).split() if w.startswith("-")), None)
            if first is not None:
                hint = did_you_mean(first.split("=")[0], flags, "options")
        m = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            options = re.findall(r"'([^']*)'", m.group(3))
            near = closest(m.group(2), options)
            message = f"argument {m.group(1)}: invalid choice {m.group(2)!r}"
            hint = ("; did you mean " + " or ".join(near) + "?") if near else f"; choose from {', '.join(options)}"
        sys.stderr.write(f"{self.prog}: error: {message}{hint} (--help for usage)\n")
        raise SystemExit(2)


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option of ``parser`` and of its sub-commands (argparse reports their unknown options at the top)."""
    out = []
    for action in parser._actions:
        out += [o for o in action.option_strings if o not in ("-h", "--help")]
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                out += _option_strings(sub)
    return out
