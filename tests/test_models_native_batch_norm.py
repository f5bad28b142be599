"""wb's own CPU BatchNorm kernel for stacked re-param branches (``workbench/kernels/batch_norm.cc`` through
``ops.batch_norm_sum``): the same function as Paddle's batch_norm plus the sum over the branches, forward, backward
and running statistics, in training and frozen modes; deterministic; never in exported graphs."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from workbench import kernels
from workbench.models.ops import batch_norm_sum


def _paddle_reference(z, weight, bias, mean, var, training, groups):
    y = F.batch_norm(z, mean, var, weight, bias, training=training, momentum=0.9, epsilon=1e-5)
    if groups > 1:
        n, _, h, w = y.shape
        y = y.reshape([n, -1, groups, h, w]).sum(axis=2)
    return y


def _run(arrays, training, groups, use_native):
    """(output, dz, dweight, dbias, running mean, running var) after one forward + backward."""
    z0, w0, b0, m0, v0, g0 = arrays
    z, w, b = (paddle.to_tensor(a, stop_gradient=False) for a in (z0, w0, b0))
    mean, var = paddle.to_tensor(m0), paddle.to_tensor(v0)
    if use_native:
        kernels.configure(enabled=True)
        y = batch_norm_sum(z, w, b, mean, var, training=training, momentum=0.9, epsilon=1e-5, groups=groups)
    else:
        y = _paddle_reference(z, w, b, mean, var, training, groups)
    (y * paddle.to_tensor(g0)).sum().backward()
    return [t.numpy() for t in (y, z.grad, w.grad, b.grad, mean, var)]


def _arrays(shape, groups, seed, offset=0.5):
    rng = np.random.default_rng(seed)
    n, k, h, w = shape
    return (rng.normal(offset, 1.3, shape).astype(np.float32), rng.uniform(0.5, 1.5, k).astype(np.float32),
            rng.normal(0, 0.1, k).astype(np.float32), rng.normal(0, 0.5, k).astype(np.float32),
            rng.uniform(0.5, 2.0, k).astype(np.float32), rng.normal(0, 1, (n, k // groups, h, w)).astype(np.float32))


@pytest.mark.parametrize(
    "shape,groups,training",
    [
        ((2, 16, 3, 40), 4, True),  # four stacked rec re-param branches (PPLCNetV3), batch statistics
        ((2, 16, 3, 40), 4, False),  # frozen: running statistics
        ((3, 9, 8, 8), 3, True),
        ((4, 12, 5, 7), 2, True),
        ((1, 10, 1, 1), 2, False),  # one value per channel (frozen; batch statistics of one value are degenerate)
    ],
)
def test_same_as_paddle(native_kernels, shape, groups, training):
    arrays = _arrays(shape, groups, seed=sum(shape) + groups)
    ours, theirs = _run(arrays, training, groups, True), _run(arrays, training, groups, False)
    for a, b, what in zip(ours, theirs, ("output", "z gradient", "weight gradient", "bias gradient",
                                         "running mean", "running variance")):
        assert a.shape == b.shape, what
        assert np.abs(a - b).max() <= 2e-5 * max(np.abs(b).max(), 1e-3), what


def test_statistics_exact_when_the_mean_dwarfs_the_spread(native_kernels):
    """One-pass statistics, shifted by the channel's first value: no cancellation for |mean| >> std."""
    rng = np.random.default_rng(3)
    z0 = (1000.0 + rng.normal(0, 0.01, (8, 4, 6, 6))).astype(np.float32)
    z = paddle.to_tensor(z0, stop_gradient=False)
    mean, var = paddle.zeros([4]), paddle.ones([4])
    batch_norm_sum(z, paddle.ones([4]), paddle.zeros([4]), mean, var, training=True, momentum=0.0, epsilon=1e-5,
                   groups=2)
    exact = z0.astype(np.float64).var(axis=(0, 2, 3))
    assert np.abs(var.numpy() - exact).max() <= 1e-3 * exact.max()  # E[x^2]-E[x]^2 in float32 would be ~1e3x off
    np.testing.assert_allclose(mean.numpy(), z0.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-6)


