"""Importing inference graphs (ONNX, Paddle inference folders) into the training graph.

Parity: the imported training-graph model in eval mode must reproduce the source model run by its own runtime
(onnxruntime for ONNX, Paddle Inference for folders) on real images from ../shared/data:
* probabilities (rec: CTC softmax; det: DB probability map): max absolute difference <= ``PROB_ATOL`` = 1e-3 and
  mean absolute difference <= ``MEAN_ATOL`` = 1e-6. Measured on 150 ICDAR 2015 crops: median of the per-crop max
  4e-6, worst 6e-4 (a crop whose top two classes nearly tie, where float32 summation order -- the ONNX graph's
  fused kernels vs our branch sum -- moves a probability most); mean 1e-10. A wrong mapping gives ~0.1 .. 1;
* identical decoded text (rec, PaddleX's greedy CTC decode) and identical boxes (det, DB post-process).

The stock PP-OCRv5 mobile models are real-size, so each import takes seconds: they are imported once per module.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest

from workbench.errors import WeightsError
from workbench.weights import importers as imp

PROB_ATOL = 1e-3
MEAN_ATOL = 1e-6


# ------------------------------------------------------------------------------------------------ helpers


def _read_rec(data_dir: Path, folder: str, lines: range) -> tuple[list[np.ndarray], list[str]]:
    rows = (data_dir / folder / "label.txt").read_text(encoding="utf-8").splitlines()
    images, texts = [], []
    for i in lines:
        path, text = rows[i].split("\t", 1)
        images.append(cv2.imread(str(data_dir / folder / path)))
        texts.append(text)
    return images, texts


def _read_det(data_dir: Path, folder: str, lines: range) -> list[np.ndarray]:
    rows = (data_dir / folder / "label.txt").read_text(encoding="utf-8").splitlines()
    return [cv2.imread(str(data_dir / folder / rows[i].split("\t", 1)[0])) for i in lines]


def export_inference_folder(model, model_name: str, folder: Path, dictionary: list[str] | None = None) -> Path:
    """What an exporter does (our own, minimal): fuse, drop training branches, save the static graph + yml."""
    import copy

    import yaml

    from workbench.models.rep import fuse_for_inference

    fused = fuse_for_inference(copy.deepcopy(model), drop_training_branches=True)
    shape = [None, 3, 48, None] if dictionary is not None else [None, 3, None, None]
    static = paddle.jit.to_static(fused, input_spec=[paddle.static.InputSpec(shape, "float32", "x")],
                                  full_graph=True)
    paddle.jit.save(static, str(folder / "inference"))
    yml = {"Global": {"model_name": model_name}}
    if dictionary is not None:
        yml["PostProcess"] = {"name": "CTCLabelDecode", "character_dict": list(dictionary)}
    (folder / "inference.yml").write_text(yaml.safe_dump(yml, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def rec_charset(stock):
    from workbench.data.charset import Charset

    return Charset.from_file(stock / "ppocrv5_dict.txt")


@pytest.fixture(scope="module")
def rec_probe(data_dir):
    """Real crops, PaddleX pipeline preprocessing (keep ratio, one crop per batch): ICDAR 2015 + SROIE."""
    icdar, icdar_gt = _read_rec(data_dir, "icdar2015_rec", range(0, 10))
    sroie, sroie_gt = _read_rec(data_dir, "sroie_rec", range(0, 4))
    return imp.preprocess_images("rec", icdar + sroie, pipeline=True), icdar_gt + sroie_gt


@pytest.fixture(scope="module")
def imported_rec(stock, data_dir):
    calib, _ = _read_rec(data_dir, "icdar2015_rec", range(200, 216))
    return imp.import_inference_model(stock / "PP-OCRv5_mobile_rec.onnx",
                                      calibration=imp.preprocess_images("rec", calib), calibration_name="16 crops")


@pytest.fixture(scope="module")
def imported_det(stock, data_dir):
    calib = _read_det(data_dir, "icdar2015_det", range(100, 102))
    return imp.import_inference_model(stock / "PP-OCRv5_mobile_det.onnx",
                                      calibration=imp.preprocess_images("det", calib))


@pytest.fixture(scope="module")
def det_probe(data_dir):
    """Two street scenes and one receipt scan, resized as a PaddleX det module does (long side <= 960)."""
    images = _read_det(data_dir, "icdar2015_det", range(0, 2)) + _read_det(data_dir, "sroie_det", range(0, 1))
    from workbench.data.preprocess import DetResize, preprocess_det

    return [preprocess_det(im, DetResize.paddlex_module()) for im in images]


def _boxes(prob_map: np.ndarray, shape) -> np.ndarray:
    from workbench.postprocess.db import DBPostProcess

    boxes, _ = DBPostProcess(thresh=0.3, box_thresh=0.6, unclip_ratio=1.5)(prob_map, [shape.as_array()])[0]
    return np.asarray(boxes)


def _check_det_parity(model, runtime, probe) -> dict:
    result = imp.compare_with_source(model, runtime, [x[None] for x, _ in probe])
    assert result["max_abs_diff"] <= PROB_ATOL and result["mean_abs_diff"] <= MEAN_ATOL, result
    total = 0
    for x, shape in probe:
        with paddle.no_grad():
            ours = model(paddle.to_tensor(x[None])).numpy()
        theirs = runtime(x[None])
        a, b = _boxes(ours, shape), _boxes(theirs, shape)
        assert a.shape == b.shape
        if a.size:
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # a corner may round the other way
        total += len(a)
    assert total >= 5  # real text was found: this is the stock model, not noise
    return result


# ------------------------------------------------------------------------------------------------ ONNX parity


def test_onnx_rec_import_matches_onnxruntime(imported_rec, stock, rec_probe, rec_charset):
    from workbench.postprocess.ctc import CTCDecoder

    batches, truth = rec_probe
    decode = CTCDecoder(rec_charset)
    result = imp.compare_with_source(imported_rec.model, imp.OnnxRuntimeModel(stock / "PP-OCRv5_mobile_rec.onnx"),
                                     batches, decode=decode)
    assert result["samples"] == len(truth)
    assert result["max_abs_diff"] <= PROB_ATOL and result["mean_abs_diff"] <= MEAN_ATOL, result
    assert result["text_mismatches"] == 0, result["mismatched"]
    # and it is the real stock recogniser: most crops read correctly (case-insensitively: SROIE is upper-case)
    with paddle.no_grad():
        texts = [decode(imported_rec.model(paddle.to_tensor(x)).numpy())[0][0] for x in batches]
    correct = sum(t.upper() == g.upper() for t, g in zip(texts, truth))
    assert correct >= len(truth) // 2, list(zip(texts, truth))


def test_onnx_det_import_matches_onnxruntime(imported_det, stock, det_probe):
    _check_det_parity(imported_det.model, imp.OnnxRuntimeModel(stock / "PP-OCRv5_mobile_det.onnx"), det_probe)


# ------------------------------------------------------------------------------------------------ what an import is


def test_import_report_lists_what_the_graph_lacks(imported_rec, imported_det):
    rec, det = imported_rec.report, imported_det.report
    assert rec.model_name == "PP-OCRv5_mobile_rec" and rec.num_classes == 18385 and rec.source_format == "onnx"
    groups = {p["group"]: p for p in rec.initialised}
    assert set(groups) == {"head.gtc_head", "head.before_gtc"}  # the NRTR branch, nothing else
    assert groups["head.gtc_head"]["params"] > 20_000_000
    det_groups = {p["group"] for p in det.initialised}
    assert "head.thresh" in det_groups and not any(g.startswith("neck") for g in det_groups)
    for report in (rec, det):
        assert report.unfused_rep_layers == 28 and report.calibrated_batch_norms > 100
        assert "initialised" in report.summary()


def test_unfused_layers_are_the_training_form(imported_rec):
    from workbench.models.backbones.pplcnetv3 import LearnableRepLayer

    layers = [m for m in imported_rec.model.sublayers() if isinstance(m, LearnableRepLayer)]
    assert layers and not any(layer.is_repped for layer in layers)
    layer = next(m for m in layers if m.identity is not None and m.conv_1x1 is not None)
    w = [b.conv.weight.numpy() for b in layer.conv_kxk]
    assert not np.allclose(w[0], w[1])  # branches are not identical copies (they would train as one)
    assert np.all(layer.identity.weight.numpy() == 0) and np.all(layer.conv_1x1.bn.weight.numpy() == 0)
    var = layer.conv_kxk[0].bn._variance.numpy()
    assert not np.allclose(var, 1 - layer.conv_kxk[0].bn._epsilon)  # calibrated, not the placeholder


def test_imported_state_dict_loads_strictly(imported_rec, tmp_path):
    """The saved state dict is a complete training-graph state dict: the same strict load `wb train` uses."""
    from workbench.models import zoo
    from workbench.models.rec import NRTR_PE_KEY
    from workbench.weights.pretrained import load_strict, read_state_dict

    path = tmp_path / "rec.pdparams"
    paddle.save(imported_rec.state_dict(), str(path))
    fresh = zoo.build_model("PP-OCRv5_mobile_rec")
    report = load_strict(fresh, read_state_dict(path), source=str(path), optional_missing=(NRTR_PE_KEY,))
    assert report.complete and report.loaded_keys == len(fresh.state_dict())
    key = "backbone.blocks5.1.dw_conv.conv_kxk.0.conv.weight"
    np.testing.assert_array_equal(fresh.state_dict()[key].numpy(), imported_rec.state_dict()[key].numpy())


def test_calibration_makes_train_mode_agree_with_eval_mode(imported_rec, data_dir):
    """Train-mode BN normalises with batch statistics; with calibrated running statistics the network computes
    nearly the same features in both modes (placeholder statistics give uncorrelated features: corr ~0)."""
    import copy

    crops, _ = _read_rec(data_dir, "icdar2015_rec", range(300, 316))
    x = paddle.to_tensor(imp.preprocess_images("rec", crops, batch_size=16)[0])
    backbone = copy.deepcopy(imported_rec.model.backbone)  # a train-mode forward updates running statistics
    with paddle.no_grad():
        backbone.eval()
        eval_out = backbone(x).numpy()
        backbone.train()
        train_out = backbone(x).numpy()
    corr = np.corrcoef(eval_out.ravel(), train_out.ravel())[0, 1]
    assert corr > 0.95, corr


# ------------------------------------------------------------------------------------------------ BN un-folding


def _fold_batch_norms(src: Path, dst: Path) -> int:
    """Rewrite an ONNX graph the way a folding exporter would: every BatchNormalization after a Conv (or after a
    ConvTranspose + bias Add) is folded into it and replaced by an Identity. Returns how many were folded."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    producer = {}
    for node in graph.node:
        for out in node.output:
            producer[out] = node

    def source(name):
        while name in alias:
            name = alias[name]
        return producer.get(name)

    def array(name):
        while name in alias:
            name = alias[name]
        return numpy_helper.to_array(inits[name]), name

    def store(name, value):
        inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    folded = 0
    for node in list(graph.node):
        if node.op_type != "BatchNormalization":
            continue
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        (gamma, _), (beta, _), (mean, _), (var, _) = (array(n) for n in node.input[1:5])
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
        before = source(node.input[0])
        if before.op_type == "Conv" and len(before.input) == 2:
            weight, wname = array(before.input[1])
            store(wname, weight * scale[:, None, None, None])
            bias_name = f"folded_bias_{folded}"
            graph.initializer.append(numpy_helper.from_array((beta - mean * scale).astype(np.float32), bias_name))
            before.input.append(bias_name)
        elif before.op_type == "Add" and source(before.input[0]).op_type == "ConvTranspose":
            deconv = source(before.input[0])
            weight, wname = array(deconv.input[1])
            store(wname, weight * scale[None, :, None, None])  # ConvTranspose weights are [in, out, k, k]
            bias, bname = array(before.input[1])
            store(bname, ((bias.reshape(-1) - mean) * scale + beta).reshape(bias.shape))
        else:
            raise AssertionError(f"unexpected producer {before.op_type} of {node.name}")
        identity = onnx.helper.make_node("Identity", [node.input[0]], [node.output[0]], name=node.name + "_folded")
        graph.node.insert(list(graph.node).index(node), identity)
        graph.node.remove(node)
        folded += 1
    onnx.save(model, str(dst))
    return folded


