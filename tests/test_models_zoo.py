"""The model table and the composed models' train/eval contracts (tiny configs, CPU, fast)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import paddle
import pytest

from workbench.errors import ConfigError
from workbench.losses.db import DBLoss
from workbench.losses.multi import MultiLoss
from workbench.models import zoo
from workbench.models.det import DetModel
from workbench.models.rec import RecModel
from workbench.tasks import registry

# Every official model of the zoo (its name is a PaddleX model name): adding one adds it to these tests.
OFFICIAL = [name for name in zoo.list_models() if zoo.get_spec(name).paddlex_name == name]


def test_table():
    assert {"PP-OCRv5_mobile_det", "PP-OCRv6_small_rec", "det_tiny", "rec_tiny"} <= set(zoo.list_models())
    assert zoo.list_models("det") == sorted(n for n in zoo.list_models() if zoo.get_spec(n).task == "det")
    for name in OFFICIAL:
        spec = zoo.get_spec(name)
        assert spec.name == spec.paddlex_name == name and spec.manifest in (name, None)
        assert spec.description
        assert spec.pretrained_url.endswith(f"/{name}_pretrained.pdparams")
        if spec.classes is not None:  # an orientation classifier: PaddleX's label list and classifier preprocessing
            assert spec.family == "PP-LCNet" and spec.task in ("textline_ori", "doc_ori")
            assert len(spec.classes) == {"textline_ori": 2, "doc_ori": 4}[spec.task]
            assert {"mean", "std", "scale"} <= set(spec.preprocess) and len(spec.image_shape) == 3
            continue
        assert spec.family.startswith("PP-OCRv")
        if spec.task == "rec":
            assert spec.image_shape == (3, 48, 320) and spec.max_text_length == 25
            url = spec.dictionary.url
            commit = url.removeprefix("https://raw.githubusercontent.com/PaddlePaddle/PaddleOCR/").split("/", 1)[0]
            assert re.fullmatch("[0-9a-f]{40}", commit) and url.endswith("/" + spec.dictionary.file_name)
            # one file at another commit: the later ppocrv5_latin_dict.txt no longer fits the official weights
            assert commit == zoo.UPSTREAM_COMMIT or name == "latin_PP-OCRv5_mobile_rec", name
            # every official head size is pinned (blank + dictionary + space); the bytes where a copy was verified
            assert spec.dictionary.num_lines > 0 and spec.dictionary.use_space_char
            assert spec.dictionary.num_ctc_classes == spec.dictionary.num_lines + 2
            assert spec.dictionary.sha256 is None or re.fullmatch("[0-9a-f]{64}", spec.dictionary.sha256)
            if spec.manifest:  # pinned from a verified copy (the manifests)
                assert spec.dictionary.sha256 is not None
        else:
            assert spec.task == "det"
            assert set(zoo.det_postprocess(name)) == {"thresh", "box_thresh", "unclip_ratio", "max_candidates"}
    assert zoo.get_spec("PP-OCRv5_mobile_rec").dictionary.num_ctc_classes == 18385
    assert zoo.get_spec("en_PP-OCRv4_mobile_rec").dictionary.num_ctc_classes == 97
    assert zoo.get_spec("PP-OCRv6_tiny_rec").dictionary.num_ctc_classes == 6906
    assert zoo.get_spec("korean_PP-OCRv5_mobile_rec").dictionary.num_ctc_classes == 11947


def test_a_dictionary_pinned_by_line_count_only_is_checked_on_fetch(tmp_path, monkeypatch):
    """Without a pinned sha256 (no byte-exact copy when it was pinned), the line count is what a fetched official
    dictionary must have: a file of another size is moved aside, not used to size a head."""
    from workbench.errors import WeightsError
    from workbench.weights.pretrained import fetch_dictionary

    spec = zoo.get_spec("th_PP-OCRv5_mobile_rec").dictionary
    assert spec.sha256 is None and spec.num_lines == 524
    monkeypatch.setenv("WB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("WB_OFFLINE", "1")
    cached = tmp_path / "dictionaries" / spec.file_name
    cached.parent.mkdir(parents=True)
    cached.write_text("".join(f"{chr(0x4E00 + i)}\n" for i in range(spec.num_lines)), encoding="utf-8")
    assert fetch_dictionary(spec) == cached
    cached.write_text("".join(f"{chr(0x4E00 + i)}\n" for i in range(spec.num_lines - 1)), encoding="utf-8")
    with pytest.raises(WeightsError, match="523 lines, not the 524"):
        fetch_dictionary(spec)
    assert not cached.exists() and cached.with_name(cached.name + ".corrupt").exists()


def test_official_names_are_the_ones_paddlex_registers():
    """Our official names are PaddleX 3.7 model names (exports load under them), and so is every model's export
    name (``paddlex_name``: e.g. ``ch_ppocr_mobile_v2.0_cls`` exports as ``PP-LCNet_x0_25_textline_ori``); every
    PP-OCR det / rec name and every orientation classifier PaddleX registers is in the zoo except the ones listed
    (a decision each)."""
    paddlex_det = pytest.importorskip("paddlex.modules.text_detection.model_list").MODELS
    paddlex_rec = pytest.importorskip("paddlex.modules.text_recognition.model_list").MODELS
    # PaddleX registers the orientation classifiers among its image classifiers
    paddlex_cls = pytest.importorskip("paddlex.modules.image_classification.model_list").MODELS
    orientation = {n for n in paddlex_cls if n.endswith(("_textline_ori", "_doc_ori"))}
    assert orientation == {"PP-LCNet_x0_25_textline_ori", "PP-LCNet_x1_0_textline_ori", "PP-LCNet_x1_0_doc_ori"}
    registered = set(paddlex_det) | set(paddlex_rec) | orientation
    assert set(OFFICIAL) <= registered
    exported_as = {zoo.get_spec(n).paddlex_name for n in zoo.list_models()} - {None}
    assert exported_as <= registered, exported_as - registered
    for name in zoo.list_models():  # a model exports under a PaddleX name of its own task
        spec = zoo.get_spec(name)
        if spec.paddlex_name is not None:
            assert zoo.get_spec(spec.paddlex_name).task == spec.task, name
    assert orientation <= set(OFFICIAL)
    not_in_zoo = {n for n in registered - set(OFFICIAL) if "PP-OCR" in n}
    assert not_in_zoo == {
        "PP-OCRv4_mobile_seal_det", "PP-OCRv4_server_seal_det",  # seal (curved text) detection: another pipeline
        "PP-OCRv3_server_det",  # ResNet_vd50: not ported
        # PP-OCRv3 per-language recognisers: superseded by the PP-OCRv5 ones (same scripts, in the zoo)
        "korean_PP-OCRv3_mobile_rec", "japan_PP-OCRv3_mobile_rec", "chinese_cht_PP-OCRv3_mobile_rec",
        "te_PP-OCRv3_mobile_rec", "ka_PP-OCRv3_mobile_rec", "ta_PP-OCRv3_mobile_rec", "latin_PP-OCRv3_mobile_rec",
        "arabic_PP-OCRv3_mobile_rec", "cyrillic_PP-OCRv3_mobile_rec", "devanagari_PP-OCRv3_mobile_rec",
    }


_BIG = {"PP-OCRv5_server_det", "PP-OCRv5_server_rec", "PP-OCRv4_server_det", "PP-OCRv4_server_rec",
        "PP-OCRv4_server_rec_doc", "PP-OCRv6_medium_det", "PP-OCRv6_medium_rec"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in _BIG else [])
                                  for n in zoo.list_models()])
def test_every_model_runs_eval_and_a_training_step(name):
    """Each zoo model, through the contract of its task (``docs/architecture.md``): eval output of the documented
    shape, and one training step of its task's loss that gives every trainable parameter used in training a
    gradient."""
    spec = zoo.get_spec(name)
    assert set(_TRAINING_STEPS) == set(registry.names())  # a new task adds its step here
    paddle.seed(0)
    model, loss = _TRAINING_STEPS[spec.task](spec)
    assert np.isfinite(float(loss))
    loss.backward()
    without = [k for k, p in model.named_parameters() if not p.stop_gradient and p.grad is None]
    # Parameters no forward uses are the only ones allowed to have no gradient, as in the official graphs:
    # PPHGNetV2's classifier leftovers, and the activation affine of PPLCNetV3's stride-2 rep layers (they skip
    # their activation).
    from workbench.models.backbones.pphgnetv2 import PPHGNetV2
    from workbench.models.backbones.pplcnetv3 import PPLCNetV3

    backbone = getattr(model, "backbone", None)
    unused = tuple(f"backbone.{u}" for u in PPHGNetV2.UNUSED_IN_FORWARD) if isinstance(backbone, PPHGNetV2) else ()
    stride2_lab = isinstance(backbone, PPLCNetV3)
    assert all(k.startswith(unused) or (stride2_lab and ".dw_conv.act.lab." in k) for k in without), without[:5]


def _det_step(spec):
    """det: eval → probability map [N, 1, H, W]; training → DB maps scored by DBLoss (the model's loss settings)."""
    model = zoo.build_model(spec.name)
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32))
    model.eval()
    with paddle.no_grad():
        assert list(model(x).shape) == [2, 1, 64, 64]
    model.train()
    shrink = np.zeros((2, 64, 64), np.float32)
    shrink[:, 20:40, 10:50] = 1
    batch = {"shrink_map": shrink, "shrink_mask": np.ones_like(shrink),
             "threshold_map": np.full_like(shrink, 0.4), "threshold_mask": np.ones_like(shrink)}
    return model, DBLoss(**dict(spec.loss))(model(x), batch)["loss"]