def test_deterministic(native_kernels):
    arrays = _arrays((4, 32, 6, 80), 4, seed=1)
    first, second = _run(arrays, True, 4, True), _run(arrays, True, 4, True)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_static_graphs_keep_paddles_batch_norm(native_kernels):
    class Layer(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.kernel = self.create_parameter([8, 1, 3, 3])
            self.weight, self.bias = self.create_parameter([8]), self.create_parameter([8])
            self.register_buffer("mean", paddle.zeros([8]))
            self.register_buffer("var", paddle.ones([8]))

        def forward(self, x):
            return batch_norm_sum(x, self.weight, self.bias, self.mean, self.var, training=False, momentum=0.9,
                                  epsilon=1e-5, groups=2, depthwise=(self.kernel, 1, 1))

    layer = Layer()
    layer.eval()
    static = paddle.jit.to_static(layer, input_spec=[paddle.static.InputSpec([None, 4, 16, 16], "float32")],
                                  full_graph=True)
    program = str(static.forward.concrete_program.main_program)
    assert "wb_batch_norm_sum" not in program and "wb_depthwise" not in program
    assert "batch_norm" in program


def test_off_means_paddles_op():
    kernels.configure(enabled=False)
    try:
        assert kernels.batch_norm_sum_op() is None
    finally:
        kernels.configure(enabled=True)


def test_default_training_uses_every_kernel(native_kernels):
    """By default (``kernels.DEFAULT_KERNELS``) training runs the stacked branches through wb's BatchNorm kernel with
    the recomputed conv output; a subset leaves the others to Paddle."""
    kernels.configure(enabled=True, kernels=kernels.default_kernels())
    assert kernels.batch_norm_sum_op() is not None and kernels.branch_recompute_ops() is not None
    kernels.configure(kernels=("depthwise_conv",))
    assert kernels.batch_norm_sum_op() is None and kernels.branch_recompute_ops() is None
    assert kernels.depthwise_conv2d_op() is not None


@pytest.mark.parametrize("stride,training,kernel,width", [
    (1, True, 3, 24), ((2, 1), True, 3, 24), (1, False, 3, 24),
    # the kernel's register blocks are 32 and 8 columns wide, then single columns; column stride 2 reads two column
    # phases, other strides strided columns
    (1, True, 5, 77), ((2, 1), True, 5, 41), ((1, 2), True, 3, 70), ((2, 2), True, 3, 33), (1, False, 5, 45),
    ((1, 2), True, 5, 37), ((1, 3), True, 3, 29),
])
def test_stacked_branches_recomputed_in_backward(native_kernels, stride, training, kernel, width):
    """``batch_norm_sum(x, ..., depthwise=...)``: the stacked re-param branches in wb's kernel, which never holds
    their conv outputs (``kernels/depthwise_branches.cc``, kernel ``branch_recompute``) -- the same values and
    gradients as keeping the conv output, and as Paddle's ops."""
    from workbench.models.ops import depthwise_conv2d

    rng = np.random.default_rng(11)
    n, c, groups, pad = 2, 6, 4, kernel // 2
    x0 = rng.normal(0.5, 1, (n, c, 9, width)).astype(np.float32)
    k0 = rng.normal(0, 0.3, (c * groups, 1, kernel, kernel)).astype(np.float32)
    w0, b0 = rng.uniform(0.5, 1.5, c * groups).astype(np.float32), rng.normal(0, 0.1, c * groups).astype(np.float32)
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    out_h, out_w = (9 + 2 * pad - kernel) // sh + 1, (width + 2 * pad - kernel) // sw + 1
    g0 = rng.normal(0, 1, (n, c, out_h, out_w)).astype(np.float32)
    results = {}
    for side, setting in {"recompute": (True, kernels.KERNELS), "keep": (True, ("depthwise_conv", "batch_norm")),
                          "paddle": (False, kernels.KERNELS)}.items():
        kernels.configure(enabled=setting[0], kernels=setting[1])
        try:
            x, k, w, b = (paddle.to_tensor(a, stop_gradient=False) for a in (x0, k0, w0, b0))
            mean, var = paddle.zeros([c * groups]), paddle.ones([c * groups])
            if side == "keep":
                z = depthwise_conv2d(x, k, stride, pad)
                y = batch_norm_sum(z, w, b, mean, var, training=training, momentum=0.9, epsilon=1e-5, groups=groups)
            else:
                y = batch_norm_sum(x, w, b, mean, var, training=training, momentum=0.9, epsilon=1e-5, groups=groups,
                                   depthwise=(k, stride, pad))
            (y * paddle.to_tensor(g0)).sum().backward()
            results[side] = [t.numpy() for t in (y, x.grad, k.grad, w.grad, b.grad, mean, var)]
        finally:
            kernels.configure(enabled=True, kernels=kernels.KERNELS)
    assert kernels.branch_recompute_ops() is not None
    for other in ("keep", "paddle"):
        for a, ref, what in zip(results["recompute"], results[other], ("output", "x grad", "kernel grad",
                                                                       "weight grad", "bias grad", "mean", "var")):
            assert a.shape == ref.shape, what
            assert np.abs(a - ref).max() <= 3e-5 * max(np.abs(ref).max(), 1e-3), (other, what)


@pytest.mark.parametrize("use_native", [True, False])
def test_stacked_branches_plus_a_residual(native_kernels, use_native):
    """``batch_norm_sum(..., residual=r)`` (a rep layer's other branches): the branches' result plus ``r``, and ``r``
    gets the output's gradient -- added inside the kernel's layer with the kernels, by a plain add without."""
    rng = np.random.default_rng(12)
    n, c, groups = 2, 6, 4
    x0 = rng.normal(0.5, 1, (n, c, 9, 20)).astype(np.float32)
    k0 = rng.normal(0, 0.3, (c * groups, 1, 3, 3)).astype(np.float32)
    w0, b0 = rng.uniform(0.5, 1.5, c * groups).astype(np.float32), rng.normal(0, 0.1, c * groups).astype(np.float32)
    r0, g0 = rng.normal(0, 1, (n, c, 9, 20)).astype(np.float32), rng.normal(0, 1, (n, c, 9, 20)).astype(np.float32)
    kernels.configure(enabled=use_native)
    outputs = []
    for residual in (None, r0):
        x, k, w, b = (paddle.to_tensor(a, stop_gradient=False) for a in (x0, k0, w0, b0))
        r = None if residual is None else paddle.to_tensor(residual, stop_gradient=False)
        y = batch_norm_sum(x, w, b, paddle.zeros([c * groups]), paddle.ones([c * groups]), training=True,
                           momentum=0.9, epsilon=1e-5, groups=groups, depthwise=(k, 1, 1), residual=r)
        (y * paddle.to_tensor(g0)).sum().backward()
        outputs.append((y.numpy(), x.grad.numpy(), k.grad.numpy(), None if r is None else r.grad.numpy()))
    (y_plain, dx_plain, dk_plain, _), (y_res, dx_res, dk_res, dr) = outputs
    np.testing.assert_allclose(y_res, y_plain + r0, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(dr, g0)
    np.testing.assert_array_equal(dx_res, dx_plain)
    np.testing.assert_array_equal(dk_res, dk_plain)


@pytest.mark.parametrize("op", ["channel_moments", "centered_covariance", "branches"])
def test_a_forward_never_differentiated_frees_its_graph(native_kernels, op):
    """A training-mode forward whose backward never runs (an interrupted step, a notebook's look at the loss) must
    leave nothing behind. wb's PyLayers once kept their own outputs (the batch mean, the centred map; the branch
    kernel's statistics as outputs marked non-differentiable): the layer's context and its graph node then held
    each other, a cycle only a backward pass broke, and with it everything before in the graph (measured: 0.6 GB
    of Paddle tensors left per forward-only PP-OCRv5_mobile_det step at batch 4, 640^2; none now)."""
    import gc

    from paddle.base import core

    from workbench.models.ops import centered_covariance, channel_moments

    rng = np.random.default_rng(14)
    leaf = paddle.to_tensor(rng.normal(0, 1, (4, 16, 64, 64)).astype(np.float32), stop_gradient=False)
    k = paddle.to_tensor(rng.normal(0, 0.3, (64, 1, 3, 3)).astype(np.float32), stop_gradient=False)
    w, b = paddle.ones([64]), paddle.zeros([64])
    w.stop_gradient = b.stop_gradient = False
    mean, var = paddle.zeros([64]), paddle.ones([64])
    forward = {
        "channel_moments": lambda x: channel_moments(x)[0],
        "centered_covariance": lambda x: centered_covariance(x)[2],
        "branches": lambda x: batch_norm_sum(x, w, b, mean, var, training=True, momentum=0.9, epsilon=1e-5,
                                             groups=4, depthwise=(k, 1, 1)),
    }[op]

    def allocated() -> int:
        gc.collect()
        return core.host_memory_stat_current_value("Allocated", 0)

    before = allocated()
    for _ in range(2):
        out = forward(leaf * 2.0)  # an input with a graph behind it (4 MB), as inside a network
        del out
    assert allocated() - before < 1 << 20
