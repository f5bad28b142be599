"""``rep()`` / ``fuse_for_inference``: fusing the re-parameterisable branches leaves eval outputs unchanged."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from workbench.models import zoo
from workbench.models.backbones.pplcnetv3 import LCNetV3Block, LearnableAffineBlock, LearnableRepLayer
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


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fold_for_deployment_leaves_one_conv_and_the_same_function(name):
    """Deployment folds ``lab`` into the fused conv and bakes ``act.lab`` as constants: same outputs, no affine
    parameters left (upstream's inference layout is what importers need, so folding is a separate step)."""
    from workbench.models.backbones.pplcnetv3 import ConstantAffine

    layer = _randomised(CONFIGS[name])
    layer.eval()
    x = _input(CONFIGS[name])
    with pytest.raises(RuntimeError, match="rep"):
        layer.fold_for_deployment()
    with paddle.no_grad():
        literal = layer.branch_sum(x).numpy()
        layer.rep()
        layer.fold_for_deployment()
        folded = layer(x).numpy()
        layer.fold_for_deployment()  # idempotent
        again = layer(x).numpy()
    np.testing.assert_allclose(folded, literal, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(again, folded)
    assert isinstance(layer.lab, ConstantAffine) and isinstance(layer.act.lab, ConstantAffine)
    assert (layer.act.lab.scale, layer.act.lab.bias) == pytest.approx((0.9, -0.1))
    assert sorted(layer.state_dict()) == ["reparam_conv.bias", "reparam_conv.weight"]


def test_fold_for_deployment_in_the_exported_graph_removes_the_elementwise_passes():
    """Traced as evaluation and export trace it: the affines become ``scale`` ops (one per activation), and no
    multiply / add with a [1]-shaped parameter is left around the rep convs."""
    model = zoo.build_model("rec_tiny", num_classes=40)
    _randomise_bn(model)
    for layer in model.sublayers():
        if isinstance(layer, LearnableRepLayer):
            layer.lab.scale.set_value(np.array([1.1], "float32"))
            layer.act.lab.bias.set_value(np.array([0.05], "float32"))
    x = paddle.to_tensor(np.random.default_rng(2).normal(size=[2, 3, 48, 96]).astype("float32"))
    model.eval()
    with paddle.no_grad():
        before = model(x).numpy()

    def ops(fold: bool) -> list[str]:
        import copy

        fused = fuse_for_inference(copy.deepcopy(model), drop_training_branches=True, fold_for_deployment=fold)
        static = paddle.jit.to_static(fused, input_spec=[paddle.static.InputSpec([None, 3, 48, None], "float32")],
                                      full_graph=True)
        with paddle.no_grad():
            np.testing.assert_allclose(static(x).numpy(), before, rtol=0, atol=1e-5)
        program = static.forward.concrete_program.main_program
        return [op.name() for op in program.global_block().ops]

    plain, folded = ops(False), ops(True)
    n_rep = sum(isinstance(layer, LearnableRepLayer) for layer in model.sublayers())
    assert plain.count("pd_op.multiply") - folded.count("pd_op.multiply") >= 2 * n_rep
    assert folded.count("pd_op.scale") > plain.count("pd_op.scale")


def _randomise_affines(model, seed=3):
    """LAB scales / biases away from the identity (the defaults 1 / 0 would make every fold a no-op)."""
    rng = np.random.default_rng(seed)
    for layer in model.sublayers():
        if isinstance(layer, LearnableAffineBlock):
            layer.scale.set_value(rng.uniform(0.7, 1.3, 1).astype("float32"))
            layer.bias.set_value(rng.normal(0, 0.2, 1).astype("float32"))


@pytest.mark.parametrize(
    "name, kwargs, shape",
    [("det_tiny", {}, [2, 3, 96, 128]), ("rec_tiny", {"num_classes": 40}, [2, 3, 48, 160])],
)
def test_deployment_folds_keep_the_function(name, kwargs, shape):
    """``fold_for_deployment=True`` (what evaluation and export run): the LAB affines folded into the rep convs, the
    depthwise activation's affine moved into the pointwise 1x1 conv of blocks without squeeze-excite, the DB
    branches' BatchNorm after the transposed conv folded into it -- and the same outputs."""
    paddle.seed(0)
    model = zoo.build_model(name, **kwargs)
    _randomise_bn(model)
    _randomise_affines(model)
    model.eval()
    x = paddle.to_tensor(np.random.default_rng(1).normal(size=shape).astype("float32"))
    with paddle.no_grad():
        before = model(x).numpy()
        fuse_for_inference(model, drop_training_branches=True, fold_for_deployment=True)
        after = model(x).numpy()
        fuse_for_inference(model, drop_training_branches=True, fold_for_deployment=True)  # idempotent
        again = model(x).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5 * max(1.0, float(np.abs(before).max())))
    np.testing.assert_array_equal(again, after)
    blocks = [layer for layer in model.sublayers() if isinstance(layer, LCNetV3Block)]
    movable = [b for b in blocks if b.dw_conv.use_act and not b.use_se]  # stride-2 depthwise layers have no act
    assert movable and len(movable) < len(blocks)
    for block in blocks:
        moved = (block.dw_conv.act.lab.scale, block.dw_conv.act.lab.bias) == (1.0, 0.0)
        assert moved == (block in movable), block.full_name()
    if name == "det_tiny":
        branch = model.head.binarize
        assert isinstance(branch.conv_bn2, paddle.nn.Identity)
        assert not any(key.startswith("head.binarize.conv_bn2") for key in model.state_dict())


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_upsample_nearest_is_interpolate(factor):
    """The transposed-conv form gives exactly ``interpolate(mode="nearest")``, forward and gradient."""
    import paddle.nn.functional as F

    from workbench.models.ops import upsample_nearest

    data = np.random.default_rng(factor).normal(size=[2, 3, 5, 7]).astype("float32")
    grad = paddle.to_tensor(np.random.default_rng(9).normal(size=[2, 3, 5 * factor, 7 * factor]).astype("float32"))
    outs, grads = [], []
    for fn in (lambda t: upsample_nearest(t, factor), lambda t: F.interpolate(t, scale_factor=factor, mode="nearest")):
        x = paddle.to_tensor(data, stop_gradient=False)
        y = fn(x)
        (y * grad).sum().backward()
        outs.append(y.numpy())
        grads.append(x.grad.numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    # each input gradient sums factor^2 output gradients, the two ops in their own order: both must equal the exact
    # (float64) sum within float32's worst-case summation error, (n - 1) * eps * sum|terms| (at x8 the two orders
    # differ by 3e-6 after some earlier tests changed the math thread count)
    terms = grad.numpy().astype(np.float64).reshape(2, 3, 5, factor, 7, factor)
    exact = terms.sum(axis=(3, 5))
    bound = (factor**2 - 1) * np.finfo(np.float32).eps * np.abs(terms).sum(axis=(3, 5))
    for got in grads:
        assert np.all(np.abs(got - exact) <= bound)