def _rec_step(spec):
    """rec: eval → CTC probabilities [N, T, C]; training → the multi-head outputs scored by MultiLoss."""
    model = zoo.build_model(spec.name, num_classes=40)
    batch = _rec_batch(40, batch_size=2)
    model.eval()
    with paddle.no_grad():
        assert list(model(batch["image"]).shape) == [2, 40, 40]
    model.train()
    return model, MultiLoss()(model(batch["image"], batch), batch)["loss"]


def _classifier_step(spec):
    """textline_ori / doc_ori: eval → probabilities [N, C] over the model's label list; training → logits [N, C]
    scored by the orientation tasks' cross-entropy (``losses/cls.py``), at the model's own input size."""
    from workbench.losses.cls import ClassificationLoss

    model = zoo.build_model(spec.name)
    num_classes = len(spec.classes)
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(2, *spec.image_shape)).astype(np.float32))
    model.eval()
    with paddle.no_grad():
        probs = model(x)
    assert list(probs.shape) == [2, num_classes]
    np.testing.assert_allclose(probs.numpy().sum(-1), 1.0, rtol=1e-5)
    model.train()
    logits = model(x)
    assert list(logits.shape) == [2, num_classes]
    labels = paddle.to_tensor(np.array([0, num_classes - 1], np.int64))
    return model, ClassificationLoss()(logits, {"label": labels})["loss"]


