"""Small numerical helpers shared by model families."""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

__all__ = ["rec_feature_row", "spatial_mean"]


def rec_feature_row(x: paddle.Tensor, *, training: bool, train_time_steps: int | None,
                    eval_pool=(3, 2)) -> paddle.Tensor:
    """The last step of every rec backbone: the feature map ``[N, C, H, W']`` as one row of time steps.

    Upstream training pools to a fixed ``train_time_steps`` (40: the same as inference only at 48x320); inference
    pools a fixed window (3x2 for 48-pixel lines: ``T = W / 8`` follows the width). ``train_time_steps=None``
    trains with inference's pooling, so keep-ratio crops get as many steps in training as when read."""
    if training and train_time_steps:
        return F.adaptive_avg_pool2d(x, [1, train_time_steps])
    return F.avg_pool2d(x, list(eval_pool), list(eval_pool))


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
