"""Checkpoints under faults: a SIGKILL at any point (here: mid-write), a truncated file, a full disk. What a reader
sees as ``latest`` / ``best`` is always complete; a resume ends exactly where an uninterrupted run ends, with the
same outputs (weights, optimizer state, step, best metric, ``metrics.json``, ``train_log.jsonl``)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.engine import checkpoint as ckpt
from workbench.files.safe_load import load

HERE = Path(__file__).resolve().parent


def run_worker(kind: str, run_dir: Path, *opts: str, fault: str | None = None, timeout: int = 600):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WB_FAULT", None)
    if fault:
        env["WB_FAULT"] = fault
    run_dir.parent.mkdir(parents=True, exist_ok=True)  # also the cwd: MLflow's sqlite store puts ./mlruns there
    return subprocess.run([sys.executable, str(HERE / "fault_worker.py"), kind, str(run_dir), *opts],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=run_dir.parent)


def assert_same_run(a: Path, b: Path, *, outputs: bool = True) -> None:
    """Final weights, optimizer state, step and best metric identical; and the run's files the same."""
    for name in ("latest", "best"):
        ca, cb = ckpt.read_checkpoint(a / "checkpoints" / name), ckpt.read_checkpoint(b / "checkpoints" / name)
        fields = ("global_step", "epoch", "batch_in_epoch", "samples_seen", "best_metric", "best_step", "finished")
        assert [getattr(ca.state, f) for f in fields] == [getattr(cb.state, f) for f in fields], name
        for f in (ckpt.MODEL_FILE, ckpt.OPTIMIZER_FILE):
            wa, wb = _flat(load(ca.path / f)), _flat(load(cb.path / f))
            assert wa.keys() == wb.keys(), f
            for k in wa:
                np.testing.assert_array_equal(wa[k], wb[k], err_msg=f"{name}/{f}:{k}")
    if outputs:
        assert (a / "metrics.json").read_text() == (b / "metrics.json").read_text()
        rows = [[{k: v for k, v in json.loads(line).items() if k not in ("time", "train/samples_per_sec")}
                 for line in (run / "train_log.jsonl").read_text().splitlines()] for run in (a, b)]
        assert rows[0] == rows[1]


def _flat(obj, prefix=""):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}/"))
        return out
    return {prefix: np.asarray(obj)}


@pytest.fixture(scope="module")
def toy_reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("toy_ref") / "run"
    r = run_worker("toy", run)
    assert r.returncode == 0, r.stderr[-3000:]
    return run


def test_checkpoint_folder_is_versions_behind_atomic_links(toy_reference):
    folder = toy_reference / "checkpoints"
    for name in ("latest", "best", "previous"):
        assert (folder / name).is_symlink() and ckpt.is_checkpoint_dir(folder / name), name
        ckpt.verify_checkpoint(folder / name)
    assert {p.name for p in folder.iterdir()} <= {"latest", "best", "previous", *[v.name for v in
                                                                                 ckpt.versions(folder)]}
    assert len(ckpt.versions(folder)) <= 3  # versions no link points to are deleted
    manifest = json.loads((folder / "best" / "manifest.json").read_text())["files"]
    assert {"model.pdparams", "optimizer.pdopt", "state.json", "eval_result.pkl"} <= set(manifest)


@pytest.mark.parametrize("nth_write", [2, 4])
def test_sigkill_mid_checkpoint_write_then_resume_is_exact(tmp_path, toy_reference, nth_write):
    """Toy run: 3 epochs, saves at steps 8, 16, 24, 24 (final). Killed while writing save ``nth_write`` (one file of
    the new version written): ``latest`` still verifies; the resume ends identical to the uninterrupted run, with
    the same metrics.json (nth_write=4 is the issue's case: killed after the last evaluation, the resumed process
    has no evaluation of its own to write it from)."""
    run = tmp_path / "run"
    r = run_worker("toy", run, fault=f"checkpoint_write:{nth_write}")
    assert r.returncode == -9, r.stderr[-3000:]
    latest = run / "checkpoints" / "latest"
    ckpt.verify_checkpoint(latest)  # complete, the one before the killed write
    assert ckpt.read_checkpoint(latest).state.global_step == 8 * (nth_write - 1)
    assert [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")], "the kill left its temp dir"
    r = run_worker("toy", run, f"resume={run}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")], "temp dirs cleaned up"
    assert_same_run(toy_reference, run)