_TRAINING_STEPS = {"det": _det_step, "rec": _rec_step, "textline_ori": _classifier_step, "doc_ori": _classifier_step}


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="PP-OCRv9"):
        zoo.get_spec("PP-OCRv9")
    with pytest.raises(ConfigError, match="num_classes"):
        zoo.build_model("rec_tiny")  # no dictionary of its own
    with pytest.raises(ConfigError, match="detection"):
        zoo.build_model("det_tiny", num_classes=10)
    with pytest.raises(ConfigError, match="disagrees"):
        zoo.build_model("rec_tiny", num_classes=10, charset=SimpleNamespace(num_ctc_classes=12))
    with pytest.raises(ConfigError, match="override"):
        zoo.build_model("PP-OCRv5_mobile_det", no_such_option=1)


def test_rec_heads_follow_the_charset():
    model = zoo.build_model("rec_tiny", charset=SimpleNamespace(num_ctc_classes=30))
    assert isinstance(model, RecModel)
    assert model.head.ctc_head.fc.weight.shape[-1] == 30
    assert model.head.gtc_head.embedding.embedding.weight.shape[0] == 34
    assert model.head.gtc_head.tgt_word_prj.weight.shape[-1] == 34


def _rec_batch(num_classes, batch_size=4, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 10, batch_size)
    label_ctc = np.zeros((batch_size, 25), np.int64)
    label_gtc = np.zeros((batch_size, 25), np.int64)
    label_sar = np.full((batch_size, 25), num_classes + 1, np.int64)  # SAR: <PAD> = CTC classes + 1
    for i, n in enumerate(lengths):
        chars = rng.integers(1, num_classes - 1, n)
        label_ctc[i, :n] = chars
        label_gtc[i, 0], label_gtc[i, 1 : n + 1], label_gtc[i, n + 1] = 2, chars + 3, 3
        label_sar[i, 0], label_sar[i, 1 : n + 1], label_sar[i, n + 1] = num_classes, chars - 1, num_classes
    return {
        "image": paddle.to_tensor(rng.normal(size=(batch_size, 3, 48, 320)).astype(np.float32)),
        "label_ctc": paddle.to_tensor(label_ctc),
        "label_gtc": paddle.to_tensor(label_gtc),
        "label_sar": paddle.to_tensor(label_sar),
        "valid_ratio": paddle.to_tensor(rng.uniform(0.4, 1.0, batch_size).astype(np.float32)),
        "length": paddle.to_tensor(lengths.astype(np.int64)),
    }


