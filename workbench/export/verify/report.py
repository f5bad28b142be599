"""The verification report: :class:`Tolerances` (what "behaves the same" means), :class:`Check` (one
comparison) and :class:`Report` (all of them, written as ``verification.json`` / ``.md``).

Part of ``workbench.export.verify`` (see its docstring)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from workbench.errors import ExportError

log = logging.getLogger("workbench.export")


REPORT_JSON = "verification.json"
REPORT_MD = "verification.md"

@dataclass
class Tolerances:
    """What "behaves the same" means. Float32 graphs on CPU: the exported graph is fused (rep-layers, BN) and
    run by Paddle Inference with its own kernels, so outputs differ by float rounding, not more."""

    input_atol: float = 1e-5  # preprocessing: both sides compute the same float32 arithmetic
    det_map_atol: float = 1e-3  # det probability map, values in [0, 1]
    rec_prob_atol: float = 1e-4  # rec CTC probabilities, values in [0, 1]
    # A model can be ill-conditioned in float32 (a barely trained one often is): then the bound is this many times
    # the workbench model's own float32 noise on that input (its error against a float64 run of it, or its response
    # to a one-ulp perturbation of the input or of its weights, whichever is largest:
    # workbench.export.verify.ours.Workbench._run).
    noise_factor: float = 4.0
    score_atol: float = 1e-3  # box scores (mean of the map) and text scores (mean of max probabilities)
    box_px: int = 1  # box vertices, in source-image pixels


@dataclass
class Check:
    stage: str  # files | module | pipeline | cli
    item: str  # probe image / crop / file
    what: str
    value: Any
    limit: Any
    passed: bool
    detail: str = ""


@dataclass
class Report:
    tolerances: Tolerances
    checks: list[Check] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)  # pipeline results per probe image (for recheck)

    def add(self, stage, item, what, value, limit, passed, detail="") -> Check:
        c = Check(stage, str(item), what, _jsonable(value), _jsonable(limit), bool(passed), detail)
        self.checks.append(c)
        if not c.passed:
            log.warning("verification FAILED: [%s] %s: %s = %s (limit %s) %s", stage, item, what, c.value, limit,
                        detail)
        return c

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def max_values(self) -> dict[str, float]:
        """The largest value of every numeric quantity (the figures to quote)."""
        out: dict[str, float] = {}
        for c in self.checks:
            if isinstance(c.value, (int, float)) and not isinstance(c.value, bool):
                key = f"{c.stage}: {c.what}"
                out[key] = max(out.get(key, float("-inf")), float(c.value))
        return out

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "tolerances": asdict(self.tolerances),
            "summary": {"checks": len(self.checks), "failed": len(self.failures()), "max": self.max_values()},
            "facts": self.facts,
            "failures": [asdict(c) for c in self.failures()],
            "checks": [asdict(c) for c in self.checks],
            "expected": self.expected,
        }

    def to_markdown(self) -> str:
        lines = [f"# Export verification: {'PASSED' if self.passed else 'FAILED'}", ""]
        lines += ["Tolerances: " + ", ".join(f"{k}={v}" for k, v in asdict(self.tolerances).items()), ""]
        if self.failures():
            lines += ["## Failures", "", "| stage | item | what | value | limit | detail |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {c.stage} | {c.item} | {c.what} | {_short(c.value)} | {_short(c.limit)} | {c.detail} |"
                      for c in self.failures()]
            lines.append("")
        lines += ["## Largest differences", "", "| quantity | max |", "|---|---|"]
        lines += [f"| {k} | {v:.3g} |" for k, v in sorted(self.max_values().items())]
        lines += ["", "## Every comparison", "", "| stage | item | what | value | limit | ok | detail |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c.stage} | {c.item} | {c.what} | {_short(c.value)} | {_short(c.limit)} | "
                  f"{'yes' if c.passed else '**NO**'} | {c.detail} |" for c in self.checks]
        if self.facts:
            lines += ["", "## Facts", "", "```json", json.dumps(self.facts, indent=1, default=str), "```"]
        return "\n".join(lines) + "\n"

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        folder = Path(folder)
        j, m = folder / REPORT_JSON, folder / REPORT_MD
        j.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False, default=str), encoding="utf-8")
        m.write_text(self.to_markdown(), encoding="utf-8")
        return j, m

    def raise_if_failed(self, folder: Optional[str | Path] = None) -> None:
        if self.passed:
            return
        fails = self.failures()
        shown = "\n".join(f"  [{c.stage}] {c.item}: {c.what} = {_short(c.value)} (limit {_short(c.limit)}) {c.detail}"
                          for c in fails[:15])
        more = f"\n  ... and {len(fails) - 15} more" if len(fails) > 15 else ""
        where = f"\nfull report: {Path(folder) / REPORT_MD}" if folder is not None else ""
        if not self.checks:
            shown = "  nothing was compared"
        raise ExportError(f"export verification failed ({len(fails)} of {len(self.checks)} checks):\n"
                          f"{shown}{more}{where}")


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _short(v, n: int = 60) -> str:
    s = f"{v:.3g}" if isinstance(v, float) else str(v)
    return s if len(s) <= n else s[: n - 1] + "…"
