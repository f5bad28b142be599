"""PP-OCRv5 server building blocks: PPHGNetV2_B4 (det / text_rec), LKPAN, PFHeadLocal's cbn_layer.

No numeric fixture exists for the server models (too big), so compatibility is checked three ways:
* structure: ordered state-dict (key, shape, dtype) and per-prefix parameter counts equal the official manifests;
* numerics: with the same (randomised) weights our layers reproduce PaddleX's own inference implementation of
  PP-OCRv5_server_det / _rec (different code, different parameter names, the graph that runs in the pipeline);
* behaviour: output shapes, train/eval differences, which parameters receive gradients.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from conftest import require

from workbench.errors import ConfigError
from workbench.models.backbones.pphgnetv2 import (
    REC_TIME_STEPS_TRAIN,
    PPHGNetV2,
    pool_to_sequence,
    pphgnetv2_b4,
)
from workbench.models.heads.pfhead_parts import (
    LocalRefineModule,
    build_cbn_layer,
    fuse_eval_maps,
    refine_shrink_map,
    train_outputs,
)
from workbench.models.necks.lkpan import LKPAN

DET_HEAD_BRANCHES = ("head.binarize", "head.thresh")  # the DBHead branch blocks: not built here


# ----------------------------------------------------------------------------------------------------- helpers
def _entries(prefix: str, layer: nn.Layer) -> list[list]:
    return [[prefix + k, list(v.shape), str(v.dtype).split(".")[-1]] for k, v in layer.state_dict().items()]


def _count_by_prefix(entries: list[list]) -> dict[str, int]:
    counts: Counter = Counter()
    for key, shape, _ in entries:
        counts[".".join(key.split(".")[:2])] += int(np.prod(shape))
    return dict(counts)


def _randomise_batchnorm(layer: nn.Layer, seed: int) -> None:
    """Fresh BatchNorms are the identity in eval mode; give them real statistics so parity tests mean something."""
    rng = np.random.default_rng(seed)
    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, nn.BatchNorm2D):
            c = sub.weight.shape[0]
            sub.weight.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
            sub.bias.set_value(rng.normal(0, 0.1, c).astype("float32"))
            sub._mean.set_value(rng.normal(0, 0.1, c).astype("float32"))
            sub._variance.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))


def _max_rel_diff(a: paddle.Tensor, b: paddle.Tensor) -> float:
    a, b = a.numpy(), b.numpy()
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


# Our (= official training graph) parameter names -> PaddleX inference-model names. Applied in order.
_TO_PADDLEX = [
    (r"^backbone\.stem\.", "backbone.embedder."),
    (r"^backbone\.stages\.", "backbone.encoder.stages."),
    (r"\.aggregation_squeeze_conv\.", ".aggregation.0."),
    (r"\.aggregation_excitation_conv\.", ".aggregation.1."),
    (r"^neck\.ins_conv\.", "neck.input_channel_adjustment_convolution."),
    (r"^neck\.inp_conv\.", "neck.input_feature_projection_convolution."),
    (r"^neck\.pan_head_conv\.", "neck.path_aggregation_head_convolution."),
    (r"^neck\.pan_lat_conv\.", "neck.path_aggregation_lateral_convolution."),
    (r"^neck\.incl(\d)\.", lambda m: f"neck.intraclass_blocks.{int(m.group(1)) - 1}."),
    (r"\.conv1x1_reduce_channel\.", ".conv_reduce_channel."),
    (r"\.conv1x1_return_channel\.", ".conv_final.convolution."),
    (r"(intraclass_blocks\.\d)\.bn\.", r"\1.conv_final.norm."),
    (r"\.v_layer_7x1\.", ".vertical_long_to_small_conv_longratio."),
    (r"\.v_layer_5x1\.", ".vertical_long_to_small_conv_midratio."),
    (r"\.v_layer_3x1\.", ".vertical_long_to_small_conv_shortratio."),
    (r"\.q_layer_1x7\.", ".horizontal_small_to_long_conv_longratio."),
    (r"\.q_layer_1x5\.", ".horizontal_small_to_long_conv_midratio."),
    (r"\.q_layer_1x3\.", ".horizontal_small_to_long_conv_shortratio."),
    (r"\.c_layer_7x7\.", ".symmetric_conv_long_longratio."),
    (r"\.c_layer_5x5\.", ".symmetric_conv_long_midratio."),
    (r"\.c_layer_3x3\.", ".symmetric_conv_long_shortratio."),
    (r"^cbn_layer\.last_3\.conv\.", "local_refinement_module.convolution_backbone.convolution."),
    (r"^cbn_layer\.last_3\.bn\.", "local_refinement_module.convolution_backbone.norm."),
    (r"^cbn_layer\.last_1\.", "local_refinement_module.convolution_final."),
    (r"\.conv\.", ".convolution."),
    (r"\.bn\.", ".normalization."),
]


def _to_paddlex_name(key: str) -> str:
    for pattern, repl in _TO_PADDLEX:
        key = re.sub(pattern, repl, key)
    return key


def _copy_into_paddlex(
    ours: dict[str, paddle.Tensor], theirs: nn.Layer, skip: tuple[str, ...], prefix: str = ""
) -> None:
    """Load our tensors into the PaddleX layer; every one of its entries must receive exactly one of ours.
    ``prefix`` is the PaddleX layer's own name inside its model (the mapping yields full-model names)."""
    mapped = {_to_paddlex_name(k).removeprefix(prefix): v for k, v in ours.items() if not k.startswith(skip)}
    target = theirs.state_dict()
    assert set(mapped) == set(target), (sorted(set(mapped) - set(target))[:5], sorted(set(target) - set(mapped))[:5])
    for k, v in mapped.items():
        assert list(v.shape) == list(target[k].shape), k
    theirs.set_state_dict(mapped)


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def det_manifest(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / "manifests" / "PP-OCRv5_server_det.json").read_text())


