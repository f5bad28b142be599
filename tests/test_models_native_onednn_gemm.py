"""wb's oneDNN GEMM kernels: the pointwise (1x1) convolution (``kernels/pointwise_conv.cc``) and the linear layer
with its bias in the GEMM (``kernels/linear.cc``): the same functions and gradients as Paddle's ops up to float32
rounding, deterministic, used by the training path only where switched on, and on by default only off Intel CPUs
(where MKL is slow)."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ci_strict import unavailable
from workbench import kernels
from workbench.models.ops import conv2d_channel_bias, linear_bias_in_gemm, pointwise_conv2d


@pytest.fixture()
def onednn_kernels(native_kernels):
    if kernels.pointwise_conv2d_op() is None or kernels.linear_op() is None:
        unavailable("wb's oneDNN GEMM kernels need the oneDNN library Paddle's CPU wheel bundles "
                    "(paddle/libs/libdnnl.so.3)")
    return native_kernels


def _step(x0, w0, grad, conv):
    x, w = x0.clone(), w0.clone()
    x.stop_gradient = w.stop_gradient = False
    y = conv(x, w)
    (y * grad).sum().backward()
    return [t.numpy() for t in (y, x.grad, w.grad)]


@pytest.mark.parametrize("shape,out_channels", [((16, 96, 3, 40), 192), ((5, 32, 12, 80), 64), ((1, 8, 2, 3), 4),
                                                ((3, 24, 1, 7), 48)])
def test_pointwise_conv_matches_paddle_within_its_own_float32_error(onednn_kernels, shape, out_channels):
    """Reference: Paddle's conv in float64. Ours must be as close to it as Paddle's float32 conv is, plus a few ulps
    of the largest value (both round each product sum differently)."""
    kernels.configure(threads=2)
    paddle.seed(0)
    x = paddle.randn(shape)
    w = paddle.randn([out_channels, shape[1], 1, 1]) * 0.1
    grad = paddle.randn([shape[0], out_channels, *shape[2:]])
    ours = _step(x, w, grad, pointwise_conv2d)
    theirs = _step(x, w, grad, lambda a, b: F.conv2d(a, b))
    exact = _step(x.astype("float64"), w.astype("float64"), grad.astype("float64"), lambda a, b: F.conv2d(a, b))
    for a, b, e, what in zip(ours, theirs, exact, ("output", "input gradient", "weight gradient")):
        scale = np.abs(e).max()
        assert np.abs(a - e).max() <= np.abs(b - e).max() + 4e-7 * scale, what


def test_pointwise_conv_is_deterministic_and_threads_only_split_images(onednn_kernels):
    """Repeated calls give the same bits; the output and input gradient do not depend on the thread count (one GEMM
    per image), the weight gradient only in its summation order."""
    paddle.seed(1)
    x, w = paddle.randn([7, 40, 5, 9]), paddle.randn([56, 40, 1, 1])
    grad = paddle.randn([7, 56, 5, 9])
    kernels.configure(threads=2)
    first, again = _step(x, w, grad, pointwise_conv2d), _step(x, w, grad, pointwise_conv2d)
    for a, b in zip(first, again):
        assert np.array_equal(a, b)
    kernels.configure(threads=1)
    one = _step(x, w, grad, pointwise_conv2d)
    assert np.array_equal(first[0], one[0]) and np.array_equal(first[1], one[1])
    assert np.abs(first[2] - one[2]).max() <= 1e-5 * np.abs(one[2]).max()


def test_rep_layer_training_path_uses_the_kernel_only_when_switched_on(onednn_kernels, monkeypatch):
    calls = []
    real = kernels.pointwise_conv2d_op()
    monkeypatch.setattr(kernels, "pointwise_conv2d_op", lambda: (lambda *a: calls.append(1) or real(*a))
                        if "onednn_gemm" in kernels._STATE.kernels else None)
    x = paddle.randn([2, 8, 4, 6])
    x.stop_gradient = False
    w, b = paddle.randn([12, 8, 1, 1]), paddle.randn([12])
    expected = F.conv2d(x, w, b).numpy()
    got = conv2d_channel_bias(x, w, b)
    assert calls and np.abs(got.numpy() - expected).max() < 1e-5
    kernels.configure(kernels=tuple(k for k in kernels.KERNELS if k != "onednn_gemm"))
    calls.clear()
    conv2d_channel_bias(x, w, b)
    assert not calls
    with paddle.no_grad():  # inference keeps Paddle's conv
        kernels.configure(kernels=kernels.KERNELS)
        conv2d_channel_bias(x, w, b)
    assert not calls
    conv2d_channel_bias(x, paddle.randn([12, 8, 1, 1]), b, stride=2)  # strided 1x1: Paddle's conv
    assert not calls


@pytest.mark.parametrize("bias", [False, True])
def test_pointwise_layer_runs_the_kernel_in_training_and_keeps_paddles_conv_elsewhere(onednn_kernels, monkeypatch,
                                                                                      bias):
    """``ops.PointwiseConv2D`` (PPLCNetV4's 1x1 convs): an ``nn.Conv2D`` with the same parameters whose training
    forward and gradients go through the kernel and match Paddle's conv; under ``no_grad`` Paddle's conv runs."""
    from workbench.models.ops import PointwiseConv2D

    calls = []
    real = kernels.pointwise_conv2d_op()
    monkeypatch.setattr(kernels, "pointwise_conv2d_op", lambda: lambda *a: calls.append(1) or real(*a))
    paddle.seed(2)
    conv = PointwiseConv2D(10, 14, 1, bias_attr=None if bias else False)
    assert isinstance(conv, paddle.nn.Conv2D) and sorted(conv.state_dict()) == sorted(
        paddle.nn.Conv2D(10, 14, 1, bias_attr=None if bias else False).state_dict())
    x0, grad = paddle.randn([3, 10, 4, 7]), paddle.randn([3, 14, 4, 7])
    x = x0.clone()
    x.stop_gradient = False
    y = conv(x)
    (y * grad).sum().backward()
    assert calls
    ours = [y.numpy(), x.grad.numpy(), conv.weight.grad.numpy()]
    conv.clear_gradients()
    x = x0.clone()
    x.stop_gradient = False
    ref = F.conv2d(x, conv.weight, conv.bias)
    (ref * grad).sum().backward()
    for a, b in zip(ours, [ref.numpy(), x.grad.numpy(), conv.weight.grad.numpy()]):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
    calls.clear()
    with paddle.no_grad():
        conv(x0)
    assert not calls
    with pytest.raises(ValueError, match="1x1 kernel"):
        PointwiseConv2D(10, 14, 3)


@pytest.mark.parametrize("vendor,on", [("GenuineIntel", False), ("AuthenticAMD", True), ("", True)])
def test_oneDNN_gemm_kernels_are_default_only_off_intel(monkeypatch, vendor, on):
    monkeypatch.setattr(kernels, "_cpu_vendor", lambda: vendor)
    assert ("onednn_gemm" in kernels.default_kernels()) is on
    assert kernels.default_kernels() - {"onednn_gemm"} == set(kernels.DEFAULT_KERNELS) - {"onednn_gemm"}


def test_linear_with_bias_matches_paddle_within_its_own_float32_error(onednn_kernels):
    """The CTC head's shape at small scale: [N, T, C] x [C, classes] + bias, with every gradient."""
    assert kernels.linear_op() is not None
    paddle.seed(2)
    x0, w0, b0 = paddle.randn([4, 10, 24]), paddle.randn([24, 300]) * 0.2, paddle.randn([300])
    grad = paddle.randn([4, 10, 300])

    def run(dtype, use_kernel):
        kernels.configure(kernels=kernels.KERNELS if use_kernel else
                          tuple(k for k in kernels.KERNELS if k != "onednn_gemm"))
        x, w, b = (paddle.to_tensor(t.numpy().astype(dtype)) for t in (x0, w0, b0))
        for t in (x, w, b):
            t.stop_gradient = False
        y = linear_bias_in_gemm(x, w, b) if dtype == "float32" else paddle.matmul(x, w) + b
        (y * grad.astype(dtype)).sum().backward()
        return [t.numpy() for t in (y, x.grad, w.grad, b.grad)]

    ours, theirs, exact = run("float32", True), run("float32", False), run("float64", False)
    for a, b, e, what in zip(ours, theirs, exact, ("output", "input gradient", "weight gradient", "bias gradient")):
        assert np.abs(a - e).max() <= np.abs(b - e).max() + 4e-7 * np.abs(e).max(), what
