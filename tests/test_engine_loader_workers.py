"""Loader workers as processes or as threads (``data.worker_type``) load the same batches: each sample's
augmentation draws from its own seed, wherever it runs."""

from __future__ import annotations

import numpy as np
import pytest

from tiny_runs import det_config
from workbench.engine.loader import BatchLoader, EpochSampler
from workbench.errors import ConfigError
from workbench.tasks import build_task


def _assert_same(a, b, where: str) -> None:
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where)


def _batches(task, ds, **loader):
    sampler = EpochSampler(ds, 2, seed=7)
    return list(BatchLoader(ds, sampler, task.collate_train, **loader).iter_epoch(1))


def test_thread_and_process_workers_load_the_same_det_batches(shared_dir, tmp_path):
    # det augmentation on (random scale, rotation, crop windows): the batches must match, not only their shapes
    task = build_task(det_config(shared_dir, tmp_path / "run"))
    ds = task.train_dataset()
    inline = _batches(task, ds, num_workers=0)
    for worker_type in ("thread", "process"):
        loaded = _batches(task, ds, num_workers=2, worker_type=worker_type)
        assert len(loaded) == len(inline) == 4
        for a, b in zip(inline, loaded):
            assert a.keys() == b.keys()
            for key in a:
                _assert_same(a[key], b[key], f"{worker_type}: {key}")


def test_an_unknown_worker_type_is_a_config_error(shared_dir, tmp_path):
    task = build_task(det_config(shared_dir, tmp_path / "run"))
    ds = task.train_dataset()
    with pytest.raises(ConfigError, match=r"^data\.worker_type='fork': choose process or thread$"):
        BatchLoader(ds, EpochSampler(ds, 2), task.collate_train, num_workers=2, worker_type="fork")
