"""Frozen-BN training folds each rep layer's branches into one kernel every step; where wb's kernels run that is
one autograd node around ``wb_rep_fold`` (``kernels/rep_fold.cc``): the same kernel and bias as Paddle's op-by-op
fold within an ulp (Paddle's CPU sqrt is not correctly rounded: 40 % of float32 results differ from IEEE's by an
ulp; ours is), and the same gradients for every branch weight, BN affine and learnable-affine parameter up to
float32 summation order."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from workbench import kernels
from workbench.models.backbones.pplcnetv3 import LearnableRepLayer, _fold_branches
from workbench.models.zoo import build_model


@pytest.fixture(autouse=True)
def _native_kernels_built(native_kernels):
    """The comparison needs the compiled op (CI builds it; conftest's fixture fails there when it cannot)."""


def _rep_layers(name):
    paddle.seed(1)
    model = build_model(name)
    model.train()
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            layer.eval()  # frozen statistics, as the fine-tune recipes train imported weights
            rng = np.random.default_rng(len(layer._mean.shape) + layer._mean.shape[0])
            layer._mean.set_value(rng.normal(0, 0.5, layer._mean.shape).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 2.0, layer._variance.shape).astype("float32"))
    for layer in model.sublayers():
        if isinstance(layer, LearnableRepLayer):  # away from the init's 1 / 0, so their gradients are exercised
            layer.lab.scale.set_value(np.array([1.3], "float32"))
            layer.lab.bias.set_value(np.array([-0.2], "float32"))
    return [layer for layer in model.sublayers() if isinstance(layer, LearnableRepLayer)]


def _flat(layer):
    return [p for group in layer.fold_parameters() for p in group]


@pytest.mark.parametrize("name", ["PP-OCRv5_mobile_rec", "PP-OCRv5_mobile_det"])
def test_native_fold_matches_the_op_by_op_fold(name, monkeypatch):
    layers = _rep_layers(name)
    kinds = {(len(l.conv_kxk), l.conv_1x1 is not None, l.identity is not None, l.kernel_size) for l in layers}
    assert len(kinds) >= 3  # with and without the 1x1 / identity branches, kxk and pointwise
    calls = []
    op = kernels.rep_fold_ops()
    monkeypatch.setattr(kernels, "rep_fold_ops", lambda: calls.append(1) or op)
    for index, layer in enumerate(layers):
        params = _flat(layer)
        results = []
        for fold in (lambda: _fold_branches(layer, True), lambda: layer.fused_kernel_bias_tensors(True)):
            kernel, bias = fold()
            d_kernel = paddle.to_tensor(np.random.default_rng(index).normal(size=kernel.shape).astype("float32"))
            d_bias = paddle.to_tensor(np.random.default_rng(index + 1).normal(size=bias.shape).astype("float32"))
            grads = paddle.grad([kernel, bias], params, grad_outputs=[d_kernel, d_bias])
            results.append((kernel.numpy(), bias.numpy(), [g.numpy() for g in grads]))
        (k_ops, b_ops, g_ops), (k_one, b_one, g_one) = results
        for one, ops in ((k_one, k_ops), (b_one, b_ops)):  # a few ulps of the largest value (sums cancel)
            np.testing.assert_allclose(one, ops, rtol=1e-6, atol=1e-6 * float(np.abs(ops).max()))
        for p, a, b in zip(params, g_ops, g_one):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()), err_msg=p.name)
    assert len(calls) == len(layers)  # every layer went through the native op


def test_frozen_parameters_get_no_gradient():
    layer = _rep_layers("PP-OCRv5_mobile_rec")[3]
    params = _flat(layer)
    for p in params[:2]:
        p.stop_gradient = True  # e.g. model.freeze on the first branches
    kernel, bias = layer.fused_kernel_bias_tensors(True)
    (kernel.sum() + bias.sum()).backward()
    assert all(p.grad is None for p in params[:2]) and all(p.grad is not None for p in params[2:])


def test_evaluation_and_no_grad_keep_paddles_ops(monkeypatch):
    layer = _rep_layers("PP-OCRv5_mobile_rec")[0]
    monkeypatch.setattr(kernels, "rep_fold_ops", lambda: pytest.fail("native fold used under no_grad"))
    with paddle.no_grad():
        kernel, _ = layer.fused_kernel_bias_tensors(True)
    assert kernel.stop_gradient


def test_frozen_layer_adds_its_folded_bias_inside_the_activation(monkeypatch):
    """Frozen-BN training: one conv with the folded kernel, its bias added inside the activation's kernel (no
    broadcast add of its own): the same output and gradients as upstream's branch sum, for layers with and without
    an activation (stride 2 has none)."""
    rec, det = _rep_layers("PP-OCRv5_mobile_rec"), _rep_layers("PP-OCRv5_mobile_det")
    calls = []
    op = kernels.channel_bias_activation_affine_op()
    monkeypatch.setattr(kernels, "channel_bias_activation_affine_op", lambda: calls.append(1) or op)
    picked = [next(l for l in rec if l.use_act and l.kernel_size > 1), next(l for l in rec if l.kernel_size == 1),
              next(l for l in det if not l.use_act)]
    for index, layer in enumerate(picked):
        x = paddle.to_tensor(np.random.default_rng(index).normal(size=(2, layer.in_channels, 12, 21)).astype("float32"))
        x.stop_gradient = False
        params = [x, *_flat(layer)]
        outputs = []
        for forward in (layer.branch_sum, layer):
            y = forward(x)
            d_y = paddle.to_tensor(np.random.default_rng(9).normal(size=y.shape).astype("float32"))
            outputs.append((y.numpy(), [g.numpy() for g in paddle.grad([y], params, grad_outputs=[d_y])]))
        (y_ref, g_ref), (y_ours, g_ours) = outputs
        np.testing.assert_allclose(y_ours, y_ref, rtol=1e-4, atol=1e-5 * float(np.abs(y_ref).max()))
        for a, b in zip(g_ref, g_ours):
            np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4 * float(np.abs(a).max()))
    assert len(calls) == 2  # the layers with an activation used the fused bias kernel
