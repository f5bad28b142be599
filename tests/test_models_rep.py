"""``rep()`` / ``fuse_for_inference``: fusing the re-parameterisable branches leaves eval outputs unchanged."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from workbench.models import zoo
from workbench.models.backbones.pplcnetv3 import LearnableRepLayer
from workbench.models.rep import fuse_for_inference, is_fused

from test_models_pplcnetv3 import CONFIGS, _input, _randomised


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_rep_layer_is_exact(name):
    layer = _randomised(CONFIGS[name])
    layer.eval()
    x = _input(CONFIGS[name])
    with paddle.no_grad():
        literal = layer.branch_sum(x).numpy()
        layer.rep()
        fused = layer(x).numpy()
    assert layer.is_repped
    assert np.abs(literal).max() > 1.0  # a non-trivial output
    np.testing.assert_allclose(fused, literal, rtol=0, atol=1e-5)
    keys = list(layer.state_dict())
    assert "reparam_conv.weight" in keys and "reparam_conv.bias" in keys
    assert not any(key.startswith(("conv_kxk", "conv_1x1", "identity")) for key in keys)
    layer.rep()  # idempotent
    assert layer.is_repped


def _randomise_bn(model, seed=0):
    """Non-trivial BN statistics (the default mean 0 / var 1 would hide fusion mistakes)."""
    rng = np.random.default_rng(seed)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            c = layer.weight.shape[0]
            layer.weight.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
            layer.bias.set_value(rng.normal(0, 0.2, c).astype("float32"))
            layer._mean.set_value(rng.normal(0, 0.2, c).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 2.0, c).astype("float32"))


@pytest.mark.parametrize(
    "name, kwargs, shape",
    [("det_tiny", {}, [2, 3, 96, 128]), ("rec_tiny", {"num_classes": 40}, [2, 3, 48, 160])],
)
def test_fuse_for_inference_whole_model(name, kwargs, shape):
    paddle.seed(0)
    model = zoo.build_model(name, **kwargs)
    _randomise_bn(model)
    model.eval()
    x = paddle.to_tensor(np.random.default_rng(1).normal(size=shape).astype("float32"))
    with paddle.no_grad():
        before = model(x).numpy()
        features_before = model.backbone(x)
    n_layers = sum(isinstance(layer, LearnableRepLayer) for layer in model.sublayers())
    assert n_layers > 0 and not is_fused(model)

    assert fuse_for_inference(model) is model
    assert is_fused(model) and not model.training
    with paddle.no_grad():
        after = model(x).numpy()
        features_after = model.backbone(x)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5)
    if isinstance(features_before, list):  # det: 4 maps
        pairs = list(zip(features_before, features_after))
    else:
        pairs = [(features_before, features_after)]
    for a, b in pairs:
        scale = float(np.abs(a.numpy()).max())
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-5 * max(1.0, scale))
    assert not any(".conv_kxk." in key for key in model.state_dict())


def test_fuse_can_drop_training_only_branches():
    model = zoo.build_model("rec_tiny", num_classes=40)
    fuse_for_inference(model, drop_training_branches=True)
    keys = list(model.state_dict())
    assert not any(key.startswith(("head.gtc_head", "head.before_gtc")) for key in keys)
    with paddle.no_grad():
        probs = model(paddle.rand([1, 3, 48, 96]))
    assert list(probs.shape) == [1, 12, 40]

    det = fuse_for_inference(zoo.build_model("det_tiny"), drop_training_branches=True)
    assert not any(key.startswith("head.thresh") for key in det.state_dict())