@pytest.fixture(scope="module")
def rec_manifest(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / "manifests" / "PP-OCRv5_server_rec.json").read_text())


@pytest.fixture(scope="module")
def det_model():
    paddle.seed(1234)
    backbone = pphgnetv2_b4(det=True)
    neck = LKPAN(backbone.out_channels, out_channels=256, mode="large", intracl=True)
    cbn_layer = build_cbn_layer(256, mode="large")
    return backbone, neck, cbn_layer


@pytest.fixture(scope="module")
def rec_backbone():
    paddle.seed(4321)
    return pphgnetv2_b4(text_rec=True)


def _det_entries(det_model) -> list[list]:
    backbone, neck, cbn_layer = det_model
    return _entries("backbone.", backbone) + _entries("neck.", neck) + _entries("head.cbn_layer.", cbn_layer)


# ------------------------------------------------------------------------------------------- structure (manifest)
def test_det_state_dict_equals_manifest(det_model, det_manifest):
    expected = [e for e in det_manifest["state_dict"] if not e[0].startswith(DET_HEAD_BRANCHES)]
    assert any(e[0].startswith("head.cbn_layer.") for e in expected)
    assert _det_entries(det_model) == expected


def test_rec_backbone_state_dict_equals_manifest(rec_backbone, rec_manifest):
    expected = [e for e in rec_manifest["state_dict"] if e[0].startswith("backbone.")]
    assert _entries("backbone.", rec_backbone) == expected


def test_param_counts_by_prefix_equal_manifest(det_model, rec_backbone, det_manifest, rec_manifest):
    det_expected = {
        k: v for k, v in det_manifest["param_count_by_prefix"].items() if not k.startswith(DET_HEAD_BRANCHES)
    }
    assert _count_by_prefix(_det_entries(det_model)) == det_expected
    rec_expected = {k: v for k, v in rec_manifest["param_count_by_prefix"].items() if k.startswith("backbone.")}
    assert _count_by_prefix(_entries("backbone.", rec_backbone)) == rec_expected
    # Paddle counts BatchNorm statistics as parameters: parameters() and state_dict() must hold the same elements.
    for layer in (*det_model, rec_backbone):
        assert sum(int(np.prod(p.shape)) for p in layer.parameters()) == sum(
            int(np.prod(v.shape)) for v in layer.state_dict().values()
        )


def test_only_batchnorm_statistics_are_frozen(det_model, det_manifest):
    """Trainable = everything but BN running statistics, including the unused ``last_conv`` (as upstream)."""
    frozen = 0
    for layer in det_model:
        for name, p in layer.named_parameters():
            is_stat = name.endswith(("._mean", "._variance"))
            assert p.trainable != is_stat, name
            frozen += 0 if p.trainable else int(np.prod(p.shape))
    # The manifest's frozen total also holds the DB branch blocks' statistics: binarize and thresh each have two
    # BatchNorms over in_channels/4 = 64 channels, i.e. 2 branches x 2 BN x (mean + variance) x 64.
    branch_stats = 2 * 2 * 2 * 64
    assert frozen == det_manifest["num_params"] - det_manifest["num_trainable_params"] - branch_stats


