"""Strict loading of starting weights: every missing or mis-shaped key is an error listing them; a changed
dictionary re-initialises the head only when the recipe says so, and that is recorded."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from workbench.errors import WeightsError
from workbench.models import zoo
from workbench.models.rec import NRTR_PE_KEY
from workbench.tasks.rec import dictionary_sized_keys
from workbench.weights.pretrained import load_strict


def _state(model):
    return {k: np.asarray(v.numpy()) for k, v in model.state_dict().items()}


def test_missing_and_mismatched_keys_are_listed():
    model = zoo.build_model("rec_tiny", num_classes=40)
    state = _state(zoo.build_model("rec_tiny", num_classes=40))
    del state["backbone.conv1.conv.weight"]
    state["neck_that_does_not_exist.weight"] = np.zeros(3, np.float32)
    state["head.ctc_encoder.conv1.conv.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(WeightsError) as e:
        load_strict(model, state, source="w.pdparams")
    msg = str(e.value)
    assert "w.pdparams" in msg and "backbone.conv1.conv.weight" in msg
    assert "neck_that_does_not_exist.weight" in msg and "head.ctc_encoder.conv1.conv.weight" in msg


def test_dictionary_change_needs_the_explicit_switch(caplog):
    src = zoo.build_model("rec_tiny", num_classes=40)
    state = _state(src)
    model = zoo.build_model("rec_tiny", num_classes=50)  # another dictionary: 48 characters
    keys = dictionary_sized_keys(model, 50)
    assert set(keys) == {"head.ctc_head.fc.weight", "head.ctc_head.fc.bias",
                         "head.gtc_head.embedding.embedding.weight", "head.gtc_head.tgt_word_prj.weight"}
    with pytest.raises(WeightsError, match="reinit_head_on_dict_change=true"):
        load_strict(model, state, source="w", resizable_keys=keys)
    with caplog.at_level(logging.WARNING):
        report = load_strict(model, state, source="w", resizable_keys=keys, allow_reinit=True)
    assert sorted(report.reinitialised) == sorted(keys) and report.complete
    assert "re-initialised 4 dictionary-sized tensors" in caplog.text
    # everything else really came from the file
    k = "backbone.conv1.conv.weight"
    np.testing.assert_array_equal(model.state_dict()[k].numpy(), state[k])


def test_the_nrtr_table_may_be_absent_and_is_reported():
    model = zoo.build_model("rec_tiny", num_classes=40)
    state = _state(zoo.build_model("rec_tiny", num_classes=40))
    del state[NRTR_PE_KEY]
    report = load_strict(model, state, source="w", optional_missing=(NRTR_PE_KEY,))
    assert report.complete and any(NRTR_PE_KEY in n for n in report.notes)
