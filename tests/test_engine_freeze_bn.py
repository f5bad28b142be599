"""model.freeze_bn: BatchNorms keep (and normalise with) their running statistics while everything else trains."""

from __future__ import annotations

import numpy as np
import paddle

from tests.tiny_runs import det_config, train


def _start(tmp_path, shared_dir):
    from workbench.tasks.det import DetTask

    model = DetTask(det_config(shared_dir, tmp_path / "init")).build_model()
    path = tmp_path / "start.pdparams"
    paddle.save(model.state_dict(), str(path))
    return path, {k: v.numpy() for k, v in model.state_dict().items()}


def _trained(run_dir):
    return {k: np.asarray(v) for k, v in paddle.load(str(run_dir / "checkpoints" / "latest" / "model.pdparams")).items()}


def test_frozen_batch_norms_keep_their_statistics(shared_dir, tmp_path):
    start, before = _start(tmp_path, shared_dir)
    stats = [k for k in before if k.endswith("._mean") or k.endswith("._variance")]
    convs = [k for k in before if k.endswith(".weight") and before[k].ndim == 4]
    assert stats and convs

    frozen = _trained(train(det_config(shared_dir, tmp_path / "frozen", model__pretrained=str(start),
                                       model__freeze_bn=True)))
    assert all(np.array_equal(frozen[k], before[k]) for k in stats)
    assert any(not np.allclose(frozen[k], before[k]) for k in convs), "the rest must still train"

    free = _trained(train(det_config(shared_dir, tmp_path / "free", model__pretrained=str(start),
                                     model__freeze_bn=False)))
    assert any(not np.allclose(free[k], before[k]) for k in stats), "upstream's behaviour updates them"


def test_frozen_by_default_only_when_fine_tuning(shared_dir, tmp_path):
    from workbench.engine.trainer import Trainer
    from workbench.tasks.det import DetTask

    def frozen(**over):
        cfg = det_config(shared_dir, tmp_path / "x", **over)
        return Trainer(cfg, DetTask(cfg), tmp_path / "x").batch_norms_frozen

    assert frozen(model__pretrained="w.pdparams") and not frozen()
    assert not frozen(model__pretrained="w.pdparams", model__freeze_bn=False) and frozen(model__freeze_bn=True)


def test_frozen_prefixes_do_not_train_and_a_wrong_prefix_is_one_line(shared_dir, tmp_path):
    """``model.freeze``: parameters under the given state-dict prefixes keep their starting values."""
    import pytest

    from workbench.errors import ConfigError

    start, before = _start(tmp_path, shared_dir)
    frozen = _trained(train(det_config(shared_dir, tmp_path / "frozen", model__pretrained=str(start),
                                       model__freeze=["backbone"])))
    weights = [k for k in before if k.endswith(".weight") and before[k].ndim == 4]
    backbone = [k for k in weights if k.startswith("backbone.")]
    rest = [k for k in weights if not k.startswith("backbone.")]
    assert backbone and rest
    assert all(np.array_equal(frozen[k], before[k]) for k in backbone)
    assert any(not np.allclose(frozen[k], before[k]) for k in rest), "the rest must still train"

    with pytest.raises(ConfigError, match=r"^model\.freeze: backbone\.nope names no parameters"):
        train(det_config(shared_dir, tmp_path / "bad", model__freeze=["backbone.nope"]))
