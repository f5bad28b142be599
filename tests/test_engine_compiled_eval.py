"""Evaluation through Paddle Inference + oneDNN (eval.runtime, engine/compiled_eval.py) scores what the eager
model scores, for every task with an evaluation graph."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from tiny_runs import det_config, rec_config, textline_config
from workbench.api.evaluation import run_eval
from workbench.engine.compiled_eval import CompiledModel, eval_runner
from workbench.errors import ConfigError

CONFIGS = {"rec": rec_config, "det": det_config, "textline_ori": textline_config}


@pytest.mark.parametrize("task", sorted(CONFIGS))
def test_compiled_evaluation_scores_as_eager(task, shared_dir, tmp_path, request):
    run = request.getfixturevalue(f"tiny_{'textline' if task == 'textline_ori' else task}_run")
    metrics = {}
    for runtime in ("eager", "inference"):
        cfg = CONFIGS[task](shared_dir, tmp_path / runtime)
        cfg.checkpoint, cfg.eval.runtime, cfg.eval.report = str(run), runtime, False
        metrics[runtime] = run_eval(cfg, tmp_path / runtime)["metrics"]
    assert metrics["eager"].keys() == metrics["inference"].keys()
    for k, v in metrics["eager"].items():
        assert metrics["inference"][k] == pytest.approx(v, abs=1e-3), k


def test_compiled_model_matches_the_eager_model_on_dynamic_shapes(shared_dir):
    from workbench.engine.trainer import inference_copy
    from workbench.models import zoo

    model = inference_copy(zoo.build_model("det_tiny"))
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", name="x")]
    compiled = eval_runner(model, runtime="inference", input_spec=lambda: spec, device="cpu", threads=1)
    assert isinstance(compiled, CompiledModel)
    try:
        for shape in ((1, 3, 64, 96), (2, 3, 128, 64)):  # oneDNN compiles per shape: two different ones
            x = paddle.to_tensor(np.random.default_rng(0).standard_normal(shape).astype("float32"))
            with paddle.no_grad():
                want = model(x).numpy()
            got = compiled(x).numpy()
            assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
    finally:
        compiled.close()
    assert not compiled.folder.exists()


def test_runtime_choice():
    from workbench.engine.compiled_eval import check_runtime

    model = object()

    def no_spec_asked():
        raise AssertionError("the input spec is asked for only when compiling")

    assert eval_runner(model, runtime="auto", input_spec=lambda: None, device="cpu", threads=1) is model
    assert eval_runner(model, runtime="auto", input_spec=no_spec_asked, device="gpu", threads=1) is model
    assert eval_runner(model, runtime="eager", input_spec=no_spec_asked, device="cpu", threads=1) is model
    with pytest.raises(ConfigError, match="eval.runtime='fast'"):
        eval_runner(model, runtime="fast", input_spec=lambda: None, device="cpu", threads=1)
    with pytest.raises(ConfigError, match="no evaluation graph"):
        eval_runner(model, runtime="inference", input_spec=lambda: None, device="cpu", threads=1)
    with pytest.raises(ConfigError, match="on a GPU use auto or eager"):
        check_runtime("inference", "gpu")

    def spec_fails():
        raise NotImplementedError

    assert eval_runner(model, runtime="auto", input_spec=spec_fails, device="cpu", threads=1) is model


def test_paddle_stdout_noise_is_dropped_and_the_rest_kept(capfd):
    """Paddle 3.3.1 prints a debug line to fd 1 from C++ for each new shape of a reduce_mean in oneDNN (PP-OCRv6
    graphs: dozens per evaluation); a predictor call drops those lines and nothing else, C stdio included."""
    import ctypes
    import os

    from workbench.engine.compiled_eval import _WithoutPaddleNoise

    libc = ctypes.CDLL(None)
    with _WithoutPaddleNoise():
        os.write(1, b"kept 1\nReduceMeanCheckIfOneDNNSupport\n")
        libc.printf(b"ReduceMeanCheckIfOneDNNSupport\nkept 2 (C stdio, not flushed)\n")
    os.write(1, b"after\n")
    out = capfd.readouterr().out
    assert out == "kept 1\nkept 2 (C stdio, not flushed)\nafter\n", out


def test_paddle_noise_filter_runs_the_call_when_stdout_is_closed():
    """A process without fd 1 (closed by its parent) still evaluates: the filter steps aside."""
    import os

    from workbench.engine.compiled_eval import _WithoutPaddleNoise

    saved = os.dup(1)
    try:
        os.close(1)
        with _WithoutPaddleNoise():
            ran = True
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    assert ran


_THREADS_AFTER_EVAL = """
import numpy as np, paddle
from workbench.engine.compiled_eval import compile_for_eval
from workbench.engine.device import cpu_math_threads, set_device
from workbench.models import zoo

set_device("cpu", num_threads=2)
model = zoo.build_model("det_tiny")
model.eval()
spec = [paddle.static.InputSpec([None, 3, None, None], "float32", name="x")]
compiled = compile_for_eval(model, spec, threads=2)
x = paddle.to_tensor(np.zeros((1, 3, 64, 64), "float32"))
try:
    compiled.predictor.run([x])  # the predictor alone: Paddle's math left at 1 thread
    print("bare", cpu_math_threads())
    paddle.base.core.set_num_threads(2)
    compiled(x)
    print("kept", cpu_math_threads())
finally:
    compiled.close()
"""


def test_evaluation_leaves_the_training_threads_as_they_were():
    """A Paddle Inference run sets Paddle's CPU math to 1 thread after it; the compiled evaluation puts back what the
    trainer set (a trainer evaluating at every epoch trained on single-threaded: rec steps 1.5x slower)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _THREADS_AFTER_EVAL], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split() for line in out.stdout.splitlines() if line.startswith(("bare", "kept")))
    assert lines == {"bare": "1", "kept": "2"}