def test_rec_contract_and_a_training_step():
    paddle.seed(0)
    model = zoo.build_model("rec_tiny", num_classes=40)
    batch = _rec_batch(40)
    model.eval()
    with paddle.no_grad():
        probs = model(batch["image"])
    assert list(probs.shape) == [4, 40, 40]
    np.testing.assert_allclose(probs.numpy().sum(-1), 1.0, rtol=1e-5)

    model.train()
    with pytest.raises(ValueError, match="label_gtc"):
        model(batch["image"])
    optimizer = paddle.optimizer.Adam(1e-3, parameters=model.parameters())
    loss_fn = MultiLoss()
    losses = []
    for _ in range(3):
        out = model(batch["image"], batch)
        loss = loss_fn(out, batch)
        loss["loss"].backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss["loss"]))
    max_len = int(batch["length"].max())
    assert list(out["ctc"].shape) == [4, 40, 40]
    assert list(out["ctc_neck"].shape) == [4, 40, 32]
    # NRTR logits of the non-pad target positions only: each text's characters and its </s>
    assert list(out["gtc"].shape) == [int(batch["length"].sum()) + 4, 44] and max_len >= 1
    assert losses[-1] < losses[0]  # it learns (same batch); its speed: benchmarks/bench_fault_paths.py


def test_ctc_branch_does_not_train_the_backbone():
    """use_guide: the CTC loss reaches the SVTR neck but not the backbone (upstream behaviour)."""
    paddle.seed(0)
    model = zoo.build_model("rec_tiny", num_classes=40)
    model.train()
    batch = _rec_batch(40, batch_size=2)
    out = model(batch["image"], batch)
    MultiLoss(nrtr_weight=0.0)(out, batch)["loss"].backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.backbone.parameters())
    assert float(model.head.ctc_encoder.encoder.conv1.conv.weight.grad.abs().sum()) > 0


def test_det_contract_and_a_training_step():
    paddle.seed(0)
    model = zoo.build_model("det_tiny")
    assert isinstance(model, DetModel)
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.normal(size=(4, 3, 128, 128)).astype(np.float32))
    model.eval()
    with paddle.no_grad():
        prob = model(x)
    assert list(prob.shape) == [4, 1, 128, 128]
    assert 0 <= float(prob.min()) and float(prob.max()) <= 1

    model.train()
    shrink = np.zeros((4, 128, 128), np.float32)
    shrink[:, 30:60, 20:100] = 1
    batch = {"shrink_map": shrink, "shrink_mask": np.ones_like(shrink),
             "threshold_map": np.full_like(shrink, 0.3), "threshold_mask": np.ones_like(shrink)}
    optimizer = paddle.optimizer.Adam(1e-3, parameters=model.parameters())
    for _ in range(2):
        out = model(x)
        loss = DBLoss()(out, batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
    assert list(out["maps"].shape) == [4, 3, 128, 128]


def test_the_demo_cnn_is_a_ctc_recogniser_with_pp_ocr_sequence_layout():
    """rec_demo_cnn: [N, 3, 48, W] -> CTC probabilities [N, W/8, C] (what PaddleX's CTCLabelDecode reads); training
    returns CTC logits only and the multi-head loss scores it with a zero NRTR term."""
    model = zoo.build_model("rec_demo_cnn", num_classes=12)
    model.eval()
    probs = model(paddle.rand([2, 3, 48, 200]))
    assert probs.shape == [2, 25, 12]
    np.testing.assert_allclose(probs.sum(-1).numpy(), 1.0, rtol=1e-5)
    model.train()
    out = model(paddle.rand([2, 3, 48, 160]))
    assert set(out) == {"ctc"} and out["ctc"].shape == [2, 20, 12]
    batch = {"label_ctc": paddle.to_tensor([[1, 2, 0], [3, 0, 0]], "int64"), "length": paddle.to_tensor([2, 1], "int64")}
    loss = MultiLoss()(out, batch)
    assert float(loss["loss_nrtr"]) == 0.0 and float(loss["loss"]) == float(loss["loss_ctc"]) > 0


def test_readme_and_recipes_cover_the_zoo():
    """The README model table lists every zoo model with its PaddleX name; every official model has a recipe."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    for name in zoo.list_models():
        spec = zoo.get_spec(name)
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"README model table has no row for {name}"
        assert f"`{spec.paddlex_name}`" in row and spec.task in row
        if spec.task == "rec" and spec.dictionary is not None:
            assert spec.dictionary.file_name in row
        if spec.classes is not None:
            assert f"classes {' / '.join(spec.classes)}" in row
        assert (root / "recipes" / "model" / f"{name}.yaml").is_file() or spec.family in ("test", "demo")


def test_every_model_recipe_composes_with_its_task_recipe():
    from hydra import compose, initialize_config_dir

    from workbench.config.compose import recipes_dir, register_schema, to_typed

    register_schema()
    with initialize_config_dir(config_dir=str(recipes_dir()), version_base=None):
        for name in OFFICIAL:
            task = zoo.get_spec(name).task
            cfg = to_typed(compose(config_name="train", overrides=[f"recipe={task}_finetune", f"model={name}"]))
            assert cfg.model.name == name and cfg.task == task
