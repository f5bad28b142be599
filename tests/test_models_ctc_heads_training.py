"""CTC heads in CPU training put the bias of their wide class projection inside the GEMM
(``models.ops.linear_bias_in_gemm``): the same logits and gradients as the plain linear layer, which inference,
export and GPU training keep."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from workbench.models.heads.ctc import CTCHead, GuidedCTCHead


def _logits_and_grads(head, x0, weights, reference: bool):
    head.train()
    head.clear_gradients()
    x = x0.clone()
    x.stop_gradient = False
    if reference:  # the plain layers, as eval and export run them (without the softmax)
        if isinstance(head, GuidedCTCHead):
            hidden = head.fc1(head.guide_layer(x.transpose([0, 2, 1])).transpose([0, 2, 1]))
            logits = F.linear(hidden, head.fc2.weight, head.fc2.bias)
        else:
            logits = F.linear(x, head.fc.weight, head.fc.bias)
    else:
        logits = head(x)
    (logits * weights).sum().backward()
    grads = {name: p.grad.numpy() for name, p in head.named_parameters() if p.grad is not None}
    return logits.numpy(), x.grad.numpy(), grads


@pytest.mark.parametrize("make", [lambda: CTCHead(24, 301), lambda: GuidedCTCHead(24, 301, mid_channels=16)])
def test_bias_in_the_gemm_same_logits_and_gradients(make):
    paddle.seed(0)
    head = make()
    x = paddle.randn([3, 7, 24])
    weights = paddle.randn([3, 7, 301])
    ours, reference = _logits_and_grads(head, x, weights, False), _logits_and_grads(head, x, weights, True)
    np.testing.assert_allclose(ours[0], reference[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours[1], reference[1], rtol=1e-5, atol=1e-5)
    assert ours[2].keys() == reference[2].keys() and any(k.endswith("bias") for k in ours[2])
    for name in ours[2]:
        np.testing.assert_allclose(ours[2][name], reference[2][name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_eval_keeps_the_linear_layer_and_softmax():
    paddle.seed(1)
    head = CTCHead(24, 301)
    head.eval()
    x = paddle.randn([2, 5, 24])
    with paddle.no_grad():
        probs = head(x)
    expected = F.softmax(F.linear(x, head.fc.weight, head.fc.bias), axis=-1)
    np.testing.assert_allclose(probs.numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