def test_optimizer_state_round_trips_exactly_with_parameters_that_never_got_a_gradient():
    """(Found by the kill -9 drill on PP-OCRv5 det.) Adam has no moments for an unused parameter; the restored
    optimizer must not invent zeros for it, or its state (and checkpoint) differs from the uninterrupted run's."""
    import paddle

    class WithUnused(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.used = paddle.nn.Linear(3, 2)
            self.unused = paddle.nn.Linear(3, 2)

        def forward(self, x):
            return self.used(x)

    paddle.seed(0)
    a = WithUnused()
    opt_a = paddle.optimizer.Adam(parameters=a.parameters())
    a(paddle.ones([2, 3])).sum().backward()
    opt_a.step()
    saved = ckpt.optimizer_state(opt_a, a)
    b = WithUnused()
    opt_b = paddle.optimizer.Adam(parameters=b.parameters())
    ckpt.load_optimizer_state(opt_b, b, saved)
    again = ckpt.optimizer_state(opt_b, b)
    assert _flat(again["accumulators"]).keys() == _flat(saved["accumulators"]).keys()
    assert not any("unused" in k for k in _flat(again["accumulators"]))


def test_truncated_latest_falls_back_to_previous_and_says_so(tmp_path, toy_reference, caplog):
    run = tmp_path / "run"
    r = run_worker("toy", run, fault="train_step:20")  # killed in epoch 3: latest = step 16, previous = step 8
    assert r.returncode == -9
    latest = ckpt.link_target(run / "checkpoints" / "latest")
    data = (latest / "model.pdparams").read_bytes()
    (latest / "model.pdparams").write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match=r"model\.pdparams has [\d,]+ of its [\d,]+ bytes \(truncated\)"):
        ckpt.verify_checkpoint(run / "checkpoints" / "latest")

    from test_engine_trainer import make_cfg
    from toy_task import ToyTask
    from workbench.engine.trainer import Trainer

    cfg = make_cfg(run, epochs=3, resume=str(run))
    cfg.trainer.num_threads = 1
    with caplog.at_level(logging.WARNING, logger="workbench.checkpoint"):
        Trainer(cfg, ToyTask(cfg), run).fit()
    assert "truncated" in caplog.text and "resuming from the previous good checkpoint" in caplog.text
    assert "step-00000008" in caplog.text
    assert (run / "checkpoints" / f"damaged-{latest.name}").is_dir()  # kept for inspection, not deleted
    assert_same_run(toy_reference, run)


def test_disk_full_names_the_path_and_bytes_and_keeps_the_previous_checkpoint(tmp_path, shared_dir):
    run = tmp_path / "run"
    r = run_worker("rec_tiny", run, "epochs=1")
    assert r.returncode == 0, r.stderr[-3000:]
    latest = run / "checkpoints" / "latest"
    before = {p.name: p.read_bytes() for p in latest.iterdir()}
    model_bytes = (latest / "model.pdparams").stat().st_size
    # files may not grow past 64 KB: the next checkpoint's model.pdparams cannot be written
    r = run_worker("rec_tiny", run, "epochs=2", f"resume={run}", f"fsize={64 * 1024}")
    assert r.returncode == 2, r.stderr[-3000:]
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith(f"error: cannot write checkpoint {latest}: File too large while writing model.pdparams")
    needed = int(err.split("needs about ")[1].split(" bytes")[0].replace(",", ""))
    assert model_bytes < needed < 4 * model_bytes  # weights + Adam moments, as counted from the tensors
    assert "The previous checkpoint is intact" in err and "Traceback" not in r.stderr
    assert {p.name: p.read_bytes() for p in latest.iterdir()} == before
    ckpt.verify_checkpoint(latest)
    assert not [p for p in (run / "checkpoints").rglob("*") if p.name.startswith(".")], "no half-written files"
    assert len(ckpt.versions(run / "checkpoints")) == 2  # latest/best and previous, nothing new


@pytest.mark.slow
def test_rec_tiny_killed_mid_evaluation_resumes_to_the_same_report(tmp_path, shared_dir):
    """A real OCR task (rec_tiny on ICDAR crops, tracked in a sqlite store), SIGKILLed in its last evaluation:
    the resumed run's weights, metrics.json, train_log and report/ equal the uninterrupted run's (the report up
    to the run directory, run id and generation time it names)."""
    import re

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert run_worker("rec_tiny", ref, f"tracking_uri={uri}", "experiment=ref").returncode == 0
    r = run_worker("rec_tiny", run, f"tracking_uri={uri}", "experiment=killed", fault="eval_batch:2")
    assert r.returncode == -9, r.stderr[-3000:]
    r = run_worker("rec_tiny", run, f"tracking_uri={uri}", "experiment=killed", f"resume={run}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_run(ref, run)
    files = sorted(p.relative_to(ref) for p in (ref / "report").rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(run) for p in (run / "report").rglob("*") if p.is_file())

    def normalised(root, rel):
        run_id = json.loads((root / "mlflow_run.json").read_text())["run_id"]
        raw = (root / rel).read_bytes().replace(str(root).encode(), b"<run>").replace(run_id.encode(), b"<id>")
        return re.sub(rb"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", b"generated <time>", raw)

    for rel in files:
        assert normalised(ref, rel) == normalised(run, rel), rel
