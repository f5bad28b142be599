"""wb's own CPU depthwise-convolution kernel (workbench/kernels): the same function as Paddle's grouped conv,
forward and backward, deterministic, and never inside a graph that is exported or compiled."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from workbench import kernels
from workbench.models.ops import conv2d_channel_bias, depthwise_conv2d


def _run(x0, w0, stride, padding, grad, use_native):
    kernels.configure(enabled=use_native)
    x, w = x0.clone(), w0.clone()
    x.stop_gradient = w.stop_gradient = False
    y = depthwise_conv2d(x, w, stride, padding)
    (y * grad).sum().backward()
    return y.numpy(), x.grad.numpy(), w.grad.numpy()


@pytest.mark.parametrize(
    "shape,multiplier,kernel_size,stride",
    [
        ((2, 8, 9, 11), 1, 3, 1),
        ((2, 8, 9, 11), 1, 5, (2, 1)),  # rec: halve the height
        ((2, 6, 7, 13), 1, 3, (1, 2)),  # rec: halve the width once
        ((3, 4, 10, 10), 1, 3, 2),  # det: stride 2
        ((2, 5, 6, 17), 4, 5, 1),  # four stacked re-param branches (channel multiplier 4)
        ((1, 3, 4, 3), 2, 5, (2, 2)),  # kernel wider than the map
        ((2, 4, 9, 20), 1, 3, (1, 3)),  # column stride 3: strided reads (stride 2 is stored as two column phases)
        ((2, 3, 9, 21), 2, 7, (1, 2)),  # a kernel other than 3x3 / 5x5: one correlation pass per tap
        ((2, 4, 6, 38), 1, 5, 1),  # rows of 38 (a 152 px rec crop): the last columns as an overlapping block
        ((2, 4, 5, 41), 1, 3, (1, 2)),  # 21 output columns read from two column phases, tails likewise
    ],
)
def test_same_as_paddle_forward_and_backward(native_kernels, shape, multiplier, kernel_size, stride):
    paddle.seed(0)
    x = paddle.randn(shape)
    w = paddle.randn([shape[1] * multiplier, 1, kernel_size, kernel_size]) * 0.3
    ref = F.conv2d(x, w, None, stride, kernel_size // 2, groups=shape[1])
    grad = paddle.randn(ref.shape)
    ours = _run(x, w, stride, kernel_size // 2, grad, True)
    theirs = _run(x, w, stride, kernel_size // 2, grad, False)
    np.testing.assert_allclose(theirs[0], ref.numpy(), rtol=0, atol=0)  # disabled = Paddle's own conv
    for a, b, what in zip(ours, theirs, ("output", "input gradient", "weight gradient")):
        scale = np.abs(b).max()
        assert np.abs(a - b).max() <= 1e-5 * scale, what


def test_deterministic(native_kernels):
    paddle.seed(1)
    x, w = paddle.randn([4, 16, 12, 40]), paddle.randn([16, 1, 5, 5])
    grad = paddle.randn([4, 16, 12, 40])
    first, second = _run(x, w, 1, 2, grad, True), _run(x, w, 1, 2, grad, True)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_depthwise_conv_with_bias_uses_it(native_kernels):
    paddle.seed(2)
    x, w, b = paddle.randn([2, 6, 5, 9]), paddle.randn([6, 1, 3, 3]), paddle.randn([6])
    ref = F.conv2d(x, w, b, 1, 1, groups=6)
    kernels.configure(enabled=True)
    np.testing.assert_allclose(conv2d_channel_bias(x, w, b, 1, 1, groups=6).numpy(), ref.numpy(), atol=1e-5)


def test_static_graphs_keep_paddles_conv(native_kernels):
    """An exported graph must hold only ops PaddleX and Paddle Inference know."""

    class Layer(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.weight = self.create_parameter([8, 1, 3, 3])

        def forward(self, x):
            return depthwise_conv2d(x, self.weight, 1, 1)

    layer = Layer()
    static = paddle.jit.to_static(layer, input_spec=[paddle.static.InputSpec([None, 8, 16, 16], "float32")],
                                  full_graph=True)
    program = str(static.forward.concrete_program.main_program)
    assert "wb_depthwise_conv2d" not in program
    assert "conv2d" in program


def test_inference_keeps_paddles_kernel(native_kernels):
    """Under no_grad (evaluation, parity checks) the result is Paddle's own, bit for bit."""
    paddle.seed(4)
    x, w = paddle.randn([2, 8, 9, 21]), paddle.randn([8, 1, 5, 5])
    w.stop_gradient = False  # a parameter, as in a model
    kernels.configure(enabled=True)
    with paddle.no_grad():
        ours = depthwise_conv2d(x, w, 1, 2).numpy()
    assert np.array_equal(ours, F.conv2d(x, w, None, 1, 2, groups=8).numpy())


def test_off_means_paddles_kernel():
    kernels.configure(enabled=False)
    try:
        assert kernels.depthwise_conv2d_op() is None
    finally:
        kernels.configure(enabled=True)


@pytest.mark.parametrize("stride,padding,bias", [(1, 1, False), ((2, 1), 1, True), (2, 2, False)])
def test_depthwise_layer_through_the_kernel(native_kernels, stride, padding, bias):
    """``ops.DepthwiseConv2D``: the kernel inside an ``nn.Conv2D`` (same parameters), same values and gradients;
    forward hooks still fire (weight import traces layers with them)."""
    from workbench.models.ops import DepthwiseConv2D

    paddle.seed(3)
    conv = DepthwiseConv2D(6, 6, 3 if padding == 1 else 5, stride, padding, groups=6, bias_attr=None if bias else False)
    assert isinstance(conv, paddle.nn.Conv2D)
    seen = []
    conv.register_forward_post_hook(lambda layer, inputs, output: seen.append(output.shape))
    x0 = paddle.randn([2, 6, 9, 14])
    results = []
    for use in (True, False):
        kernels.configure(enabled=use)
        x = x0.clone()
        x.stop_gradient = False
        y = conv(x)
        (y * y).sum().backward()
        results.append((y.numpy(), x.grad.numpy(), conv.weight.grad.numpy()))
        conv.clear_gradients()
    assert len(seen) == 2
    for a, b in zip(*results):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def test_kernels_link_paddles_openmp_runtime(native_kernels):
    """Our kernels' OpenMP calls go to the runtime Paddle's CPU kernels use (its bundled libiomp5): linked against
    libgomp as well, two thread pools fought over the cores (rec steps 25 % slower, ``kernels._ldflags``)."""
    import shutil
    import subprocess
    from pathlib import Path

    from workbench.kernels import _cache_dir

    if not (Path(paddle.__file__).parent / "libs" / "libiomp5.so").is_file():
        pytest.skip("this Paddle build bundles no libiomp5: -fopenmp is used")
    readelf = shutil.which("readelf")
    assert readelf, "readelf (binutils, installed with the C++ compiler) is needed to read the library's links"
    libraries = sorted(_cache_dir().rglob("wb_native_kernels*.so"))
    assert libraries, f"no built extension under {_cache_dir()}"
    needed = [line.split("[")[1].rstrip("]") for line in subprocess.run(
        [readelf, "-d", str(libraries[0])], capture_output=True, text=True, check=True).stdout.splitlines()
        if "(NEEDED)" in line]
    assert "libiomp5.so" in needed and not any(name.startswith("libgomp") for name in needed), needed