def test_folded_batch_norms_are_unfolded(stock, det_probe, tmp_path):
    folded_path = tmp_path / "det_folded.onnx"
    assert _fold_batch_norms(stock / "PP-OCRv5_mobile_det.onnx", folded_path) == 3
    runtime = imp.OnnxRuntimeModel(folded_path)
    x = det_probe[0][0][None]
    np.testing.assert_allclose(runtime(x), imp.OnnxRuntimeModel(stock / "PP-OCRv5_mobile_det.onnx")(x), atol=1e-4)

    result = imp.import_inference_model(folded_path, model_name="PP-OCRv5_mobile_det",
                                        calibration=imp.synthetic_inputs("det", count=1))
    assert sorted(result.report.unfolded_batch_norms) == [
        "backbone.conv1.bn", "head.binarize.conv_bn1", "head.binarize.conv_bn2"]
    _check_det_parity(result.model, runtime, det_probe[:2])
    bn = result.model.backbone.conv1.bn
    assert not np.allclose(bn._variance.numpy(), 1 - bn._epsilon)  # real statistics, not the placeholder


# ------------------------------------------------------------------------------------------------ inference folders


def test_paddle_inference_folder_det(imported_det, det_probe, tmp_path):
    folder = export_inference_folder(imported_det.model, "PP-OCRv5_mobile_det", tmp_path / "det_infer")
    # the model name comes from inference.yml; calibration does not change the eval function: keep it short
    result = imp.import_inference_model(folder, calibration=imp.synthetic_inputs("det", count=1))
    assert result.report.source_format == "paddle" and result.report.model_name == "PP-OCRv5_mobile_det"
    _check_det_parity(result.model, imp.PaddleInferenceModel(folder), det_probe)


