"""PPLCNetV3's re-parameterisable layer: its fast train/eval paths compute upstream's literal branch sum."""

from __future__ import annotations

import copy

import numpy as np
import paddle
import pytest

from workbench.models.backbones.pplcnetv3 import LearnableRepLayer, PPLCNetV3, make_divisible

# (in, out, kernel, stride, groups): every kind of layer the det and rec configs build
CONFIGS = {
    "dw3_identity": (16, 16, 3, 1, 16),
    "dw3_stride2": (16, 16, 3, 2, 16),
    "dw3_stride1x2": (16, 16, 3, (1, 2), 16),
    "dw5_identity_stacked": (16, 16, 5, 1, 16),
    "dw5_stride2x1_stacked": (16, 16, 5, (2, 1), 16),
    "pw_identity": (24, 24, 1, 1, 1),
    "pw_widen": (16, 32, 1, 1, 1),
}


def _randomised(config, seed=0, branches=4) -> LearnableRepLayer:
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    cin, cout, k, stride, groups = config
    layer = LearnableRepLayer(cin, cout, k, stride, groups=groups, num_branches=branches)
    for sub in layer.sublayers():
        if isinstance(sub, paddle.nn.BatchNorm2D):
            c = sub.weight.shape[0]
            sub.weight.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
            sub.bias.set_value(rng.normal(0, 0.5, c).astype("float32"))
            sub._mean.set_value(rng.normal(0, 0.3, c).astype("float32"))
            sub._variance.set_value(rng.uniform(0.5, 2.0, c).astype("float32"))
    layer.lab.scale.set_value(np.array([1.3], "float32"))
    layer.lab.bias.set_value(np.array([0.2], "float32"))
    layer.act.lab.scale.set_value(np.array([0.9], "float32"))
    layer.act.lab.bias.set_value(np.array([-0.1], "float32"))
    return layer


def _input(config, seed=1):
    rng = np.random.default_rng(seed)
    return paddle.to_tensor(rng.normal(0.3, 1.2, (2, config[0], 10, 12)).astype("float32"))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_eval_fused_path_equals_branch_sum(name):
    layer = _randomised(CONFIGS[name])
    layer.eval()
    x = _input(CONFIGS[name])
    with paddle.no_grad():
        np.testing.assert_allclose(layer(x).numpy(), layer.branch_sum(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_train_path_equals_branch_sum(name):
    config = CONFIGS[name]
    fast = _randomised(config)
    reference = copy.deepcopy(fast)
    fast.train()
    reference.train()
    x_fast = _input(config)
    x_ref = _input(config)
    x_fast.stop_gradient = False
    x_ref.stop_gradient = False

    out_fast = fast(x_fast)
    out_ref = reference.branch_sum(x_ref)
    weights = paddle.to_tensor(np.random.default_rng(2).normal(size=out_fast.shape).astype("float32"))
    np.testing.assert_allclose(out_fast.numpy(), out_ref.numpy(), rtol=1e-4, atol=1e-5)

    # gradients w.r.t. the input and every trainable parameter
    (out_fast * weights).sum().backward()
    (out_ref * weights).sum().backward()
    np.testing.assert_allclose(x_fast.grad.numpy(), x_ref.grad.numpy(), rtol=1e-3, atol=1e-4)
    ref_params = dict(reference.named_parameters())
    for key, param in fast.named_parameters():
        if param.stop_gradient:
            continue
        if ref_params[key].grad is None:  # e.g. act.lab of a stride-2 layer (no activation)
            assert param.grad is None, key
            continue
        other = ref_params[key].grad.numpy()
        np.testing.assert_allclose(param.grad.numpy(), other, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(other).max()))

    # running statistics moved exactly as each BN layer moves them
    ref_state = reference.state_dict()
    moved = 0
    for key, value in fast.state_dict().items():
        if key.endswith(("_mean", "_variance")):
            np.testing.assert_allclose(value.numpy(), ref_state[key].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
            moved += int(not np.allclose(value.numpy(), _randomised(config).state_dict()[key].numpy()))
    assert moved > 0


def test_stacked_and_pointwise_paths_are_selected():
    assert _randomised(CONFIGS["dw5_identity_stacked"]).stack_branches
    assert _randomised(CONFIGS["dw3_identity"]).stack_branches
    assert not _randomised(CONFIGS["dw3_identity"], branches=1).stack_branches
    assert _randomised(CONFIGS["pw_identity"]).pointwise
    assert not _randomised(CONFIGS["dw3_identity"]).pointwise


def test_activation_skipped_only_for_integer_stride_2():
    assert not _randomised(CONFIGS["dw3_stride2"]).use_act
    assert _randomised(CONFIGS["dw3_stride1x2"]).use_act
    assert _randomised(CONFIGS["dw5_stride2x1_stacked"]).use_act


def test_make_divisible():
    assert make_divisible(16 * 0.75) == 16
    assert make_divisible(512 * 0.95) == 480
    assert make_divisible(256 * 0.95) == 240
    assert make_divisible(20) == 32  # never below 90 % of the request


@pytest.mark.parametrize("det", [True, False])
def test_backbone_output_shapes(det):
    paddle.seed(0)
    net = PPLCNetV3(scale=0.25, det=det, num_branches=1)
    net.eval()
    if det:
        outs = net(paddle.rand([1, 3, 64, 96]))
        expected = [[1, c, 64 // s, 96 // s] for c, s in zip(net.out_channels, (4, 8, 16, 32))]
        assert [list(o.shape) for o in outs] == expected
    else:
        # eval: T = W / 8; train: fixed 40 steps whatever the width
        assert list(net(paddle.rand([1, 3, 48, 160])).shape) == [1, net.out_channels, 1, 20]
        net.train()
        assert list(net(paddle.rand([2, 3, 48, 160])).shape) == [2, net.out_channels, 1, 40]
