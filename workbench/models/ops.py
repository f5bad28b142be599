"""Small numerical helpers shared by model families."""

from __future__ import annotations

import paddle

__all__ = ["spatial_mean"]


def spatial_mean(x: paddle.Tensor) -> paddle.Tensor:
    """Mean over H and W (``[N, C, H, W] -> [N, C, 1, 1]``), averaging rows first and then the row means.

    The same function as ``x.mean([2, 3])`` / ``adaptive_avg_pool2d(x, 1)`` with far less rounding: Paddle's CPU
    kernels accumulate a float32 mean over the whole map in one running sum, which over a 136x240 stride-4 map
    was off by 3.7e-4 relative to float64 (onnxruntime's ReduceMean: 2e-5); two short sums are off by 2e-6. A
    squeeze-excite gate built on that mean carries the error into everything after it: PPLCNetV4's SE layers
    (``x.mean`` upstream, ``ReduceMean`` in ONNX) use this. Layers written with ``adaptive_avg_pool2d`` upstream
    keep it: onnxruntime's ``GlobalAveragePool`` rounds exactly as Paddle's pooling does, so that is the function
    the stock graphs compute.
    """
    return x.mean(axis=3, keepdim=True).mean(axis=2, keepdim=True)
