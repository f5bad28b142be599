"""Progress with an ETA for long loops (evaluation, analysis, export verification), like training's bar.

On a terminal: a tqdm bar (rate and ETA). Elsewhere (CI, log files, notebooks' captured output): a log line about
every 10 % with done/total, the rate and the ETA, so a minutes-long `wb eval` or `wb analyze` is never silent.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Optional


class Progress:
    """``with Progress(total, "eval", "crop", log) as p: ... p.update(n)``. ``enabled=False``: nothing at all."""

    def __init__(self, total: int, desc: str, unit: str = "it", log: Optional[logging.Logger] = None, *,
                 enabled: bool = True, tty: Optional[bool] = None):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.log = log or logging.getLogger("workbench")
        self.enabled = enabled and self.total > 0
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.done = 0
        self._bar = None
        self._t0 = time.perf_counter()
        self._next_log = max(self.total // 10, 1)

    def __enter__(self) -> "Progress":
        if self.enabled and self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, dynamic_ncols=True, leave=False)
        return self

    def update(self, n: int = 1) -> None:
        if not self.enabled:
            return
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.done >= self._next_log or self.done >= self.total:
            self._next_log = self.done + max(self.total // 10, 1)
            self.log.info("%s", self.line())

    def line(self) -> str:
        elapsed = time.perf_counter() - self._t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        return (f"{self.desc}: {self.done}/{self.total} {self.unit}, {rate:.2f} {self.unit}/s, "
                f"ETA {_duration(eta)}")

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