def test_paddle_inference_folder_rec(imported_rec, rec_probe, rec_charset, tmp_path):
    from workbench.postprocess.ctc import CTCDecoder

    folder = export_inference_folder(imported_rec.model, "PP-OCRv5_mobile_rec", tmp_path / "rec_infer",
                                     dictionary=rec_charset.characters)
    result = imp.import_inference_model(folder, calibration=imp.synthetic_inputs("rec", count=4))
    assert result.report.model_name == "PP-OCRv5_mobile_rec" and result.dictionary == rec_charset.characters
    batches, _ = rec_probe
    parity = imp.compare_with_source(result.model, imp.PaddleInferenceModel(folder), batches,
                                     decode=CTCDecoder(rec_charset))
    assert parity["max_abs_diff"] <= PROB_ATOL and parity["mean_abs_diff"] <= MEAN_ATOL, parity
    assert parity["text_mismatches"] == 0, parity


# ------------------------------------------------------------------------------------------------ refusals


def test_wrong_architecture_is_refused_with_the_differences(stock):
    with pytest.raises(WeightsError, match="does not have the structure") as e:
        imp.import_inference_model(stock / "PP-OCRv5_mobile_det.onnx", model_name="det_tiny")
    assert "no counterpart" in str(e.value)
    with pytest.raises(WeightsError, match="not a recognition model"):
        imp.import_inference_model(stock / "PP-OCRv5_mobile_det.onnx", model_name="PP-OCRv5_mobile_rec")
    with pytest.raises(WeightsError, match="wrong dictionary"):
        imp.import_inference_model(stock / "PP-OCRv5_mobile_rec.onnx", num_classes=438)
    with pytest.raises(WeightsError, match="--model"):
        imp.import_inference_model(stock / "PP-OCRv5_mobile_rec.onnx", model_name="PP-OCRv9")


