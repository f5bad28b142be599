"""wb's CPU kernels for PPLCNetV3's learnable activation (``scale * act(x) + bias``) and for per-channel batch
statistics + affine (a depthwise layer's identity BN and 1x1 branch): the same function and gradients as Paddle's
ops, deterministic whatever the thread count, and never inside inference or an exported graph."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from workbench import kernels
from workbench.models.ops import activation_affine, channel_affine, channel_moments


def _activation(x0, relu, grad, use_native, threads=2):
    kernels.configure(enabled=use_native, threads=threads)
    x = x0.clone()
    x.stop_gradient = False
    scale = paddle.to_tensor([1.3], stop_gradient=False)
    bias = paddle.to_tensor([-0.2], stop_gradient=False)
    y = activation_affine(x, scale, bias, relu=relu)
    if use_native:
        assert y is not None
    else:  # the kernels off: the caller's own layers
        assert y is None
        y = scale * (F.relu(x) if relu else F.hardswish(x)) + bias
    (y * grad).sum().backward()
    return [t.numpy() for t in (y, x.grad, scale.grad, bias.grad)]


@pytest.mark.parametrize("relu", [False, True])
def test_activation_affine_same_as_paddles_ops(native_kernels, relu):
    paddle.seed(0)
    x = paddle.randn([3, 8, 11, 29]) * 3  # the whole hard-swish range: flat, curved, linear
    grad = paddle.randn(x.shape)
    ours, theirs = _activation(x, relu, grad, True), _activation(x, relu, grad, False)
    for a, b, what in zip(ours, theirs, ("output", "input gradient", "scale gradient", "bias gradient")):
        assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max()), what


def test_activation_affine_deterministic_across_thread_counts(native_kernels):
    paddle.seed(1)
    x = paddle.randn([4, 16, 40, 50])  # 128,000 values: two blocks of the gradient sums
    grad = paddle.randn(x.shape)
    one, two = _activation(x, False, grad, True, threads=1), _activation(x, False, grad, True, threads=2)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def _biased_activation(x0, relu, grad, use_native, threads=2):
    kernels.configure(enabled=use_native, threads=threads)
    x = x0.clone()
    x.stop_gradient = False
    channel_bias = paddle.to_tensor(np.linspace(-2, 2, x.shape[1]).astype("float32"), stop_gradient=False)
    scale = paddle.to_tensor([1.3], stop_gradient=False)
    bias = paddle.to_tensor([-0.2], stop_gradient=False)
    y = activation_affine(x, scale, bias, relu=relu, channel_bias=channel_bias)
    if use_native:
        assert y is not None
    else:
        assert y is None
        z = x + channel_bias.reshape([-1, 1, 1])
        y = scale * (F.relu(z) if relu else F.hardswish(z)) + bias
    (y * grad).sum().backward()
    return [t.numpy() for t in (y, x.grad, channel_bias.grad, scale.grad, bias.grad)]


@pytest.mark.parametrize("relu", [False, True])
def test_channel_bias_activation_same_as_paddles_ops(native_kernels, relu):
    """The pointwise layers' folded BN shift added inside the activation kernel: same values and gradients
    (the channel bias's gradient included) as the add and the three activation ops."""
    paddle.seed(4)
    x = paddle.randn([3, 8, 11, 29]) * 3
    grad = paddle.randn(x.shape)
    ours, theirs = _biased_activation(x, relu, grad, True), _biased_activation(x, relu, grad, False)
    for a, b, what in zip(ours, theirs, ("output", "input gradient", "channel-bias gradient", "scale gradient",
                                         "bias gradient")):
        assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max()), what


def test_channel_bias_activation_deterministic_across_thread_counts(native_kernels):
    paddle.seed(5)
    x = paddle.randn([4, 16, 40, 50])
    grad = paddle.randn(x.shape)
    one, two = _biased_activation(x, False, grad, True, threads=1), _biased_activation(x, False, grad, True, threads=2)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("use_native", [True, False])
def test_pointwise_rep_layer_in_training_same_as_upstreams_branches(native_kernels, use_native):
    """A pointwise rep layer in training (covariance statistics, its shift added by the activation kernel or by
    a broadcast add without the kernels) computes upstream's branch sum, and its gradients."""
    from workbench.models.backbones.pplcnetv3 import LearnableRepLayer

    paddle.seed(6)
    layer = LearnableRepLayer(12, 16, 1, 1, num_branches=2)
    layer.train()
    for p in layer.parameters():  # non-trivial BN affines: the shift matters
        if p.shape == [16] or p.shape == [12]:
            p.set_value(paddle.uniform(p.shape, min=0.5, max=1.5))
    kernels.configure(enabled=use_native)
    x = paddle.randn([2, 12, 6, 10])
    weights = paddle.randn([2, 16, 6, 10])
    results = []
    for forward in (layer, layer.branch_sum):
        layer.clear_gradients()
        out = forward(x)
        (out * weights).sum().backward()
        results.append([out.numpy()] + [p.grad.numpy() for p in layer.parameters() if p.grad is not None])
    ours, reference = results
    assert len(ours) == len(reference) > 5
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(b).max()))


def _affine_of_moments(x0, use_native):
    """``a(mean, var) * x + d(mean)``, a function of both statistics (as the depthwise layer computes)."""
    kernels.configure(enabled=use_native)
    x = x0.clone()
    x.stop_gradient = False
    gamma = paddle.to_tensor(np.linspace(0.5, 1.5, x.shape[1]).astype("float32"), stop_gradient=False)
    mean, var = channel_moments(x)
    a = gamma / paddle.sqrt(var + 1e-5)
    y = channel_affine(x, a, 0.3 - a * mean)
    weights = paddle.to_tensor(np.random.default_rng(5).normal(size=x.shape).astype("float32"))
    (y * weights).sum().backward()
    return [t.numpy() for t in (mean, var, y, x.grad, gamma.grad)]


