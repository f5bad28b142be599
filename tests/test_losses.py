"""Losses on small hand-checkable problems (the parity tests cover them on real model outputs)."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from workbench.losses.ctc import CTCLoss, ctc_loss
from workbench.losses.db import DBLoss, balanced_dice_loss, dice_loss, masked_l1_loss
from workbench.losses.multi import MultiLoss
from workbench.losses.nrtr import NRTRLoss, smoothed_cross_entropy


# ---------------------------------------------------------------------------------------------- CTC


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _ctc_nll_numpy(logits, label):
    """Textbook CTC forward algorithm in float64 (blank 0): -log p(label | logits)."""
    logp = _log_softmax(logits.astype(np.float64))
    ext = [0]
    for c in label:
        ext += [int(c), 0]
    steps, states = logp.shape[0], len(ext)
    alpha = np.full((steps, states), -np.inf)
    alpha[0, 0] = logp[0, ext[0]]
    if states > 1:
        alpha[0, 1] = logp[0, ext[1]]
    for t in range(1, steps):
        for s in range(states):
            terms = [alpha[t - 1, s]]
            if s >= 1:
                terms.append(alpha[t - 1, s - 1])
            if s >= 2 and ext[s] != 0 and ext[s] != ext[s - 2]:
                terms.append(alpha[t - 1, s - 2])
            alpha[t, s] = np.logaddexp.reduce(terms) + logp[t, ext[s]]
    tail = [alpha[-1, -1]] + ([alpha[-1, -2]] if states > 1 else [])
    return -np.logaddexp.reduce(tail)


@pytest.fixture()
def ctc_problem():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(3, 7, 6)) * 2).astype(np.float32)
    labels = np.zeros((3, 4), dtype=np.int64)
    texts = [[1, 1, 2], [3], [2, 4, 2, 5]]  # a repeat (needs a blank between), a single char, a full row
    for i, text in enumerate(texts):
        labels[i, : len(text)] = text
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    return logits, labels, lengths, texts


def test_ctc_matches_numpy_forward_algorithm(ctc_problem):
    logits, labels, lengths, texts = ctc_problem
    per_sample = ctc_loss(paddle.to_tensor(logits), paddle.to_tensor(labels), paddle.to_tensor(lengths))
    expected = np.array([_ctc_nll_numpy(logits[i], text) for i, text in enumerate(texts)])
    np.testing.assert_allclose(per_sample.numpy(), expected, rtol=1e-5)

    out = CTCLoss()({"ctc": paddle.to_tensor(logits)}, {"label_ctc": labels, "length": lengths})
    assert set(out) == {"loss"} and out["loss"].shape == []
    np.testing.assert_allclose(float(out["loss"]), expected.mean(), rtol=1e-5)


def test_ctc_gradient_matches_finite_differences(ctc_problem):
    logits, labels, lengths, texts = ctc_problem
    x = paddle.to_tensor(logits)
    x.stop_gradient = False
    CTCLoss()({"ctc": x}, {"label_ctc": labels, "length": lengths})["loss"].backward()
    grad = x.grad.numpy()

    def mean_nll(values):
        return np.mean([_ctc_nll_numpy(values[i], text) for i, text in enumerate(texts)])

    rng = np.random.default_rng(1)
    for _ in range(8):
        index = tuple(rng.integers(0, n) for n in logits.shape)
        step = np.zeros_like(logits, dtype=np.float64)
        step[index] = 1e-4
        numeric = (mean_nll(logits + step) - mean_nll(logits - step)) / 2e-4
        assert abs(grad[index] - numeric) < 1e-3, (index, grad[index], numeric)


# ---------------------------------------------------------------------------------------------- NRTR


def test_smoothed_cross_entropy_is_upstreams_distribution():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 7)).astype(np.float32)
    targets = np.array([1, 0, 6, 3, 3])
    eps, classes = 0.1, 7
    q = np.full((5, classes), eps / (classes - 1))
    q[np.arange(5), targets] = 1 - eps
    expected = -(q * _log_softmax(logits.astype(np.float64))).sum(-1)
    ours = smoothed_cross_entropy(paddle.to_tensor(logits), paddle.to_tensor(targets), eps)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5)


def test_nrtr_loss_uses_next_tokens_and_skips_padding():
    rng = np.random.default_rng(1)
    # two samples, texts of length 2 and 1 -> S = max(length) + 1 = 3 decoder steps
    label_gtc = np.array([[2, 7, 8, 3, 0, 0], [2, 9, 3, 0, 0, 0]], dtype=np.int64)
    length = np.array([2, 1], dtype=np.int64)
    logits = rng.normal(size=(2, 3, 10)).astype(np.float32)
    out = NRTRLoss()({"gtc": paddle.to_tensor(logits)}, {"label_gtc": label_gtc, "length": length})

    targets = label_gtc[:, 1:4]  # [[7, 8, 3], [9, 3, 0]]: 5 real targets, one pad
    rows = smoothed_cross_entropy(paddle.to_tensor(logits.reshape(6, 10)), paddle.to_tensor(targets.reshape(6)))
    keep = targets.reshape(6) != 0
    np.testing.assert_allclose(float(out["loss"]), rows.numpy()[keep].mean(), rtol=1e-6)
    assert keep.sum() == 5


def test_multi_loss_is_weighted_sum(ctc_problem):
    logits, labels, lengths, _ = ctc_problem
    rng = np.random.default_rng(2)
    label_gtc = np.array([[2, 5, 5, 6, 3], [2, 7, 3, 0, 0], [2, 6, 8, 6, 9]], dtype=np.int64)
    label_gtc = np.concatenate([label_gtc, np.array([[0], [0], [3]])], axis=1)
    gtc_logits = rng.normal(size=(3, 5, 10)).astype("float32")
    predictions = {"ctc": paddle.to_tensor(logits), "gtc": paddle.to_tensor(gtc_logits)}
    batch = {"label_ctc": labels, "label_gtc": label_gtc, "length": lengths}
    single = MultiLoss()(predictions, batch)
    weighted = MultiLoss(ctc_weight=0.5, nrtr_weight=2.0)(predictions, batch)
    ctc = float(CTCLoss()(predictions, batch)["loss"])
    nrtr = float(NRTRLoss()(predictions, batch)["loss"])
    np.testing.assert_allclose(float(single["loss"]), ctc + nrtr, rtol=1e-6)
    np.testing.assert_allclose(float(weighted["loss_ctc"]), 0.5 * ctc, rtol=1e-6)
    np.testing.assert_allclose(float(weighted["loss_nrtr"]), 2.0 * nrtr, rtol=1e-6)
    np.testing.assert_allclose(float(weighted["loss"]), 0.5 * ctc + 2.0 * nrtr, rtol=1e-6)


# ---------------------------------------------------------------------------------------------- DB


def _t(array):
    return paddle.to_tensor(np.asarray(array, dtype=np.float32))


def test_dice_and_masked_l1_by_hand():
    pred = _t([[0.5, 1.0], [0.0, 0.25]])
    gt = _t([[1, 1], [0, 0]])
    mask = _t([[1, 1], [1, 0]])
    # intersection 1.5, sum(pred*mask) 1.5, sum(gt*mask) 2 -> 1 - 3 / 3.5
    np.testing.assert_allclose(float(dice_loss(pred, gt, mask)), 1 - 3 / (3.5 + 1e-6), rtol=1e-6)
    # |pred - gt| * mask = 0.5, 0, 0, (0.25 masked out) -> 0.5 / 3
    np.testing.assert_allclose(float(masked_l1_loss(pred, gt, mask)), 0.5 / (3 + 1e-6), rtol=1e-6)


def test_balanced_dice_factor():
    rng = np.random.default_rng(0)
    pred = _t(rng.uniform(size=(1, 8, 8)))
    gt = np.zeros((1, 8, 8), np.float32)
    gt[0, 2:4, 2:5] = 1  # 6 positives, 58 negatives -> Nn = min(58, 18) = 18
    mask = np.ones_like(gt)
    dice = float(dice_loss(pred, _t(gt), _t(mask)))
    balanced = float(balanced_dice_loss(pred, _t(gt), _t(mask), negative_ratio=3))
    np.testing.assert_allclose(balanced, dice * (6 + 18) / (6 + 18 + 1e-6), rtol=1e-6)
    # no negatives at all -> sum(pos) / (Np + eps)
    all_text = np.ones_like(gt)
    balanced = float(balanced_dice_loss(pred, _t(all_text), _t(mask)))
    np.testing.assert_allclose(balanced, float(dice_loss(pred, _t(all_text), _t(mask))) * 64 / (64 + 1e-6), rtol=1e-6)


def test_db_loss_parts_and_total():
    rng = np.random.default_rng(0)
    maps = _t(rng.uniform(0.01, 0.99, size=(2, 3, 16, 16)))
    shrink_map = (rng.uniform(size=(2, 16, 16)) > 0.7).astype(np.float32)
    batch = {
        "shrink_map": shrink_map,
        "shrink_mask": np.ones_like(shrink_map),
        "threshold_map": rng.uniform(0.3, 0.7, size=(2, 16, 16)).astype(np.float32),
        "threshold_mask": (rng.uniform(size=(2, 16, 16)) > 0.5).astype(np.float32),
    }
    out = DBLoss()({"maps": maps}, batch)
    assert set(out) == {"loss", "loss_shrink_maps", "loss_threshold_maps", "loss_binary_maps", "loss_cbn"}
    sm, mk = _t(batch["shrink_map"]), _t(batch["shrink_mask"])
    expected_shrink = 5 * float(balanced_dice_loss(maps[:, 0], sm, mk))
    np.testing.assert_allclose(float(out["loss_shrink_maps"]), expected_shrink, rtol=1e-6)
    np.testing.assert_allclose(
        float(out["loss_threshold_maps"]),
        10 * float(masked_l1_loss(maps[:, 1], _t(batch["threshold_map"]), _t(batch["threshold_mask"]))),
        rtol=1e-6,
    )
    np.testing.assert_allclose(float(out["loss_binary_maps"]), float(dice_loss(maps[:, 2], sm, mk)), rtol=1e-6)
    assert float(out["loss_cbn"]) == 0.0
    parts = sum(float(out[k]) for k in ("loss_shrink_maps", "loss_threshold_maps", "loss_binary_maps", "loss_cbn"))
    np.testing.assert_allclose(float(out["loss"]), parts, rtol=1e-6)

    # PFHeadLocal adds a cbn map: balanced dice, unscaled
    with_cbn = DBLoss()({"maps": maps, "cbn_maps": maps[:, :1]}, batch)
    np.testing.assert_allclose(float(with_cbn["loss_cbn"]), float(balanced_dice_loss(maps[:, 0], sm, mk)), rtol=1e-6)


def test_losses_backpropagate():
    maps = _t(np.full((1, 3, 8, 8), 0.5))
    maps.stop_gradient = False
    shrink = np.zeros((1, 8, 8), np.float32)
    shrink[0, 2:5, 2:5] = 1
    batch = {"shrink_map": shrink, "shrink_mask": np.ones_like(shrink), "threshold_map": np.full_like(shrink, 0.3),
             "threshold_mask": np.ones_like(shrink)}
    DBLoss()({"maps": maps}, batch)["loss"].backward()
    grad = maps.grad.numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    # raising the shrink prediction on text pixels lowers the loss
    assert grad[0, 0][shrink[0] == 1].max() < 0


def test_missing_batch_key_is_named():
    batch = {"shrink_map": np.zeros((1, 4, 4)), "shrink_mask": np.ones((1, 4, 4))}
    with pytest.raises(KeyError, match="threshold_map"):
        DBLoss()({"maps": _t(np.zeros((1, 3, 4, 4)))}, batch)
