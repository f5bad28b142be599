"""wb's CPU-training conv layers: the dense "same" conv kernel (``workbench/kernels/dense_conv.cc`` through
``models.ops.Conv2D`` / ``same_conv2d``) and ``models.ops.Conv2DTranspose`` (its bias added as [C, 1, 1]): the same
function and gradients as Paddle's layers, and Paddle's layers wherever they do not apply."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from workbench import kernels
from workbench.models.ops import Conv2D


def _run(conv, x0, native: bool):
    kernels.configure(enabled=native)
    try:
        conv.clear_gradients()
        x = paddle.to_tensor(x0, stop_gradient=False)
        y = conv(x)
        (y * paddle.to_tensor(np.linspace(-1, 1, y.size, dtype=np.float32).reshape(y.shape))).sum().backward()
        grads = [x.grad.numpy(), conv.weight.grad.numpy()] + ([conv.bias.grad.numpy()] if conv.bias is not None else [])
        return [y.numpy(), *grads]
    finally:
        kernels.configure(enabled=True)


@pytest.mark.parametrize("shape,out_channels,kernel,bias", [
    ((2, 5, 9, 21), 7, 3, False),     # widths off the 16-column blocks, out channels off the 4-channel blocks
    ((2, 8, 11, 37), 6, 5, True),
    ((1, 16, 20, 48), 8, 3, False),   # whole blocks only
])
def test_same_as_paddle(native_kernels, shape, out_channels, kernel, bias):
    rng = np.random.default_rng(5)
    x0 = rng.normal(0, 1, shape).astype(np.float32)
    conv = Conv2D(shape[1], out_channels, kernel, padding=kernel // 2, bias_attr=None if bias else False)
    ours, ref = _run(conv, x0, True), _run(conv, x0, False)
    assert kernels.dense_conv2d_op() is not None
    for a, b, what in zip(ours, ref, ("output", "input grad", "weight grad", "bias grad")):
        assert np.abs(a - b).max() <= 2e-6 * max(np.abs(b).max(), 1.0), what


@pytest.mark.parametrize("kwargs", [{"stride": 2, "padding": 1}, {"padding": 0}, {"groups": 2, "padding": 1}])
def test_other_convs_keep_paddles_op(native_kernels, kwargs, monkeypatch):
    """Strided, unpadded or grouped convs (and 1x1, inference) are not the kernel's: Paddle's conv runs them."""
    called = []
    monkeypatch.setattr(kernels, "dense_conv2d_op", lambda: called.append(1) or None)
    conv = Conv2D(4, 4, 3, **kwargs)
    conv(paddle.to_tensor(np.ones((1, 4, 8, 8), np.float32), stop_gradient=False))
    with paddle.no_grad():
        Conv2D(4, 4, 3, padding=1)(paddle.ones([1, 4, 8, 8]))
    Conv2D(4, 4, 1)(paddle.to_tensor(np.ones((1, 4, 8, 8), np.float32), stop_gradient=False))
    assert called == []


def test_db_head_training_maps_with_the_kernel(native_kernels, monkeypatch):
    """The DB head's stacked training conv (both branches' 3x3 kernels at once) runs the kernel in CPU training:
    the same maps and gradients as with Paddle's conv."""
    from workbench.models.heads.db import DBHead

    real_op = kernels.dense_conv2d_op
    served = []
    monkeypatch.setattr(kernels, "dense_conv2d_op", lambda: served.append(1) or real_op())
    paddle.seed(0)
    head = DBHead(16)
    head.train()
    x0 = np.random.default_rng(6).normal(0, 1, (2, 16, 12, 20)).astype(np.float32)
    results = []
    for native in (True, False):
        kernels.configure(enabled=native)
        try:
            head.clear_gradients()
            x = paddle.to_tensor(x0, stop_gradient=False)
            maps = head(x)["maps"]
            (maps * paddle.linspace(-1, 1, maps.shape[-1])).sum().backward()
            results.append([maps.numpy(), x.grad.numpy(), head.binarize.conv1.weight.grad.numpy(),
                            head.thresh.conv1.weight.grad.numpy()])
        finally:
            kernels.configure(enabled=True)
        if native:
            assert served, "the kernel did not serve the stacked conv"
    for a, b, what in zip(*results, ("maps", "input grad", "binarize conv1 grad", "thresh conv1 grad")):
        assert np.abs(a - b).max() <= 1e-5 * max(np.abs(b).max(), 1.0), what


def test_transposed_conv_with_its_bias_added_per_channel():
    """ops.Conv2DTranspose in CPU training: the same output and gradients as nn.Conv2DTranspose (which inference
    and export keep: under no_grad it is Paddle's layer)."""
    from workbench.models.ops import Conv2DTranspose

    paddle.seed(2)
    ours = Conv2DTranspose(6, 5, 2, stride=2)
    theirs = paddle.nn.Conv2DTranspose(6, 5, 2, stride=2)
    theirs.set_state_dict(ours.state_dict())
    x0 = np.random.default_rng(7).normal(0, 1, (2, 6, 7, 9)).astype(np.float32)
    results = []
    for layer in (ours, theirs):
        x = paddle.to_tensor(x0, stop_gradient=False)
        y = layer(x)
        (y * paddle.linspace(-1, 1, y.shape[-1])).sum().backward()
        results.append([y.numpy(), x.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()])
    for a, b, what in zip(*results, ("output", "input grad", "weight grad", "bias grad")):
        assert np.abs(a - b).max() <= 1e-5 * max(np.abs(b).max(), 1.0), what
    with paddle.no_grad():
        np.testing.assert_array_equal(ours(paddle.to_tensor(x0)).numpy(), theirs(paddle.to_tensor(x0)).numpy())
