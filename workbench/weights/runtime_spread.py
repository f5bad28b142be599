"""How far the source runtime disagrees with itself: the floor under any import-parity tolerance.

onnxruntime's optimised graph (fused kernels, the one a deployment runs) and its unoptimised graph compute the same
model in float32 with different summation orders. On most inputs they agree to ~1e-5; on some (the PP-OCRv6 tiny
detector on a receipt scan: a long chain of near-cancelling layers) they differ by 1e-3 in probability. An import
cannot be expected to match closer than the runtime matches itself, so parity checks bound the difference by
``max(tolerance, factor x spread)`` per input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = ["onnxruntime_spread"]


def onnxruntime_spread(path: str | Path, batches: Iterable[np.ndarray]) -> list[float]:
    """Max |optimised - unoptimised| onnxruntime output, per batch."""
    import onnxruntime as ort

    def session(level):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    fast = session(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    plain = session(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    name = fast.get_inputs()[0].name
    out = []
    for x in batches:
        x = np.ascontiguousarray(x, dtype=np.float32)
        out.append(float(np.abs(fast.run(None, {name: x})[0] - plain.run(None, {name: x})[0]).max()))
    return out