# ------------------------------------------------------------------------------------------------------ shapes
def test_det_forward_shapes_320(det_model):
    backbone, neck, _ = det_model
    backbone.eval()
    neck.eval()
    assert backbone.out_channels == [128, 512, 1024, 2048]
    assert neck.out_channels == 256
    with paddle.no_grad():
        features = backbone(paddle.rand([1, 3, 320, 320]))
        fused = neck(features)
    strides_and_channels = [(4, 128), (8, 512), (16, 1024), (32, 2048)]
    assert [list(f.shape) for f in features] == [[1, c, 320 // s, 320 // s] for s, c in strides_and_channels]
    assert list(fused.shape) == [1, 256, 80, 80]
    assert np.isfinite(fused.numpy()).all()


def test_rec_forward_shape_feeds_svtr_encoder(rec_backbone):
    # The SVTR encoder of the CTC branch reads in_channels = backbone.out_channels = 2048, one row, T steps.
    assert rec_backbone.out_channels == 2048
    x = paddle.rand([2, 3, 48, 320])
    rec_backbone.eval()
    with paddle.no_grad():
        out_eval = rec_backbone(x)
    assert list(out_eval.shape) == [2, 2048, 1, 40]


def test_rec_time_steps_train_fixed_eval_follows_width(rec_backbone):
    x = paddle.rand([1, 3, 48, 160])
    with paddle.no_grad():
        rec_backbone.eval()
        out_eval = rec_backbone(x)
        rec_backbone.train()
        out_train = rec_backbone(x)
    rec_backbone.eval()
    assert list(out_eval.shape) == [1, 2048, 1, 160 // 8]
    assert list(out_train.shape) == [1, 2048, 1, REC_TIME_STEPS_TRAIN]


def test_rec_pooling_train_and_eval_agree_only_for_width_320():
    stage4 = paddle.rand([2, 8, 3, 320 // 4])  # stage-4 map of a 48x320 line
    np.testing.assert_allclose(
        pool_to_sequence(stage4, REC_TIME_STEPS_TRAIN).numpy(), pool_to_sequence(stage4, None).numpy(), atol=1e-6
    )
    wide = paddle.rand([2, 8, 3, 640 // 4])
    assert pool_to_sequence(wide, REC_TIME_STEPS_TRAIN).shape[-1] == 40
    assert pool_to_sequence(wide, None).shape[-1] == 80
    # Eval pooling is only defined for 48-pixel lines (stage-4 height 3); train pooling accepts any height.
    tall = paddle.rand([1, 8, 4, 80])  # a 64-pixel line
    assert list(pool_to_sequence(tall, REC_TIME_STEPS_TRAIN).shape) == [1, 8, 1, 40]
    with pytest.raises(ConfigError, match="48 pixels high"):
        pool_to_sequence(tall, None)


# --------------------------------------------------------------------------------------- train / eval behaviour
def _train_with_frozen_bn(layers) -> None:
    for layer in layers:
        layer.train()
        for sub in layer.sublayers():
            if isinstance(sub, nn.BatchNorm2D):
                sub.eval()


def test_det_train_mode_differs_from_eval_only_through_batchnorm(det_model):
    backbone, neck, _ = det_model
    _randomise_batchnorm(backbone, 0)
    _randomise_batchnorm(neck, 1)
    x = paddle.rand([2, 3, 64, 96])
    with paddle.no_grad():
        backbone.eval()
        neck.eval()
        ref = neck(backbone(x))
        _train_with_frozen_bn([backbone, neck])
        frozen = neck(backbone(x))
        backbone.train()
        neck.train()
        batch_stats = neck(backbone(x))
    backbone.eval()
    neck.eval()
    np.testing.assert_array_equal(frozen.numpy(), ref.numpy())
    assert _max_rel_diff(batch_stats, ref) > 1e-3  # train-mode BN really uses batch statistics


def test_rec_train_mode_with_frozen_bn_equals_eval_at_320(rec_backbone):
    x = paddle.rand([1, 3, 48, 320])
    with paddle.no_grad():
        rec_backbone.eval()
        ref = rec_backbone(x)
        _train_with_frozen_bn([rec_backbone])
        frozen = rec_backbone(x)
    rec_backbone.eval()
    np.testing.assert_allclose(frozen.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5 * float(np.abs(ref.numpy()).max()))


def _params_without_grad(layer: nn.Layer) -> set[str]:
    return {n for n, p in layer.named_parameters() if p.trainable and p.grad is None}


def test_det_backward_reaches_every_parameter_but_the_classifier_leftover(det_model):
    backbone, neck, _ = det_model
    backbone.train()
    neck.train()
    neck(backbone(paddle.rand([2, 3, 64, 64]))).mean().backward()
    assert _params_without_grad(backbone) == {"last_conv.weight"}
    assert _params_without_grad(neck) == set()
    backbone.clear_gradients()
    neck.clear_gradients()
    backbone.eval()
    neck.eval()


def test_rec_backward_reaches_every_parameter_but_the_classifier_leftovers(rec_backbone):
    rec_backbone.train()
    rec_backbone(paddle.rand([2, 3, 48, 64])).mean().backward()
    assert _params_without_grad(rec_backbone) == {"last_conv.weight", "fc.weight", "fc.bias"}
    assert set(PPHGNetV2.UNUSED_IN_FORWARD) == {"last_conv", "fc"}
    rec_backbone.clear_gradients()
    rec_backbone.eval()


# --------------------------------------------------------------------------- numeric parity with PaddleX's models
def test_det_backbone_and_neck_match_paddlex_inference_model(det_model):
    det_mod = require("paddlex.inference.models.text_detection.modeling.pp_ocrv5_server_det")
    cfg_mod = require("paddlex.inference.models.text_detection.modeling._config_pp_ocrv5_server")
    backbone, neck, _ = det_model
    _randomise_batchnorm(backbone, 2)
    _randomise_batchnorm(neck, 3)
    reference = det_mod.PPOCRV5ServerDetModel(cfg_mod.PPOCRV5ServerDetConfig())
    ours = {"backbone." + k: v for k, v in backbone.state_dict().items()}
    ours.update({"neck." + k: v for k, v in neck.state_dict().items()})
    _copy_into_paddlex(ours, reference, skip=("backbone.last_conv",))
    backbone.eval()
    neck.eval()
    reference.eval()
    x = paddle.rand([1, 3, 96, 128])  # not square: catches H/W mix-ups
    with paddle.no_grad():
        features = backbone(x)
        expected_features = reference.backbone(x)
        fused = neck(features)
        expected = reference.neck(expected_features)
    for ours_f, theirs_f in zip(features, expected_features):
        assert _max_rel_diff(ours_f, theirs_f) < 1e-5
    assert _max_rel_diff(fused, expected) < 1e-5


def test_rec_backbone_matches_paddlex_inference_model(rec_backbone):
    rec_mod = require("paddlex.inference.models.text_recognition.modeling.pp_ocrv5_server_rec")
    cfg_mod = require("paddlex.inference.models.text_recognition.modeling._config_pp_ocrv5_server_rec")
    _randomise_batchnorm(rec_backbone, 4)
    reference = rec_mod.PPOCRV5ServerRecModel(cfg_mod.PPOCRV5ServerRecConfig())
    ours = {"backbone." + k: v for k, v in rec_backbone.state_dict().items()}
    _copy_into_paddlex(ours, reference, skip=("backbone.last_conv", "backbone.fc"))
    rec_backbone.eval()
    reference.eval()
    x = paddle.rand([2, 3, 48, 96])
    with paddle.no_grad():
        out = rec_backbone(x)
        expected = reference(x)  # backbone + the eval 3x2 average pool
    assert list(out.shape) == [2, 2048, 1, 12]
    assert _max_rel_diff(out, expected) < 1e-5


# ---------------------------------------------------------------------------------------------- PFHeadLocal parts
def test_cbn_refinement_and_eval_fusion_match_paddlex_head():
    det_mod = require("paddlex.inference.models.text_detection.modeling.pp_ocrv5_server_det")
    cfg_mod = require("paddlex.inference.models.text_detection.modeling._config_pp_ocrv5_server")
    paddle.seed(7)
    head = det_mod.PPOCRV5ServerDetHead(cfg_mod.PPOCRV5ServerDetConfig())
    cbn_layer = build_cbn_layer(256, mode="large")
    _randomise_batchnorm(cbn_layer, 5)
    _randomise_batchnorm(head.binarize_head, 6)
    ours = {"cbn_layer." + k: v for k, v in cbn_layer.state_dict().items()}
    _copy_into_paddlex(ours, head.local_refinement_module, skip=(), prefix="local_refinement_module.")
    head.eval()
    cbn_layer.eval()
    x = paddle.rand([1, 256, 16, 24])  # a neck output
    with paddle.no_grad():
        expected = head(x)
        shrink, feature = head.binarize_head(x)  # feature: after the second BN+ReLU, before the last deconv
        cbn_maps = refine_shrink_map(cbn_layer, shrink, feature)
        fused = fuse_eval_maps(shrink, cbn_maps)
    assert list(feature.shape) == [1, 64, 32, 48]
    assert list(cbn_maps.shape) == list(shrink.shape) == [1, 1, 64, 96]
    assert _max_rel_diff(fused, expected) < 1e-6
    assert _max_rel_diff(fused, shrink) > 1e-3  # the refinement really contributes


def test_train_outputs_follow_upstream_key_semantics():
    n, h, w = 2, 8, 12
    cbn, thresh, binary = (paddle.full([n, 1, h, w], v) for v in (0.25, 0.5, 0.75))
    out = train_outputs(cbn, thresh, binary)
    assert set(out) == {"maps", "distance_maps", "cbn_maps"}
    assert list(out["maps"].shape) == [n, 3, h, w]
    maps = out["maps"].numpy()
    assert (maps[:, 0] == 0.25).all() and (maps[:, 1] == 0.5).all() and (maps[:, 2] == 0.75).all()
    # Upstream quirk kept on purpose: "cbn_maps" carries the binary map, "distance_maps" the refined map.
    assert (out["cbn_maps"].numpy() == 0.75).all()
    assert (out["distance_maps"].numpy() == 0.25).all()


def test_cbn_layer_modes_and_errors():
    assert isinstance(build_cbn_layer(256, "large"), LocalRefineModule)
    assert list(build_cbn_layer(256, "small").last_3.conv.weight.shape) == [32, 65, 3, 3]
    with pytest.raises(ConfigError, match="mode"):
        build_cbn_layer(256, "medium")


def test_configuration_errors():
    with pytest.raises(ConfigError, match="exclusive"):
        pphgnetv2_b4(det=True, text_rec=True)
    with pytest.raises(ConfigError, match="lite"):
        LKPAN([128, 512, 1024, 2048], 256, mode="lite")
    with pytest.raises(ConfigError, match="4 backbone maps"):
        LKPAN([128, 512, 1024], 256)


def test_lkpan_without_intracl_has_no_intracl_blocks():
    neck = LKPAN([8, 16, 32, 64], out_channels=16, intracl=False)
    assert not any(k.startswith("incl") for k in neck.state_dict())
    out = neck([paddle.rand([1, c, 32 // s, 32 // s]) for c, s in zip([8, 16, 32, 64], [1, 2, 4, 8])])
    assert list(out.shape) == [1, 16, 32, 32]


def test_pfheadlocal_eval_and_train_outputs_feed_the_db_loss():
    """The assembled server head: eval = 0.5·(shrink + refined); train = upstream's dict, accepted by DBLoss."""
    import paddle

    from workbench.losses.db import DBLoss
    from workbench.models.heads.db import PFHeadLocal

    paddle.seed(0)
    head = PFHeadLocal(64, k=50, mode="large")
    x = paddle.randn([2, 64, 16, 16])
    head.eval()
    prob = head(x)
    shrink, feature = head.binarize(x, return_features=True)
    assert prob.shape == [2, 1, 64, 64]
    assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0
    assert not paddle.allclose(prob, shrink).item()  # the refinement changes the map
    head.train()
    out = head(x)
    assert sorted(out) == ["cbn_maps", "distance_maps", "maps"]
    assert out["maps"].shape == [2, 3, 64, 64]
    assert paddle.allclose(out["maps"][:, :1], out["distance_maps"]).item()
    gt = (paddle.rand([2, 64, 64]) > 0.7).astype("float32")
    ones = paddle.ones([2, 64, 64])
    losses = DBLoss()(out, {"shrink_map": gt, "shrink_mask": ones, "threshold_map": ones * 0.5,
                            "threshold_mask": ones})
    assert float(losses["loss_cbn"]) > 0
    losses["loss"].backward()
    assert head.cbn_layer.last_1.weight.grad is not None
