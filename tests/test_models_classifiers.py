"""The orientation classifiers have the official training graph's state-dict layout and compute what PaddleX's
own implementation computes.

No manifest of these models ships in ../shared/fixtures, and their official weights need the network. PaddleX 3.7
carries an independent implementation of PP-LCNet (``paddlex/inference/models/image_classification/modeling``,
Hugging-Face style names) and the renaming it applies to the official ``*_pretrained.pdparams``
(``PPLCNET_MAPPING`` of its pdparams→safetensors converter, with the per-model configs). Our state dict, renamed
by PaddleX's own mapping, must therefore equal PaddleX's model's state dict key for key, shape for shape and in
the same order -- the property that makes the official files load -- and with the same weights the two forwards
must agree.
"""

from __future__ import annotations

import re

import numpy as np
import paddle
import pytest

from workbench.models import zoo

PPLCNET_MODELS = ["PP-LCNet_x0_25_textline_ori", "PP-LCNet_x1_0_textline_ori", "PP-LCNet_x1_0_doc_ori"]


def _paddlex_model(name: str):
    from paddlex.inference.models.image_classification.modeling._config import PPLCNetConfig
    from paddlex.inference.models.image_classification.modeling.pplcnet import PPLCNet
    from paddlex.modules.base.utils.pdparams2safetensors.model_config import MODEL_CONFIGS

    return PPLCNet(PPLCNetConfig(**MODEL_CONFIGS[name]))


def _paddlex_key(key: str) -> str:
    """Our (= the official pdparams') key, renamed as PaddleX renames the official weights."""
    from paddlex.modules.base.utils.pdparams2safetensors.mapping import PPLCNET_MAPPING

    for pattern, repl in PPLCNET_MAPPING:
        key = re.sub(pattern, repl, key)
    return key


@pytest.mark.parametrize("name", PPLCNET_MODELS)
def test_pplcnet_layout_is_the_official_one(name):
    ours = zoo.build_model(name)
    theirs = _paddlex_model(name)
    mapped = [(_paddlex_key(k), list(v.shape)) for k, v in ours.state_dict().items()]
    expected = [(k, list(v.shape)) for k, v in theirs.state_dict().items()]
    assert len(mapped) == len(expected)
    mismatches = [(i, a, b) for i, (a, b) in enumerate(zip(mapped, expected)) if a != b]
    assert not mismatches, f"first mismatches: {mismatches[:3]}"
    assert sum(p.size for p in ours.parameters()) == sum(p.size for p in theirs.parameters())
    # the keys themselves are PaddleClas's (what the official .pdparams hold)
    keys = list(ours.state_dict())
    assert keys[:5] == ["conv1.conv.weight", "conv1.bn.weight", "conv1.bn.bias", "conv1.bn._mean",
                        "conv1.bn._variance"]
    assert keys[-3:] == ["last_conv.weight", "fc.weight", "fc.bias"]
    spec = zoo.get_spec(name)
    assert len(spec.classes) == ours.fc.weight.shape[1] == len(theirs.config.id2label)
    assert list(spec.classes) == [theirs.config.id2label[i] for i in range(len(spec.classes))]


@pytest.mark.parametrize("name", ["PP-LCNet_x0_25_textline_ori", "PP-LCNet_x1_0_doc_ori"])
def test_pplcnet_computes_what_paddlex_computes(name):
    paddle.seed(3)
    ours = zoo.build_model(name)
    rng = np.random.default_rng(0)
    state = {}
    for k, v in ours.state_dict().items():  # realistic BatchNorm statistics, not 0 / 1
        value = v.numpy()
        if k.endswith("._variance"):
            value = rng.uniform(0.5, 2.0, value.shape).astype("float32")
        elif k.endswith("._mean") or k.endswith("bn.bias"):
            value = rng.normal(0, 0.1, value.shape).astype("float32")
        state[k] = value
    ours.set_state_dict(state)
    theirs = _paddlex_model(name)
    theirs.set_state_dict({_paddlex_key(k): v for k, v in state.items()})
    ours.eval()
    theirs.eval()
    c, h, w = zoo.get_spec(name).image_shape
    x = rng.normal(0, 1, (2, c, h, w)).astype("float32")
    with paddle.no_grad():
        a = ours(paddle.to_tensor(x)).numpy()
        (b,) = theirs([x])
    assert a.shape == b.shape == (2, len(zoo.get_spec(name).classes))
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)  # eval: probabilities


def test_textline_strides_keep_the_width():
    model = zoo.build_model("PP-LCNet_x0_25_textline_ori")
    model.eval()
    with paddle.no_grad():
        features = model.features(paddle.zeros([1, 3, 80, 160]))
    assert list(features.shape) == [1, 128, 3, 80]  # height /32 (rounded up), width /2: the stem only


def test_train_mode_returns_logits_and_classifiers_take_no_dictionary():
    from workbench.errors import ConfigError

    model = zoo.build_model("ch_ppocr_mobile_v2.0_cls")
    model.train()
    out = model(paddle.rand([3, 3, 48, 192]))
    assert list(out.shape) == [3, 2] and not np.allclose(out.numpy().sum(-1), 1.0)
    with pytest.raises(ConfigError, match="classifier of 2 classes"):
        zoo.build_model("PP-LCNet_x0_25_textline_ori", num_classes=5)
