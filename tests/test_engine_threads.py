"""``trainer.num_threads: null`` trains on this rank's share of the cores the process may run on (Paddle alone would
use one thread); an explicit value wins; the CPU device puts MKL in its reproducible mode (exact resume)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from workbench.engine import device
from workbench.engine.device import default_cpu_threads


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_default_threads_follow_affinity_and_world_size(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 5, 7})
    assert default_cpu_threads() == 6
    assert default_cpu_threads(2) == 3
    assert default_cpu_threads(4) == 1
    assert default_cpu_threads(16) == 1  # never zero
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # said explicitly: taken as is
    assert default_cpu_threads() == default_cpu_threads(2) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Paddle writes there at import when unset
    assert default_cpu_threads() == 6
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(device, "_cgroup_cpu_quota", lambda: 2)  # a container allowed 2 CPUs of a larger host
    assert default_cpu_threads() == 2 and default_cpu_threads(2) == 1


def test_paddle_import_does_not_change_the_default():
    # Paddle writes OMP_NUM_THREADS=1 at import when it is unset: that must not read as the user's choice
    code = ("import os; from workbench.engine.device import default_cpu_threads; a = default_cpu_threads(); "
            "import paddle; print(a, default_cpu_threads(), os.environ.get('OMP_NUM_THREADS'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    before, after, written = r.stdout.split()[-3:]
    assert written == "1" and before == after, r.stdout


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


_MODE = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
import paddle
from workbench.engine.device import reproducible_cpu_math, set_device
if sys.argv[1] == "math-first":
    paddle.matmul(paddle.ones([64, 64]), paddle.ones([64, 64]))
set_device("cpu", num_threads=2)
for dtype in ("float32", "float64"):  # export verification's reference model runs in float64
    assert float(paddle.matmul(paddle.ones([64, 64], dtype), paddle.ones([64, 64], dtype)).sum()) == 64 ** 3
print("mode in effect:", reproducible_cpu_math())
"""


def _mode_runs_on_this_cpu() -> bool:
    return any(device._mode_runs_here(device._paddle_libs(), mode) is None for mode in device._STRICT_MODES)


@pytest.mark.parametrize("order", ["device-first", "math-first"])
def test_cpu_device_turns_on_mkl_reproducible_mode(order):
    # MKL splits GEMMs by operand alignment at 2+ threads: without its strict mode a resumed run ends 8e-6 away.
    # Where MKL crashes in AUTO,STRICT (AMD EPYC Zen 4: SIGILL in its double GEMM, which killed export
    # verification) COMPATIBLE,STRICT is taken; where no mode runs it stays off with one line. float64 math runs.
    r = subprocess.run([sys.executable, "-c", _MODE, order], capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if k != "MKL_CBWR"})
    assert r.returncode == 0, r.stderr[-2000:]
    if not _mode_runs_on_this_cpu():
        assert "mode in effect: None" in r.stdout
        assert "MKL's reproducible mode left off (" in r.stdout
    elif order == "device-first":  # what every wb run does
        assert "mode in effect: True" in r.stdout
        assert "reproducible mode" not in r.stdout
    else:  # too late to change: said in one line, not silently
        assert "mode in effect: False" in r.stdout
        assert "MKL already ran in this process outside its reproducible mode" in r.stdout


def test_mkl_mode_trial_reports_why_it_did_not_run():
    assert "exited with status 1" in device._mode_runs_here("/no/such/paddle/libs", device._CBWR_AUTO)


def _drops_to_one_thread(*_):
    """What a Paddle Inference predictor run does to the process (tests/test_engine_compiled_eval.py shows it)."""
    from paddle.base import core

    core.set_num_threads(1)
    return ["out"]


@pytest.mark.parametrize("caller", ["export verification's runner", "analysis's PaddleX pipeline"])
def test_paddlex_calls_leave_the_math_threads_as_they_were(caller):
    from paddle.base import core

    from workbench.analysis.pipeline import PaddleXPipeline
    from workbench.export.verify.recording import RunnerRecorder

    before = device.cpu_math_threads()
    assert before is not None
    core.set_num_threads(3)
    try:
        if caller.startswith("export"):
            RunnerRecorder(_drops_to_one_thread)([np.zeros(2)])
        else:
            PaddleXPipeline.__new__(PaddleXPipeline)._call("an image", _drops_to_one_thread)
        assert device.cpu_math_threads() == 3
    finally:
        core.set_num_threads(before)