def test_not_an_inference_model(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(WeightsError, match="not a readable ONNX"):
        imp.import_inference_model(bad, model_name="PP-OCRv5_mobile_det")
    with pytest.raises(WeightsError, match="not a Paddle inference folder"):
        imp.import_inference_model(tmp_path, model_name="PP-OCRv5_mobile_det")


# ------------------------------------------------------------------------------------------------ un-fusing, small


def test_unfuse_rep_layer_is_exact_and_recentring_keeps_the_function():
    from workbench.models.backbones.pplcnetv3 import LearnableRepLayer
    from workbench.models.rep import calibrate_batch_norms, unfuse_rep_layer

    rng = np.random.default_rng(0)
    paddle.seed(0)
    layer = LearnableRepLayer(8, 8, 3, 1, groups=8, num_branches=3)
    layer.eval()
    kernel = rng.normal(0, 0.5, (8, 1, 3, 3))
    bias = rng.normal(0, 0.5, 8)
    unfuse_rep_layer(layer, kernel, bias, rng=rng)
    fused_k, fused_b = layer.fused_kernel_bias()
    np.testing.assert_allclose(fused_k, kernel, atol=1e-6)
    np.testing.assert_allclose(fused_b, bias, atol=1e-6)

    x = paddle.to_tensor(rng.normal(1.0, 2.0, (4, 8, 12, 12)).astype("float32"))
    with paddle.no_grad():
        before = layer(x).numpy()
        calibrate_batch_norms(layer, [x])
        after = layer(x).numpy()
        literal = layer.branch_sum(x).numpy()
    np.testing.assert_allclose(after, before, atol=1e-5)
    np.testing.assert_allclose(literal, before, atol=1e-5)
    # each kxk branch BN now holds its input's statistics
    branch = layer.conv_kxk[1]
    with paddle.no_grad():
        z = branch.conv(x).numpy()
    np.testing.assert_allclose(branch.bn._mean.numpy(), z.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(branch.bn._variance.numpy(), z.var(axis=(0, 2, 3)), rtol=1e-3)


# ------------------------------------------------------------------------------------------------ fine-tuning


def _train_config(task: str, weights: Path, data_dir: Path, dictionary: Path | None):
    from workbench.config.schema import TrainConfig

    cfg = TrainConfig(task=task)
    cfg.model.name = f"PP-OCRv5_mobile_{task}"
    cfg.model.pretrained = str(weights)
    if dictionary is not None:
        cfg.model.character_dict = str(dictionary)
    cfg.data.train = str(data_dir / f"icdar2015_{task}" / "label.txt")
    cfg.data.max_train_samples = 4
    cfg.data.batch_size = 2
    cfg.data.num_workers = 0
    cfg.data.check = False
    cfg.data.policy = "skip"
    if task == "det":
        cfg.data.augment = {"crop_size": [320, 320]}
        cfg.data.eval_batch_size = 1
    cfg.tracking.enabled = False
    return cfg


@pytest.mark.parametrize("task_name", ["rec", "det"])
def test_a_training_step_runs_on_imported_weights(task_name, request, stock, data_dir, tmp_path):
    """Load the imported file the way `wb train model.pretrained=...` does (strict), run one training step of the
    real loss on real samples, and check that gradients reach both the imported and the initialised parts."""
    from workbench.tasks import build_task

    imported = request.getfixturevalue(f"imported_{task_name}")
    weights = tmp_path / f"{task_name}.pdparams"
    paddle.save(imported.state_dict(), str(weights))
    dictionary = stock / "ppocrv5_dict.txt" if task_name == "rec" else None
    task = build_task(_train_config(task_name, weights, data_dir, dictionary))
    model = task.build_model()
    report = task.load_initial_weights(model)
    assert report.complete and report.source == str(weights)

    dataset = task.train_dataset()
    batch = task.collate_train([dataset.load(i, rng=np.random.default_rng(i), epoch=0) for i in range(2)])
    model.train()
    losses, count = task.training_step(model, task.build_loss(), batch)
    loss = float(losses["loss"])
    assert count == 2 and np.isfinite(loss)
    if task_name == "rec":
        # The imported CTC branch already reads these (augmented, train-mode BN) crops: CTC loss ~17 where a
        # fresh head gives ~370. The fresh NRTR branch does not: ~ln(18389) = 9.8.
        parts = {k: float(v) for k, v in losses.items()}
        assert parts["loss_ctc"] < 60.0 and parts["loss_nrtr"] > 5.0, parts
    losses["loss"].backward()
    params = dict(model.named_parameters())
    fresh = "head.gtc_head.tgt_word_prj.weight" if task_name == "rec" else "head.thresh.conv1.weight"
    imported_key = "backbone.blocks4.0.pw_conv.conv_kxk.0.conv.weight"
    for key in (fresh, imported_key):
        assert params[key].grad is not None and float(params[key].grad.abs().sum()) > 0, key
    before = params[imported_key].numpy().copy()
    optimizer = paddle.optimizer.Adam(learning_rate=1e-4, parameters=model.parameters())
    optimizer.step()
    assert not np.array_equal(before, params[imported_key].numpy())


@pytest.mark.parametrize("name", ["det_tiny", "rec_tiny"])
def test_tiny_model_round_trip_through_an_inference_folder(name, tmp_path):
    """Our own training model -> inference folder -> import: same function as the folder (Paddle Inference) and
    as the original model. Fast, needs nothing from ../shared, and exercises 2-branch rep layers."""
    import string

    from test_models_rep import _randomise_bn
    from workbench.models import zoo
    from workbench.models.backbones.pplcnetv3 import LearnableAffineBlock

    rng = np.random.default_rng(5)
    paddle.seed(5)
    chars = list(string.ascii_lowercase + string.digits) if name == "rec_tiny" else None
    model = zoo.build_model(name, **({"num_classes": len(chars) + 2} if chars else {}))
    _randomise_bn(model, seed=5)
    for layer in model.sublayers():
        if isinstance(layer, LearnableAffineBlock):  # non-trivial affines: a swapped pair would show
            layer.scale.set_value(rng.uniform(0.5, 1.5, 1).astype("float32"))
            layer.bias.set_value(rng.normal(0, 0.2, 1).astype("float32"))
    model.eval()
    shape = (2, 3, 48, 160) if chars else (2, 3, 96, 128)
    x = rng.normal(0, 1, shape).astype("float32")
    with paddle.no_grad():
        expected = model(paddle.to_tensor(x)).numpy()

    folder = export_inference_folder(model, name, tmp_path / "infer", dictionary=chars)
    result = imp.import_inference_model(folder, calibration=[x])
    assert result.report.model_name == name and result.report.unfused_rep_layers > 0
    parity = imp.compare_with_source(result.model, imp.PaddleInferenceModel(folder), [x])
    assert parity["max_abs_diff"] <= 1e-4, parity
    with paddle.no_grad():
        np.testing.assert_allclose(result.model(paddle.to_tensor(x)).numpy(), expected, atol=1e-4)
