"""Shared bits of the training benchmarks: where ../shared is, memory figures, printing."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WB_SHARED_DIR", ROOT.parent / "shared"))
sys.path.insert(0, str(ROOT))  # run from a source checkout without installing


def peak_rss_gb() -> tuple[float, float]:
    """Peak resident memory of this process and of its (finished or running) children, in GB."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kb / 1e6, child_kb / 1e6


def report(title: str, lines: dict) -> None:
    print(f"\n== {title}")
    for k, v in lines.items():
        print(f"  {k:<34} {v}")