@pytest.mark.parametrize("offset", [0.0, 1000.0])  # a mean that dwarfs the spread: no cancellation
def test_channel_moments_and_affine_same_as_paddles_ops(native_kernels, offset):
    paddle.seed(2)
    x = paddle.randn([4, 6, 7, 9]) * 0.5 + offset
    ours, theirs = _affine_of_moments(x, True), _affine_of_moments(x, False)
    reference_var = x.numpy().astype(np.float64).var(axis=(0, 2, 3))
    assert np.abs(ours[1] - reference_var).max() <= 1e-5 * reference_var.max()
    for a, b, what in zip(ours, theirs, ("mean", "var", "output", "input gradient", "gamma gradient")):
        tolerance = 2e-3 if offset and what != "mean" else 1e-4  # Paddle's own var loses digits at offset 1000
        assert np.abs(a - b).max() <= tolerance * max(1.0, np.abs(b).max()), what


def test_inference_and_exported_graphs_keep_paddles_ops(native_kernels):
    """Under no_grad the kernels stand aside (the caller's layers run); an exported graph holds no wb op."""
    from workbench.models.backbones.pplcnetv3 import LearnableRepLayer

    x = paddle.randn([2, 8, 6, 10])
    scale = paddle.to_tensor([1.0], stop_gradient=False)
    with paddle.no_grad():
        assert activation_affine(x, scale, scale, relu=False) is None
    layer = LearnableRepLayer(8, 8, 3, 1, groups=8, num_branches=2)
    layer.eval()  # as export traces it
    static = paddle.jit.to_static(layer, input_spec=[paddle.static.InputSpec([None, 8, 16, 16], "float32")],
                                  full_graph=True)
    program = str(static.forward.concrete_program.main_program)
    assert "wb_" not in program and "hardswish" in program



@pytest.mark.parametrize("use_native", [True, False])
def test_depthwise_identity_and_1x1_as_one_affine_only_with_the_kernels(native_kernels, use_native):
    """Training on CPU with the kernels: a stride-1 depthwise layer's 1x1 branch conv never runs (its BN statistics
    come from the input's); without them (as on GPU / AMP) the two BatchNorms run as before. Same output."""
    from workbench.models.backbones.pplcnetv3 import LearnableRepLayer

    paddle.seed(3)
    layer = LearnableRepLayer(8, 8, 3, 1, groups=8, num_branches=2)
    layer.train()
    calls = []
    layer.conv_1x1.conv.register_forward_post_hook(lambda *_: calls.append(1))
    kernels.configure(enabled=use_native)
    x = paddle.randn([2, 8, 6, 10])
    x.stop_gradient = False
    out = layer(x)
    assert len(calls) == (0 if use_native else 1)
    np.testing.assert_allclose(out.numpy(), layer.branch_sum(x).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, frozen", [
    ("PP-OCRv5_mobile_det", ("backbone.conv1", "backbone.blocks2")),  # the README's model.freeze example
    ("PP-OCRv5_mobile_rec", ("backbone.conv1", "backbone.blocks2", "backbone.blocks3")),
])
def test_frozen_early_stages_train_with_the_kernels(native_kernels, name, frozen):
    """model.freeze stops gradients at the first trainable layer's input: the kernels' layers return no gradient
    for it (Paddle refuses one) and the trainable layers get the right gradients.

    "Right" is Paddle's own ops in float64, not Paddle's float32 gradient: through a dozen batch-statistics BNs the
    float32 gradients of the first trainable stage are conditioned badly enough that Paddle's own float32 result is
    the inaccurate one on some CPUs (AMD EPYC Zen 4: the det's blocks3.0 1x1 conv weight 1.1 % and its learnable
    scale 23 % from float64, the kernels' 0.18 % and 0.3 %). Each gradient of the kernels must be as close to the
    float64 one as Paddle's float32 is, plus 1 % of its size (measured worst: half that bound on both models)."""
    from workbench.models import zoo

    def grads(use_native, dtype="float32"):
        kernels.configure(enabled=use_native)
        paddle.seed(0)
        model = zoo.build_model(name)
        model.to(dtype=dtype)  # the same initial weights in float64 for the reference
        model.train()
        for key, p in model.named_parameters():
            if key.startswith(frozen):  # as the trainer freezes model.freeze prefixes
                p.stop_gradient = True
        x = paddle.to_tensor(np.random.default_rng(0).normal(size=(2, 3, 64, 96)).astype(dtype))
        out = model(x)["maps"] if name.endswith("_det") else model.backbone(x)  # rec: no NRTR targets needed
        (out * paddle.linspace(0.5, 1.5, out.shape[-1], dtype=dtype)).mean().backward()
        return {k: p.grad.numpy().astype("float64")
                for k, p in model.named_parameters() if not p.stop_gradient and p.grad is not None}

    ours, theirs, exact = grads(True), grads(False), grads(False, "float64")
    assert ours.keys() == theirs.keys() == exact.keys() and len(ours) > 20
    # gradients that cancel to ~0 (a scale in front of a BN) are compared against the model's largest gradient
    floor = 1e-4 * max(np.linalg.norm(g) for g in exact.values())
    for k in ours:
        paddles_error = np.linalg.norm(theirs[k] - exact[k])
        assert np.linalg.norm(ours[k] - exact[k]) <= paddles_error + 1e-2 * np.linalg.norm(exact[k]) + floor, k
