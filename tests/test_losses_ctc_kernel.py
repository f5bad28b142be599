"""wb's CTC kernel (``workbench/kernels/ctc_loss.cc``, used by ``losses.ctc.ctc_loss`` when training on CPU) is the
same function as Paddle's warp-ctc: loss and gradient w.r.t. the logits, on labels with repeats (which need a blank
between them), empty labels and a label the steps cannot hold."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from workbench import kernels
from workbench.losses.ctc import ctc_loss


def _loss_and_grad(logits0, labels0, lengths0, weights0, *, native: bool):
    kernels.configure(enabled=native)
    try:
        logits = paddle.to_tensor(logits0, stop_gradient=False)
        loss = ctc_loss(logits, paddle.to_tensor(labels0), paddle.to_tensor(lengths0))
        (loss * paddle.to_tensor(weights0.astype(logits0.dtype))).sum().backward()
        return loss.numpy().astype(np.float64), logits.grad.numpy().astype(np.float64)
    finally:
        kernels.configure(enabled=True)


@pytest.mark.parametrize("classes,steps", [(7, 12), (300, 25)])
def test_same_loss_and_gradient_as_warpctc(native_kernels, classes, steps):
    rng = np.random.default_rng(3)
    n, max_length = 6, 5
    logits = rng.normal(0, 2, (n, steps, classes)).astype(np.float32)
    labels = np.zeros((n, max_length), np.int64)
    lengths = np.array([5, 3, 0, 1, 4, 2], np.int64)
    for i, length in enumerate(lengths):
        labels[i, :length] = rng.integers(1, classes, length)
    labels[0, :5] = [1, 1, 2, 2, 1]  # repeats: an alignment needs a blank between equal neighbours
    weights = rng.uniform(0.5, 1.5, n).astype(np.float32)  # the backward scales each sample's gradient
    ours, ours_grad = _loss_and_grad(logits, labels, lengths, weights, native=True)
    # the reference: warp-ctc in float64 (in float32 it is itself ~4e-6 off on these gradients, ours ~3e-7)
    ref, ref_grad = _loss_and_grad(logits.astype(np.float64), labels, lengths, weights, native=False)
    assert kernels.ctc_loss_op() is not None
    np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=1e-5)
    np.testing.assert_allclose(ours_grad, ref_grad, rtol=0, atol=1e-6)
    # the gradient w.r.t. each step's logits sums to 0 (softmax minus a distribution over the label's states)
    assert np.abs(ours_grad.sum(axis=-1)).max() < 1e-5


def test_label_longer_than_the_steps_allow(native_kernels):
    """Three equal characters need five steps; with four the loss is infinite and the gradient zero."""
    logits = np.random.default_rng(0).normal(0, 1, (1, 4, 5)).astype(np.float32)
    labels, lengths = np.array([[2, 2, 2]], np.int64), np.array([3], np.int64)
    loss, grad = _loss_and_grad(logits, labels, lengths, np.ones(1, np.float32), native=True)
    assert np.isinf(loss).all() and (grad == 0).all()


def test_not_used_without_gradients(native_kernels):
    """Under no_grad (evaluation) the loss is Paddle's op: the kernel serves training only."""
    logits = paddle.to_tensor(np.zeros((1, 3, 4), np.float32))
    with paddle.no_grad():
        assert not kernels.training_applies(logits)
    logits.stop_gradient = False
    assert kernels.training_applies(logits)


@pytest.mark.parametrize("threads", [2, 3])
def test_every_sample_computed_at_any_thread_count(native_kernels, threads):
    """Each sample is one iteration of a parallel loop and must run exactly once whatever the thread count (linked
    against Paddle's libiomp5, a dynamically scheduled loop ran some samples twice at once: their gradient rows raced,
    up to 1.0 off, and fine-tunes at 2 threads diverged)."""
    rng = np.random.default_rng(5)
    n, steps, classes, max_length = 16, 12, 2000, 8  # a narrow rec batch's shape (fewer classes)
    logits = rng.normal(0, 2, (n, steps, classes)).astype(np.float32)
    labels = rng.integers(1, classes, (n, max_length)).astype(np.int64)
    lengths = rng.integers(1, 6, n).astype(np.int64)
    op = kernels.ctc_loss_op()
    results = []
    for count in (1, *[threads] * 6):  # the race showed on some calls, not all
        loss, grad = op(paddle.to_tensor(logits), paddle.to_tensor(labels), paddle.to_tensor(lengths), 0, count)
        results.append((loss.numpy(), grad.numpy()))
    for loss, grad in results[1:]:  # one sample per iteration in a fixed order: identical whatever the threads
        np.testing.assert_array_equal(loss, results[0][0])
        np.testing.assert_array_equal(grad, results[0][1])
