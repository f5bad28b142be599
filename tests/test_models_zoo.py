"""The model table and the composed models' train/eval contracts (tiny configs, CPU, fast)."""

from __future__ import annotations

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

OFFICIAL = [
    "PP-OCRv4_mobile_det",
    "PP-OCRv4_mobile_rec",
    "PP-OCRv5_mobile_det",
    "PP-OCRv5_mobile_rec",
    "en_PP-OCRv4_mobile_rec",
    "en_PP-OCRv5_mobile_rec",
]


def test_table():
    assert set(OFFICIAL) | {"det_tiny", "rec_tiny"} <= set(zoo.list_models())
    assert zoo.list_models("det") == sorted(n for n in zoo.list_models() if zoo.get_spec(n).task == "det")
    for name in OFFICIAL:
        spec = zoo.get_spec(name)
        assert spec.name == spec.paddlex_name == spec.manifest == name
        assert spec.pretrained_url.endswith(f"/{name}_pretrained.pdparams")
        if spec.task == "rec":
            assert spec.image_shape == (3, 48, 320) and spec.max_text_length == 25
            assert spec.dictionary.url.startswith("https://raw.githubusercontent.com/PaddlePaddle/PaddleOCR/")
            assert spec.dictionary.url.endswith(spec.dictionary.file_name) and len(spec.dictionary.sha256) == 64
    assert zoo.get_spec("PP-OCRv5_mobile_rec").dictionary.num_ctc_classes == 18385
    assert zoo.get_spec("en_PP-OCRv4_mobile_rec").dictionary.num_ctc_classes == 97


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
    for i, n in enumerate(lengths):
        chars = rng.integers(1, num_classes - 1, n)
        label_ctc[i, :n] = chars
        label_gtc[i, 0], label_gtc[i, 1 : n + 1], label_gtc[i, n + 1] = 2, chars + 3, 3
    return {
        "image": paddle.to_tensor(rng.normal(size=(batch_size, 3, 48, 320)).astype(np.float32)),
        "label_ctc": paddle.to_tensor(label_ctc),
        "label_gtc": paddle.to_tensor(label_gtc),
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
    assert list(out["gtc"].shape) == [4, max_len + 1, 44]
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
