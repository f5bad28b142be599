"""The weights' moving average (``engine.ema.ModelEMA``): wb's one-pass CPU kernel gives Paddle's per-entry values
bit for bit, at any thread count, over tensors of every size (empty ones included)."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from workbench import kernels
from workbench.engine.checkpoint import EMA_COUNTER_KEY
from workbench.engine.ema import ModelEMA


# these tests seed Paddle and set the kernels' threads: the tests after them must not inherit either
pytestmark = pytest.mark.usefixtures("global_rng_and_kernels_restored")


class _Odd(paddle.nn.Layer):
    """Entries of awkward sizes: a scalar-like bias, an empty buffer between two parameters, a large weight that
    two threads split in its middle, and an int buffer the average leaves alone."""

    def __init__(self):
        super().__init__()
        self.a = paddle.nn.Linear(7, 1)
        self.register_buffer("empty", paddle.zeros([0, 3]))
        self.b = paddle.nn.Linear(301, 97)
        self.register_buffer("count", paddle.to_tensor([5], dtype="int64"))


def _run(use_native: bool, threads: int, steps: int = 4):
    kernels.configure(enabled=use_native, threads=threads)
    paddle.seed(0)
    model = _Odd()
    ema = ModelEMA(model, decay=0.99)
    for step in range(steps):  # the weights move between updates, as an optimizer's steps move them
        with paddle.no_grad():
            for p in model.parameters():
                p.set_value(p + paddle.randn(p.shape) * 0.1 * (step + 1))
        ema.update(model)
    return {k: v.numpy() for k, v in ema.weights().items()}


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_native_average_equals_paddles_ops_bit_for_bit(native_kernels, threads):
    assert kernels.ema_update_op() is not None
    ours, theirs = _run(True, threads), _run(False, threads)
    assert ours.keys() == theirs.keys() and "count" not in ours
    for key in theirs:
        assert ours[key].shape == theirs[key].shape, key
        assert np.array_equal(ours[key], theirs[key]), key


def test_average_moves_toward_the_weights(native_kernels):
    """The formula itself (so that bit-equality above is not two copies of one mistake): after one update at the
    ramped decay d = min(0.99, 2/11), shadow = d * start + (1 - d) * new."""
    kernels.configure(enabled=True, threads=2)
    paddle.seed(1)
    model = _Odd()
    start = model.b.weight.numpy().copy()
    ema = ModelEMA(model, decay=0.99)
    with paddle.no_grad():
        model.b.weight.set_value(model.b.weight + 1.0)
    ema.update(model)
    d = 2 / 11
    np.testing.assert_allclose(ema.weights()["b.weight"].numpy(), d * start + (1 - d) * (start + 1.0), rtol=1e-6,
                               atol=1e-6)


def test_entries_training_cannot_move_are_not_copied(native_kernels):
    """A parameter that does not train and (``buffers_move=False``) the buffers keep no copy and are not averaged;
    ``weights()`` and ``state_dict()`` still hold them, as the model has them, in the model's order."""
    kernels.configure(enabled=True, threads=2)
    paddle.seed(2)
    model = _Odd()
    model.register_buffer("stat", paddle.ones([4]))
    model.a.weight.stop_gradient = True
    ema = ModelEMA(model, decay=0.99, buffers_move=False)
    assert set(ema.shadow) == {"a.bias", "b.weight", "b.bias"}
    for step in range(3):
        with paddle.no_grad():
            for p in model.parameters():
                if not p.stop_gradient:
                    p.set_value(p + 1.0)
        ema.update(model)
    weights = ema.weights()
    assert list(weights) == [k for k, v in model.state_dict().items() if v.dtype == paddle.float32]
    assert np.array_equal(weights["a.weight"].numpy(), model.a.weight.numpy())
    assert np.array_equal(weights["stat"].numpy(), np.ones(4, np.float32))
    assert not np.array_equal(weights["b.weight"].numpy(), model.b.weight.numpy())  # averaged: behind the weights
    assert set(ema.state_dict()) == {*weights, EMA_COUNTER_KEY}
    # by default buffers move (BatchNorms that learn their statistics): averaged
    assert "stat" in ModelEMA(model, decay=0.99).shadow
