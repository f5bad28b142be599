"""Data parallelism on CPU (gloo) with 2 processes through paddle.distributed.launch: training equals
single-process training with the same global batch; evaluation equals single-process evaluation exactly;
resume works across a changed device count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

from workbench.engine.launch import launch_command

HERE = Path(__file__).resolve().parent
WORKER = HERE / "dist_worker.py"

pytestmark = pytest.mark.slow


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), str(HERE), env.get("PYTHONPATH", "")])
    env.pop("PADDLE_TRAINER_ID", None)
    return env


def run_single(*args):
    subprocess.run([sys.executable, str(WORKER), *map(str, args)], check=True, env=_env(), timeout=600,
                   capture_output=True)


def run_two(log_dir: Path, *args):
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(log_dir),
           str(WORKER), *map(str, args)]
    r = subprocess.run(cmd, env=_env(), timeout=600, capture_output=True, text=True)
    logs = "\n".join(p.read_text()[-3000:] for p in sorted(log_dir.glob("workerlog.*")))
    assert r.returncode == 0, logs


def weights(run: Path):
    return {k: np.asarray(v) for k, v in paddle.load(str(run / "checkpoints" / "latest" / "model.pdparams")).items()}


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path):
    run_single("toy", tmp_path / "one", 16)
    run_two(tmp_path / "logs", "toy", tmp_path / "two", 8)
    one, two = json.loads((tmp_path / "one" / "result.json").read_text()), json.loads(
        (tmp_path / "two" / "result.json").read_text())
    assert two["world_size"] == 2 and one["global_step"] == two["global_step"] == 8
    assert one["samples_seen"] == two["samples_seen"] == 128
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=2e-5, err_msg=k)


def test_distributed_evaluation_equals_single_process_exactly(tmp_path, tiny_rec_run):
    run_single("rec_eval", tmp_path, tiny_rec_run)
    run_two(tmp_path / "logs", "rec_eval", tmp_path, tiny_rec_run)
    one = json.loads((tmp_path / "eval_1.json").read_text())
    two = json.loads((tmp_path / "eval_2.json").read_text())
    assert len(one["preds"]) == len(two["preds"]) == 37
    assert one == two


def test_resume_on_one_process_after_two(tmp_path):
    run_two(tmp_path / "logs", "toy", tmp_path / "run", 8)
    state = json.loads((tmp_path / "run" / "checkpoints" / "latest" / "state.json").read_text())
    assert state["world_size"] == 2 and state["finished"]
    # resume with one process and a batch of 16: nothing left to do but the position must carry over
    (tmp_path / "run" / "checkpoints" / "latest" / "state.json").write_text(json.dumps(
        {**state, "finished": False, "epoch": 1, "batch_in_epoch": 2, "global_step": 6, "samples_seen": 96}))
    run_single("toy", tmp_path / "run", 16, str(tmp_path / "run"))
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    # 2 batches x 8 x 2 ranks = 32 samples of epoch 2 were done: one process continues at its batch 2 of 16
    assert res["world_size"] == 1 and res["global_step"] == 8 and res["samples_seen"] == 128


def test_launch_command_for_two_nodes():
    cmd = launch_command(["recipe=det_finetune", "trainer.devices=8"], devices=8, nodes=2, master="10.0.0.1:8090",
                         node_rank=1, device="gpu", run_dir=Path("/r"))
    s = " ".join(cmd)
    assert "--nproc_per_node 8" in s and "--nnodes 2 --master 10.0.0.1:8090 --rank 1" in s
    assert "--devices 0,1,2,3,4,5,6,7" in s and s.endswith("trainer.output_dir=/r hydra.run.dir=/r")
