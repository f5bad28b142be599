"""Where the workbench keeps files between runs (one decision, read by every package)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$WB_CACHE_DIR``, else ``~/.cache/ocr-workbench``: downloaded weights and dictionaries, cached baselines,
    wb's compiled CPU kernels."""
    d = Path(os.environ.get("WB_CACHE_DIR") or Path.home() / ".cache" / "ocr-workbench")
    d.mkdir(parents=True, exist_ok=True)
    return d
