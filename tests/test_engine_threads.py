"""``trainer.num_threads: null`` trains on this rank's share of the cores the process may run on (Paddle alone would
use one thread); an explicit value wins."""

from __future__ import annotations

import os

import pytest

from workbench.engine.device import default_cpu_threads


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_default_threads_follow_affinity_and_world_size(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 5, 7})
    assert default_cpu_threads() == 6
    assert default_cpu_threads(2) == 3
    assert default_cpu_threads(4) == 1
    assert default_cpu_threads(16) == 1  # never zero


def test_trainer_sets_the_default_unless_given(monkeypatch):
    from workbench.config.schema import TrainConfig
    from workbench.engine import device, trainer
    from workbench.engine.distributed import DistEnv

    seen = []
    monkeypatch.setattr(device, "set_device", lambda *a, **k: seen.append(k["num_threads"]) or "cpu")
    monkeypatch.setattr(device, "default_cpu_threads", lambda world_size=1: 8 // world_size)
    cfg = TrainConfig(task="rec")
    trainer.set_device(cfg, DistEnv())
    cfg.trainer.num_threads = 3
    trainer.set_device(cfg, DistEnv())
    assert seen == [8, 3]
