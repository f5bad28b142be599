"""``model.recompute`` (``workbench/models/recompute.py``): recomputed blocks give the step an ordinary step gives --
loss, every gradient, BatchNorm running statistics counted once -- keep less for the backward, and stay what they
are in evaluation and in copies."""

from __future__ import annotations

import copy

import numpy as np
import paddle
import pytest

from workbench.errors import ConfigError
from workbench.models.recompute import recompute_sublayers
from workbench.models.zoo import build_model

from tests.tiny_runs import det_config, train

_BLOCKS = ["backbone.blocks2.*", "backbone.blocks3.*", "backbone.blocks4.*"]


def _model(recompute, state=None):
    paddle.seed(3)
    model = build_model("PP-OCRv5_mobile_det")
    if state is not None:
        model.set_state_dict(state)
    recompute_sublayers(model, recompute)
    model.train()
    return model


def _step(model, image, weights):
    maps = model(paddle.to_tensor(image))["maps"]
    loss = (maps * paddle.to_tensor(weights)).sum()
    loss.backward()
    grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters() if p.grad is not None}
    state = {n: t.numpy().copy() for n, t in model.state_dict().items()}  # BatchNorm statistics included
    assert sum(n.endswith("._mean") for n in state) > 50
    return float(loss), grads, state


def _inputs(seed=0, size=64):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 1, (2, 3, size, size)).astype(np.float32),
            rng.normal(0, 1, (2, 3, size, size)).astype(np.float32))


@pytest.mark.parametrize("recompute", [_BLOCKS, ["head.*.tail"]], ids=["blocks", "db-tails"])
def test_same_step_as_without(native_kernels, recompute):
    plain = _model([])
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    recomputed = _model(recompute, state)
    image, weights = _inputs()
    loss_a, grads_a, buffers_a = _step(plain, image, weights)
    loss_b, grads_b, buffers_b = _step(recomputed, image, weights)
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 100
    # A block input's gradient (several consumers) is summed in another order, a float32 rounding that gradients
    # which are nearly zero by construction (a BN's shift ahead of a batch-statistics BN: 1e-4 against conv1's
    # 3e3 here) show as large relative changes: each tensor within 1e-3 of its largest entry, at least 1e-6 of
    # the model's largest gradient. A gradient counted twice or lost is far outside this.
    largest = max(float(np.abs(g).max()) for g in grads_a.values())
    for name in grads_a:
        scale = max(float(np.abs(grads_a[name]).max()), 1e-3 * largest)
        np.testing.assert_allclose(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-3 * scale, err_msg=name)
    # running statistics updated once, by the first forward only (the second run's update is undone)
    for name in buffers_a:
        np.testing.assert_allclose(buffers_b[name], buffers_a[name], rtol=1e-6, atol=1e-7, err_msg=name)


def _kept_after_forward(recompute, image, weights) -> int:
    """Bytes of tensors a training forward of a fresh model (``model.recompute=recompute``) holds for its backward."""
    from paddle.base import core

    model = _model(recompute)
    before = core.host_memory_stat_current_value("Allocated", 0)
    maps = model(paddle.to_tensor(image))["maps"]
    kept = core.host_memory_stat_current_value("Allocated", 0) - before
    (maps * paddle.to_tensor(weights)).sum().backward()
    return kept


def test_keeps_less_for_the_backward(native_kernels):
    image, weights = _inputs(size=128)
    # the backbone holds 64 % of what a forward keeps here
    kept = {bool(r): _kept_after_forward(r, image, weights) for r in ([], ["backbone.blocks*.*"])}
    assert kept[True] < 0.6 * kept[False], kept


def test_db_tails_keep_a_stride2_map_less_each(native_kernels):
    """``head.*.tail``: each DB branch's ReLU output after ``conv_bn2`` (kept by ``conv3``) is not held, only
    ``conv2``'s output the part starts from: one 24 x (H/2 x W/2) map per branch less, at least, after the forward."""
    image, weights = _inputs(size=128)
    kept = {bool(r): _kept_after_forward(r, image, weights) for r in ([], ["head.*.tail"])}
    one_map = 2 * 24 * 64 * 64 * 4  # batch 2, 24 channels at stride 2, float32
    assert kept[False] - kept[True] >= 2 * one_map, kept  # two branches


