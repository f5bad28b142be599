"""PP-OCRv6 building blocks: re-parameterisation (fuse and un-fuse exact), train/eval contracts with the auxiliary DB
branches, the Dice + focal DB loss with auxiliary weights, and the v6 post-processing defaults resolved in one place.

Numbers against independent implementations: ``test_models_paddlex_parity.py`` (PaddleX's own v6 models) and
``test_weights_import_v6.py`` (the stock ONNX graphs under onnxruntime).
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from workbench.errors import ConfigError
from workbench.losses.db import DBLoss, dice_loss, masked_l1_loss
from workbench.models import zoo
from workbench.models.backbones.pplcnetv4 import RepDWConv
from workbench.models.necks.replk import DILATED_BRANCHES, DilatedReparamBlock
from workbench.models.ops import spatial_mean
from workbench.models.rep import calibrate_batch_norms, fuse_for_inference, is_fused, rep_layers


def _randomise_bn(layer, seed):
    rng = np.random.default_rng(seed)
    for bn in layer.sublayers(include_self=True):
        if isinstance(bn, paddle.nn.BatchNorm2D):
            c = bn.weight.shape[0]
            bn.weight.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
            bn.bias.set_value(rng.normal(0, 0.2, c).astype("float32"))
            bn._mean.set_value(rng.normal(0, 0.2, c).astype("float32"))
            bn._variance.set_value(rng.uniform(0.5, 2.0, c).astype("float32"))


def _x(shape, seed=0):
    return paddle.to_tensor(np.random.default_rng(seed).normal(0, 1, shape).astype("float32"))


# ---------------------------------------------------------------------------------------------- re-parameterisation


@pytest.mark.parametrize("make", [lambda: RepDWConv(8, 3)] + [lambda k=k: DilatedReparamBlock(6, k)
                                                               for k in sorted(DILATED_BRANCHES)],
                         ids=["RepDWConv"] + [f"DilatedReparamBlock{k}" for k in sorted(DILATED_BRANCHES)])
def test_fuse_is_exact_and_unfuse_restores_the_function(make):
    paddle.seed(0)
    layer = make()
    _randomise_bn(layer, 1)
    for name, p in layer.named_parameters():  # non-trivial 1x1 / dilated weights (fresh ones may be small)
        if p.ndim == 4:
            p.set_value(np.random.default_rng(len(name)).normal(0, 0.5, p.shape).astype("float32"))
    layer.eval()
    x = _x([2, layer.channels, 13, 11])
    with paddle.no_grad():
        literal = layer(x).numpy()
        kernel, bias = layer.fused_kernel_bias()
        layer.rep()
        fused = layer(x).numpy()
    assert layer.is_repped and sorted(layer.state_dict()) == ["reparam_conv.bias", "reparam_conv.weight"]
    assert np.abs(literal).max() > 1.0
    np.testing.assert_allclose(fused, literal, atol=2e-5)

    fresh = make()  # the training form again, set from the fused conv: the same function
    fresh.unfuse(kernel, bias)
    fresh.eval()
    with paddle.no_grad():
        np.testing.assert_allclose(fresh(x).numpy(), literal, atol=2e-5)
        calibrate_batch_norms(fresh, [x])  # real statistics, same function
        np.testing.assert_allclose(fresh(x).numpy(), literal, atol=2e-5)
    bn = fresh.conv.bn if isinstance(fresh, RepDWConv) else fresh.origin_bn
    assert not np.allclose(bn._variance.numpy(), 1 - bn._epsilon)  # calibrated, not the placeholder


def test_unfused_dilated_branches_start_silent_but_trainable():
    block = DilatedReparamBlock(4, 7)
    block.unfuse(np.random.default_rng(0).normal(0, 1, (4, 1, 7, 7)), np.zeros(4))
    block.train()
    x = _x([2, 4, 9, 9])
    x.stop_gradient = False
    out = block(x)
    ref = block.origin_bn(block.lk_origin(x))
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-6)  # branches add exactly 0, in train mode too
    out.sum().backward()
    assert float(block.dil_bn_k5_1.weight.grad.abs().sum()) > 0  # and can grow


@pytest.mark.parametrize("name", ["PP-OCRv6_tiny_det", "PP-OCRv6_tiny_rec"])
def test_fuse_for_inference_whole_v6_model(name):
    paddle.seed(0)
    kwargs = {"num_classes": 50} if name.endswith("rec") else {}
    model = zoo.build_model(name, **kwargs)
    _randomise_bn(model, 3)
    model.eval()
    x = _x([1, 3, 64, 96] if name.endswith("det") else [2, 3, 48, 96])
    with paddle.no_grad():
        before = model(x).numpy()
        fuse_for_inference(model, drop_training_branches=True)
        after = model(x).numpy()
    assert is_fused(model) and rep_layers(model)
    np.testing.assert_allclose(after, before, atol=1e-5)
    keys = model.state_dict()
    assert not any(".aux_" in k or ".thresh." in k or "gtc_head" in k for k in keys)


def test_spatial_mean_is_the_mean_with_less_rounding():
    x = paddle.to_tensor(np.random.default_rng(0).uniform(0, 10, (1, 4, 240, 168)).astype("float32"))
    exact = x.numpy().astype(np.float64).mean(axis=(2, 3), keepdims=True)
    ours = spatial_mean(x).numpy()
    assert ours.shape == (1, 4, 1, 1)
    assert np.abs(ours - exact).max() < 1e-5 * np.abs(exact).max()


# ---------------------------------------------------------------------------------------------- contracts


def test_v6_det_contract_with_auxiliary_maps_and_a_training_step():
    paddle.seed(0)
    model = zoo.build_model("PP-OCRv6_tiny_det")
    x = _x([2, 3, 128, 128])
    model.eval()
    with paddle.no_grad():
        prob = model(x)
    assert prob.shape == [2, 1, 128, 128]
    model.train()
    out = model(x)
    assert sorted(out) == ["aux_maps_p2", "aux_maps_p3", "aux_maps_p4", "maps"]
    assert all(out[k].shape == [2, 3, 128, 128] for k in out)
    shrink = np.zeros((2, 128, 128), np.float32)
    shrink[:, 40:70, 20:100] = 1
    batch = {"shrink_map": shrink, "shrink_mask": np.ones_like(shrink), "threshold_map": np.full_like(shrink, 0.4),
             "threshold_mask": np.ones_like(shrink)}
    loss = DBLoss(**zoo.get_spec("PP-OCRv6_tiny_det").loss)(out, batch)
    assert {"loss_aux_maps_p4", "loss_aux_maps_p3", "loss_aux_maps_p2"} <= set(loss)
    loss["loss"].backward()
    for key in ("head.aux_binarize_p4.conv1.weight", "head.aux_thresh_p2.conv3.bias", "neck.ins_conv.3.in_conv.weight",
                "backbone.stem.stem1.conv.weight"):
        grad = dict(model.named_parameters())[key].grad
        assert grad is not None and float(grad.abs().sum()) > 0, key


@pytest.mark.parametrize("name, neck_channels", [("PP-OCRv6_tiny_rec", 160), ("PP-OCRv6_small_rec", 120)])
def test_v6_rec_contract(name, neck_channels):
    paddle.seed(0)
    model = zoo.build_model(name, num_classes=40, nrtr_dim=64, nrtr_layers=1)
    x = _x([2, 3, 48, 160])
    model.eval()
    with paddle.no_grad():
        probs = model(x)
    assert probs.shape == [2, 20, 40]
    np.testing.assert_allclose(probs.numpy().sum(-1), 1.0, rtol=1e-5)
    model.train()
    targets = {"label_gtc": paddle.to_tensor([[2, 5, 6, 3, 0], [2, 7, 3, 0, 0]], "int64"),
               "length": paddle.to_tensor([2, 1], "int64"), "label_ctc": paddle.to_tensor([[2, 3, 0], [4, 0, 0]], "int64")}
    out = model(x, targets)
    assert out["ctc"].shape == [2, 40, 40] and out["gtc"].shape == [(2 + 1) + (1 + 1), 44]  # non-pad targets
    assert out["ctc_neck"].shape[-1] == neck_channels
    from workbench.losses.multi import MultiLoss

    MultiLoss(nrtr_weight=0.0)(out, targets)["loss"].backward()
    # the PP-OCRv6 CTC branches do not detach their input: the CTC loss trains the backbone
    grad = model.backbone.blocks5[0].channel_mixer.expand.conv.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


# ---------------------------------------------------------------------------------------------- loss


def test_dice_focal_db_loss_with_auxiliary_weights():
    rng = np.random.default_rng(0)
    maps = {k: paddle.to_tensor(rng.uniform(0.02, 0.98, (2, 3, 12, 12)).astype("float32"))
            for k in ("maps", "aux_maps_p4", "aux_maps_p3", "aux_maps_p2")}
    gt = (rng.uniform(size=(2, 12, 12)) > 0.6).astype("float32")
    mask = (rng.uniform(size=(2, 12, 12)) > 0.1).astype("float32")
    tmap, tmask = rng.uniform(0.3, 0.7, (2, 12, 12)).astype("float32"), np.ones_like(gt)
    batch = {"shrink_map": gt, "shrink_mask": mask, "threshold_map": tmap, "threshold_mask": tmask}
    loss = DBLoss(**zoo.get_spec("PP-OCRv6_small_det").loss)(maps, batch)

    def focal(p):  # upstream's definition on the probability map, in float64
        p = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
        pt = p * gt + (1 - p) * (1 - gt)
        at = 0.25 * gt + 0.75 * (1 - gt)
        return float((at * (1 - pt) ** 2.5 * -np.log(pt) * mask).sum() / (mask.sum() + 1e-6))

    def parts(m):
        m = m.numpy()
        dice = lambda c: float(dice_loss(paddle.to_tensor(m[:, c]), paddle.to_tensor(gt), paddle.to_tensor(mask)))
        l1 = float(masked_l1_loss(paddle.to_tensor(m[:, 1]), paddle.to_tensor(tmap), paddle.to_tensor(tmask)))
        return 5 * (dice(0) + focal(m[:, 0])), 10 * l1, dice(2) + focal(m[:, 2])

    main = parts(maps["maps"])
    np.testing.assert_allclose(float(loss["loss_shrink_maps"]), main[0], rtol=1e-4)
    np.testing.assert_allclose(float(loss["loss_binary_maps"]), main[2], rtol=1e-4)
    total = sum(main)
    for level, weight in (("p4", 0.2), ("p3", 0.3), ("p2", 0.4)):
        aux = sum(parts(maps[f"aux_maps_{level}"]))
        np.testing.assert_allclose(float(loss[f"loss_aux_maps_{level}"]), aux, rtol=1e-4)
        total += weight * aux
    np.testing.assert_allclose(float(loss["loss"]), total, rtol=1e-4)
    # the v5 loss ignores auxiliary maps
    assert "loss_aux_maps_p4" not in DBLoss()(maps, batch)
    with pytest.raises(ValueError, match="main_loss_type"):
        DBLoss(main_loss_type="BCE")


# ---------------------------------------------------------------------------------------------- defaults


def test_det_postprocess_defaults_come_from_the_model_and_yield_to_the_config():
    assert zoo.det_postprocess("PP-OCRv6_small_det") == {"thresh": 0.2, "box_thresh": 0.45, "unclip_ratio": 1.4,
                                                         "max_candidates": 3000}
    assert zoo.det_postprocess("PP-OCRv6_tiny_det")["box_thresh"] == 0.4  # its own inference.yml
    assert zoo.det_postprocess("PP-OCRv5_mobile_det") == {"thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5,
                                                          "max_candidates": 1000}
    assert zoo.det_postprocess("PP-OCRv6_small_det", thresh=0.25, box_thresh=None)["thresh"] == 0.25
    assert zoo.det_postprocess("PP-OCRv6_small_det", box_thresh=None)["box_thresh"] == 0.45
    assert zoo.det_postprocess("PP-OCRv4_mobile_seal_det")["thresh"] == 0.3  # a PaddleX name we do not train
    with pytest.raises(ConfigError, match="rec model"):
        zoo.det_postprocess("PP-OCRv6_small_rec")
    with pytest.raises(ConfigError, match="unknown"):
        zoo.det_postprocess("PP-OCRv6_small_det", threshold=0.1)


def test_v6_defaults_match_the_stock_inference_configs(stock):
    import yaml

    for size in ("tiny", "small"):
        yml = yaml.safe_load((stock / f"PP-OCRv6_{size}_det.inference.yml").read_text(encoding="utf-8"))
        post = yml["PostProcess"]
        assert zoo.det_postprocess(f"PP-OCRv6_{size}_det") == {k: post[k] for k in
                                                              ("thresh", "box_thresh", "unclip_ratio", "max_candidates")}


def test_det_task_evaluates_and_records_the_models_defaults(data_dir, tmp_path):
    from workbench.config.schema import TrainConfig
    from workbench.tasks import build_task

    cfg = TrainConfig(task="det")
    cfg.model.name = "PP-OCRv6_tiny_det"
    cfg.data.train = cfg.data.val = str(data_dir / "icdar2015_det" / "label.txt")
    cfg.data.eval_batch_size = 1
    cfg.tracking.enabled = False
    task = build_task(cfg)
    post = task.postprocess()
    assert (post.thresh, post.box_thresh, post.unclip_ratio, post.max_candidates) == (0.2, 0.4, 1.4, 3000)
    assert task.checkpoint_meta()["postprocess"]["box_thresh"] == 0.4
    assert task.build_loss().main_loss_type == "DiceFocalLoss"
    cfg.eval.det.box_thresh = 0.55
    assert build_task(cfg).postprocess().box_thresh == 0.55

