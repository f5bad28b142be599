"""Small numerical helpers shared by model families."""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

__all__ = ["add_channel_bias", "conv2d_channel_bias", "rec_feature_row", "spatial_mean", "upsample_nearest"]


def add_channel_bias(x: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """``x + bias`` per channel (``[N, C, H, W] + [C]``), broadcast as ``[C, 1, 1]``.

    Why not ``[1, C, 1, 1]`` (what ``F.conv2d(..., bias)`` and ``nn.Conv2D`` do): Paddle 3.3's CPU broadcast kernel
    takes 3-4x longer for it, forward and backward (a 16x128x12x350 map, 2 threads: 275 ms vs 82 ms for the add
    and its gradient; a same-shape add is 13 ms forward). Same values, same gradients."""
    return x + bias.reshape([-1, 1, 1])


def conv2d_channel_bias(x, weight, bias, stride=1, padding=0, groups=1) -> paddle.Tensor:
    """``F.conv2d`` with its bias added by :func:`add_channel_bias`: for training paths. Exported graphs keep
    ``nn.Conv2D`` (Paddle Inference fuses its bias into the conv)."""
    return add_channel_bias(F.conv2d(x, weight, None, stride, padding, groups=groups), bias)


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


def upsample_nearest(x: paddle.Tensor, factor: int) -> paddle.Tensor:
    """Nearest-neighbour upsampling by an integer ``factor`` (``[N, C, H, W] -> [N, C, fH, fW]``), the same values
    as ``F.interpolate(x, scale_factor=factor, mode="nearest")``, computed as expand + flatten.

    Why not ``interpolate``: its ``nearest_interp`` op carries a float scale list that Paddle 3.3's oneDNN executor
    cannot convert ("ConvertPirAttribute2RuntimeAttribute not support"), so a det graph holding it crashes
    Paddle Inference's oneDNN mode -- PaddleX's CPU default -- and had to run with plain CPU kernels. Without it
    the det graph runs under oneDNN, and the eager op is faster too (a 96x160x120 map: 18 ms vs 38 ms, 1 thread).
    """
    if factor == 1:
        return x
    y = x.unsqueeze(-1).unsqueeze(3).expand([-1, -1, -1, factor, -1, factor])  # [N, C, H, f, W, f]
    return y.flatten(4, 5).flatten(2, 3)
