"""Untrusted weight files: a .pdparams is a pickle, and unpickling one may run code. Every weights read goes through
``workbench.files.safe_load``, which accepts arrays and plain containers only and names what it refused."""

from __future__ import annotations

import os
import pickle

import numpy as np
import paddle
import pytest

from workbench.errors import WeightsError
from workbench.files import safe_load


class _RunsCode:
    """Unpickling this calls os.system: what a malicious .pdparams does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious(tmp_path, name="evil.pdparams"):
    marker = tmp_path / "code_ran"
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"weight": np.zeros(3, np.float32), "x": _RunsCode(marker)}, protocol=4))
    return path, marker


def test_paddle_saved_state_dict_and_nested_optimizer_state_load_as_arrays(tmp_path):
    layer = paddle.nn.Linear(3, 2)
    paddle.save(layer.state_dict(), str(tmp_path / "m.pdparams"))
    state = safe_load.load_state_dict(tmp_path / "m.pdparams")
    assert set(state) == {"weight", "bias"}  # Paddle's StructuredToParameterName@@ table dropped
    np.testing.assert_array_equal(state["weight"], layer.weight.numpy())

    opt = paddle.optimizer.Adam(parameters=layer.parameters(),
                                learning_rate=paddle.optimizer.lr.CosineAnnealingDecay(0.1, 10))
    layer(paddle.ones([1, 3])).sum().backward()
    opt.step()
    nested = {"accumulators": {k: dict(v) for k, v in opt._accumulators.items()},
              "lr_scheduler": opt._learning_rate.state_dict(), "scale": np.float32(2.0), "names": ("a", "b")}
    paddle.save(nested, str(tmp_path / "o.pdopt"))
    got = safe_load.load(tmp_path / "o.pdopt")
    moment = next(iter(got["accumulators"]["moment1"].values()))
    assert isinstance(moment, np.ndarray) and moment.shape == (3, 2)
    assert got["lr_scheduler"] == opt._learning_rate.state_dict() and got["scale"] == 2.0


def test_protocol_2_files_load(tmp_path):
    """Files written by older Paddle / Python 2 era tools use pickle protocol 2 (bytes via _codecs.encode)."""
    path = tmp_path / "old.pdparams"
    path.write_bytes(pickle.dumps({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, protocol=2))
    np.testing.assert_array_equal(safe_load.load_state_dict(path)["w"], np.arange(6).reshape(2, 3))


@pytest.mark.parametrize("reader", ["safe_load", "read_state_dict", "checkpoint"])
def test_a_pickle_that_would_run_code_is_refused_before_anything_runs(tmp_path, reader):
    path, marker = _malicious(tmp_path, "model.pdparams")
    with pytest.raises(WeightsError, match=r"refused to load: the file references posix\.system|"
                                           r"refused to load: the file references os\.system") as exc:
        if reader == "safe_load":
            safe_load.load(path)
        elif reader == "read_state_dict":
            from workbench.weights.pretrained import read_state_dict

            read_state_dict(path)
        else:
            from workbench.engine.checkpoint import Checkpoint, TrainState

            Checkpoint(tmp_path, TrainState(), {}).load_weights()
    assert str(path) in str(exc.value)
    assert not marker.exists(), "the payload ran"


def test_model_pretrained_refuses_a_malicious_file_through_the_trainer(tmp_path, shared_dir):
    """`model.pretrained=<file>` reaches the strict loader through the safe one (wb train / wb eval path)."""
    from tiny_runs import rec_config
    from workbench.engine.trainer import Trainer
    from workbench.tasks import build_task

    path, marker = _malicious(tmp_path)
    cfg = rec_config(shared_dir, tmp_path / "run", trainer__epochs=1)
    cfg.model.pretrained = str(path)
    with pytest.raises(WeightsError, match="refused to load"):
        Trainer(cfg, build_task(cfg), tmp_path / "run").fit()
    assert not marker.exists()


def test_resume_refuses_a_malicious_rng_state(tmp_path):
    """state.json carries Paddle's RNG state pickled: only GeneratorState is accepted there."""
    import json

    from workbench.engine.checkpoint import restore_rng

    marker = tmp_path / "code_ran"
    state = {"python": None, "numpy": None, "paddle": [pickle.dumps(_RunsCode(marker)).hex()]}
    import random

    state["python"] = [random.getstate()[0], list(random.getstate()[1]), None]
    np_state = np.random.get_state()
    state["numpy"] = [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]
    json.dumps(state)
    with pytest.raises(WeightsError, match="refused to load"):
        restore_rng(state)
    assert not marker.exists()


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"PK\x03\x04 not a pickle", "does not start like a pickle"),
])
def test_empty_or_foreign_files_are_named(tmp_path, content, match):
    path = tmp_path / "w.pdparams"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=match):
        safe_load.load(path)


def test_truncated_file_is_a_clear_error(tmp_path):
    layer = paddle.nn.Linear(30, 20)
    paddle.save(layer.state_dict(), str(tmp_path / "m.pdparams"))
    data = (tmp_path / "m.pdparams").read_bytes()
    (tmp_path / "m.pdparams").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or damaged"):
        safe_load.load(tmp_path / "m.pdparams")