def test_parts_are_chosen_by_name_and_outermost_wins():
    assert recompute_sublayers(build_model("PP-OCRv5_mobile_det"), ["head.*.tail"]) == [
        "head.binarize.tail", "head.thresh.tail"]
    assert recompute_sublayers(build_model("PP-OCRv5_mobile_det"), ["head.*"]) == [
        "head.binarize", "head.thresh"]  # whole branches: their tails run inside them
    with pytest.raises(ConfigError, match="head.binarize.neck"):
        recompute_sublayers(build_model("PP-OCRv5_mobile_det"), ["head.binarize.neck"])


def test_outermost_matches_only_and_unknown_names_fail():
    model = build_model("PP-OCRv5_mobile_det")
    chosen = recompute_sublayers(model, ["backbone.blocks3*"])
    assert chosen == ["backbone.blocks3"]  # its blocks and their layers run inside it
    with pytest.raises(ConfigError, match="backbone.blocks9"):
        recompute_sublayers(build_model("PP-OCRv5_mobile_det"), ["backbone.blocks9.*"])


def test_a_block_that_returns_more_than_a_tensor_is_named(native_kernels):
    model = _model(["head"])  # the DB head returns its maps in a dict in training
    image, _ = _inputs()
    with pytest.raises(ConfigError, match=r"model.recompute: head returns a dict.*head\.\*"):
        model(paddle.to_tensor(image))


def test_amp_is_refused_with_recompute():
    from workbench.config.schema import TrainConfig
    from workbench.engine.trainer import amp_plan

    cfg = TrainConfig(task="det")
    cfg.trainer.amp.enabled = True
    assert amp_plan(cfg, "gpu")["enabled"]
    cfg.model.recompute = ["backbone.blocks2.*"]
    with pytest.raises(ConfigError, match="model.recompute does not combine with trainer.amp"):
        amp_plan(cfg, "gpu")


def test_copies_recompute_themselves_and_eval_is_plain(native_kernels):
    model = _model(_BLOCKS)
    clone = copy.deepcopy(model)
    for p in clone.backbone.blocks3.parameters():
        p.set_value(paddle.zeros_like(p))  # the copy computes with its own weights, not the original's
    model.eval(), clone.eval()
    image, _ = _inputs()
    with paddle.no_grad():
        a, b = model(paddle.to_tensor(image)), clone(paddle.to_tensor(image))
    assert type(clone.backbone.blocks3[0]) is type(model.backbone.blocks3[0])
    assert not np.allclose(a.numpy(), b.numpy())


def test_a_training_step_through_wb_train_is_the_same(shared_dir, tmp_path):
    """Through ``wb train`` (batch statistics, Adam): after a step the BatchNorm statistics are the same (counted
    once) and every conv weight moved as without recompute (Adam's first step moves each by about lr, so a
    gradient that never arrived is lr off; sums in another order are far inside lr / 10)."""
    lr = 5e-4
    runs = {}
    for name, recompute in (("plain", []), ("recomputed", ["backbone.*", "neck.*"])):
        run = train(det_config(shared_dir, tmp_path / name, trainer__max_steps=1, optim__lr=lr,
                               model__recompute=recompute))
        runs[name] = {k: np.asarray(v) for k, v in
                      paddle.load(str(run / "checkpoints" / "latest" / "model.pdparams")).items()}
    plain, recomputed = runs["plain"], runs["recomputed"]
    statistics = [k for k in plain if k.endswith(("._mean", "._variance"))]
    convs = [k for k in plain if k.endswith(".weight") and plain[k].ndim == 4]
    assert len(statistics) > 20 and len(convs) > 20
    for key in statistics:
        np.testing.assert_allclose(recomputed[key], plain[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for key in convs:
        np.testing.assert_allclose(recomputed[key], plain[key], rtol=0, atol=lr / 10, err_msg=key)
