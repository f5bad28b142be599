"""Starting weights without a trained NRTR branch (ONNX / inference imports): the random NRTR decoder must not
train the backbone; the CTC loss does. Official checkpoints keep upstream's wiring."""

from __future__ import annotations

import json

import numpy as np
import paddle
import pytest

from tests.tiny_runs import rec_config
from workbench.errors import ConfigError


def _backbone_grad_norms(task, model):
    ds = task.train_dataset()
    batch = task.collate_train([ds[i] for i in range(4)])
    loss_fn = task.build_loss()
    model.train()
    params = [p for n, p in model.named_parameters() if n.startswith("backbone")]
    norms = {}
    for which in ("ctc", "nrtr"):
        model.clear_gradients()
        out, _ = task.training_step(model, loss_fn, batch)
        out[f"loss_{which}"].backward()
        norms[which] = float(np.sqrt(sum(float((p.grad ** 2).sum()) for p in params if p.grad is not None)))
    return norms


def _weights(tmp_path, shared_dir, record: dict | None):
    from workbench.tasks.rec import RecTask

    cfg = rec_config(shared_dir, tmp_path / "run")
    model = RecTask(cfg).build_model()
    path = tmp_path / "w.pdparams"
    paddle.save(model.state_dict(), str(path))
    if record is not None:
        path.with_name("w.import.json").write_text(json.dumps(record))
    return path


IMPORTED = {"initialised": [{"group": "head.before_gtc", "tensors": 1}, {"group": "head.gtc_head", "tensors": 83}]}


def test_imported_weights_protect_the_backbone(shared_dir, tmp_path):
    from workbench.tasks.rec import RecTask

    weights = _weights(tmp_path, shared_dir, IMPORTED)
    task = RecTask(rec_config(shared_dir, tmp_path / "run", model__pretrained=str(weights)))
    model = task.build_model()
    task.load_initial_weights(model)
    assert task.protects_backbone_from_nrtr and task.checkpoint_meta()["nrtr_backbone_protected"]
    norms = _backbone_grad_norms(task, model)
    assert norms["nrtr"] == 0.0 and norms["ctc"] > 0.0


@pytest.mark.parametrize("record", [None, {"initialised": []}])
def test_trained_weights_keep_upstreams_guide(shared_dir, tmp_path, record):
    """rec_tiny's guide is on by default: CTC detaches its input, NRTR trains the backbone."""
    from workbench.tasks.rec import RecTask

    weights = _weights(tmp_path, shared_dir, record)
    task = RecTask(rec_config(shared_dir, tmp_path / "run", model__pretrained=str(weights)))
    model = task.build_model()
    assert not task.protects_backbone_from_nrtr
    norms = _backbone_grad_norms(task, model)
    assert norms["ctc"] == 0.0 and norms["nrtr"] > 0.0


def test_the_switch_is_explicit_both_ways(shared_dir, tmp_path):
    from workbench.tasks.rec import RecTask

    weights = _weights(tmp_path, shared_dir, IMPORTED)
    upstream = RecTask(rec_config(shared_dir, tmp_path / "a", model__pretrained=str(weights),
                                  model__untrained_nrtr="upstream"))
    assert not upstream.protects_backbone_from_nrtr
    scratch = RecTask(rec_config(shared_dir, tmp_path / "b", model__untrained_nrtr="protect"))
    assert scratch.protects_backbone_from_nrtr
    with pytest.raises(ConfigError, match="untrained_nrtr"):
        _ = RecTask(rec_config(shared_dir, tmp_path / "c", model__untrained_nrtr="maybe")).protects_backbone_from_nrtr


def test_a_checkpoint_trained_protected_stays_protected(shared_dir, tmp_path):
    from workbench.weights.pretrained import nrtr_branch_untrained

    ckpt = tmp_path / "best"
    ckpt.mkdir()
    (ckpt / "model.pdparams").write_bytes(b"")
    (ckpt / "meta.json").write_text(json.dumps({"nrtr_backbone_protected": True}))
    assert nrtr_branch_untrained(ckpt / "model.pdparams")
    (ckpt / "meta.json").write_text(json.dumps({"nrtr_backbone_protected": False}))
    assert not nrtr_branch_untrained(ckpt / "model.pdparams")
