"""The DB head's ``fix_nan`` (upstream zeroes NaNs after each ReLU of a branch in training): skipped where the
ReLU already maps NaN to 0 with a zero gradient (Paddle's CPU ReLU), which must change nothing -- the same maps and
gradients bit for bit, and NaNs still zeroed."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from workbench.models.heads import db


@pytest.fixture
def where_forced(monkeypatch):
    """Run upstream's ``where(isnan(x), 0, x)`` whatever the ReLU does."""
    def force():
        monkeypatch.setattr(db, "_relu_zeroes_nans", lambda x: False)
    return force


def _train_step(head, x0):
    head.clear_gradients()
    x = paddle.to_tensor(x0, stop_gradient=False)
    maps = head(x)["maps"]
    (maps * paddle.linspace(-1, 1, maps.shape[-1])).sum().backward()
    return [maps.numpy(), x.grad.numpy()] + [p.grad.numpy() for p in head.parameters() if p.grad is not None]


def test_cpu_relu_zeroes_nans(monkeypatch):
    x = paddle.to_tensor(np.array([np.nan, -1.0, 2.0], np.float32))
    assert db._relu_zeroes_nans(x)
    monkeypatch.setattr(db, "_RELU_ZEROES_NANS", {})  # probe again, this time from under no_grad
    with paddle.no_grad():
        assert db._relu_zeroes_nans(x)  # the probe records its own gradient
    assert db._RELU_ZEROES_NANS  # it did probe (not a cached answer)


def test_skipping_the_where_changes_nothing(where_forced):
    paddle.seed(0)
    head = db.DBHead(16, fix_nan=True)
    head.train()
    x0 = np.random.default_rng(3).normal(0, 1, (2, 16, 10, 12)).astype(np.float32)
    skipped = _train_step(head, x0)
    where_forced()
    upstream = _train_step(head, x0)
    assert len(skipped) == len(upstream) > 2
    for a, b in zip(skipped, upstream):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("force", [False, True])
def test_nans_are_zeroed_either_way(where_forced, force):
    if force:
        where_forced()
    x = paddle.to_tensor(np.array([[np.nan, -1.0], [2.0, np.inf]], np.float32), stop_gradient=False)
    y = db._zero_nans_after_relu(F.relu(x))
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), [[0.0, 0.0], [2.0, np.inf]])
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.0], [1.0, 1.0]])
