"""Kill -9 drill: SIGKILL real PP-OCRv5 mobile rec and det trainings at random points, resume each, and compare
with an uninterrupted run at the same thread count.

    nice -n 10 python benchmarks/drill_kill9.py [--out DIR] [--seed 0] [--models rec,det] [--threads 1]

Per model (PP-OCRv5 mobile rec with the English dictionary, PP-OCRv5 mobile det; from scratch, small sizes,
samples from ../shared/data, tracking to a local sqlite MLflow store):

1. an uninterrupted reference run, which also records how often each fault point is reached (``WB_FAULT_TRACE``);
2. kill scenarios: a SIGKILL at a random visit of each fault point — mid-step (``train_step``), mid-evaluation
   (``eval_batch``), mid-checkpoint-write (``checkpoint_write``), mid-MLflow-log (``tracking_send``) —, one at a
   random wall-clock time (the phase it hit is read from the trace), and one run killed twice (the resumed run
   is killed again); each killed run is resumed with ``trainer.resume=<run dir>`` until it finishes;
3. every resumed run is compared with the reference: final weights and optimizer state of ``latest`` and
   ``best`` (bit-exact), best metric and step, global step, ``metrics.json``, the ``report/`` files (up to the run
   directory, MLflow run id and generation time they name), ``train_log.jsonl`` and the MLflow metric history (every key, step and
   value; wall-clock ``samples_per_sec`` by step only).

Prints one line per kill and a summary; exits 1 if any resumed run differs. This is a drill, not a CI test: it
takes minutes (CI runs the same guarantees on tiny models: tests/test_engine_checkpoint_faults.py,
tests/test_tracking_resume.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from _common import ROOT, SHARED

TIMING_KEYS = ("train/samples_per_sec",)
# MLflow's system metrics (CPU, memory, disk) are sampled on a wall-clock timer: they describe the machine while it
# ran, so a run that was killed and resumed has other samples by construction. Not compared.
SYSTEM_PREFIX = "system/"
PHASES = ("train_step", "eval_batch", "checkpoint_write", "tracking_send")


# --- the child: one training run -------------------------------------------------------------------------------
def child_config(model: str, run_dir: Path, uri: str, resume: bool, threads: int):
    from workbench.config.schema import TrainConfig

    cfg = TrainConfig(task=model)
    data = SHARED / "data"
    if model == "rec":
        cfg.model.name = "en_PP-OCRv5_mobile_rec"
        cfg.model.character_dict = str(SHARED / "fixtures" / "parity" / "ppocrv5_en_dict.txt")
        cfg.data.train = cfg.data.val = str(data / "icdar2015_rec" / "label.txt")
        cfg.data.policy = "skip"  # a few ICDAR labels use characters outside the English dictionary
        cfg.data.max_train_samples, cfg.data.max_val_samples = 24, 8
        cfg.data.batch_size = cfg.data.eval_batch_size = 4
        cfg.optim.lr = 1e-3
        cfg.eval.select_metric = "acc"
    else:
        cfg.model.name = "PP-OCRv5_mobile_det"
        cfg.data.train = cfg.data.val = str(data / "icdar2015_det" / "label.txt")
        cfg.data.max_train_samples, cfg.data.max_val_samples = 8, 2
        cfg.data.batch_size, cfg.data.eval_batch_size = 2, 1
        cfg.data.augment = {"crop_size": [320, 320]}
        cfg.eval.select_metric = "hmean"
        cfg.eval.det.also_upstream_mode = False
    cfg.data.num_workers = 0
    cfg.data.check = False
    cfg.trainer.epochs = 2
    cfg.trainer.eval_every_epochs = None
    cfg.trainer.eval_every_steps = 3 if model == "rec" else 2
    cfg.trainer.log_every_steps = 1
    cfg.trainer.progress_bar = False
    cfg.trainer.num_threads = threads
    cfg.trainer.output_dir = str(run_dir)
    cfg.trainer.resume = str(run_dir) if resume else None
    cfg.tracking.tracking_uri = uri
    cfg.tracking.experiment = f"drill-{model}-{run_dir.name}"
    cfg.tracking.log_checkpoints = False
    return cfg


def child(model: str, run_dir: Path, uri: str, resume: bool, threads: int) -> int:
    sys.path.insert(0, str(ROOT))
    from workbench.engine.trainer import Trainer
    from workbench.tasks import build_task

    cfg = child_config(model, run_dir, uri, resume, threads)
    Trainer(cfg, build_task(cfg), run_dir).fit()
    return 0


# --- the drill ---------------------------------------------------------------------------------------------------
def run_child(model: str, run_dir: Path, uri: str, *, resume: bool, threads: int, fault: str | None = None,
              kill_after: float | None = None, trace: Path | None = None, log: Path) -> tuple[int, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    env.pop("WB_FAULT", None)
    env.pop("WB_FAULT_TRACE", None)
    if fault:
        env["WB_FAULT"] = fault
    if trace:
        env["WB_FAULT_TRACE"] = str(trace)
    cmd = [sys.executable, __file__, "--child", model, str(run_dir), uri, str(int(resume)), str(threads)]
    t0 = time.time()
    with open(log, "a") as fh:
        # cwd: the drill folder (MLflow's sqlite store keeps artifacts in ./mlruns)
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
        try:
            if kill_after is not None:
                try:
                    proc.wait(kill_after)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
            rc = proc.wait(3600)
        finally:
            if proc.poll() is None:
                proc.kill()
    return rc, time.time() - t0


def finish_by_resuming(model, run_dir, uri, threads, log, max_tries=3) -> int:
    for _ in range(max_tries):
        rc, _ = run_child(model, run_dir, uri, resume=True, threads=threads, log=log)
        if rc == 0:
            return 0
    return rc


def compare(ref: Path, run: Path, uri: str) -> list[str]:
    """What differs between the reference run and a resumed one (empty: identical)."""
    import numpy as np

    from workbench.engine import checkpoint as ckpt
    from workbench.files.safe_load import load

    diffs = []
    for name in ("latest", "best"):
        a, b = ckpt.read_checkpoint(ref / "checkpoints" / name), ckpt.read_checkpoint(run / "checkpoints" / name)
        for field in ("global_step", "best_metric", "best_step", "epoch", "samples_seen", "finished"):
            if getattr(a.state, field) != getattr(b.state, field):
                diffs.append(f"{name}.{field} {getattr(a.state, field)} != {getattr(b.state, field)}")
        for f in (ckpt.MODEL_FILE, ckpt.OPTIMIZER_FILE):
            wa, wb = _flat(load(a.path / f)), _flat(load(b.path / f))
            if wa.keys() != wb.keys():
                diffs.append(f"{name}/{f}: keys differ")
                continue
            bad = [k for k in wa if not np.array_equal(wa[k], wb[k])]
            if bad:
                diffs.append(f"{name}/{f}: {len(bad)} tensors differ, e.g. {bad[0]}")
    for f in ("metrics.json",):
        if (ref / f).read_text() != (run / f).read_text():
            diffs.append(f"{f} differs")
    # the report (wb compare reads it), up to what names the run itself: its directory and MLflow run id
    names = [(str(r), json.loads((r / "mlflow_run.json").read_text())["run_id"]) for r in (ref, run)]
    files_a = sorted(p.relative_to(ref) for p in (ref / "report").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(run) for p in (run / "report").rglob("*") if p.is_file())
    if not files_a or files_a != files_b:
        diffs.append("report/ files differ")
    for rel in files_a if files_a == files_b else []:
        texts = []
        for (run_dir, run_id), root in zip(names, (ref, run)):
            raw = (root / rel).read_bytes().replace(run_dir.encode(), b"<run>").replace(run_id.encode(), b"<id>")
            texts.append(re.sub(rb"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", b"generated <time>", raw))
        if texts[0] != texts[1]:
            diffs.append(f"{rel} differs")
    if _train_log(ref) != _train_log(run):
        diffs.append("train_log.jsonl differs")
    ha, hb = _history(uri, ref), _history(uri, run)
    if ha != hb:
        keys = sorted(k for k in set(ha) | set(hb) if ha.get(k) != hb.get(k))
        diffs.append(f"MLflow history differs for {keys[:4]}")
    return diffs


def _flat(obj, prefix=""):
    import numpy as np

    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}/"))
        return out
    return {prefix: np.asarray(obj)}


def _train_log(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "time" and k not in TIMING_KEYS}
            for line in (run / "train_log.jsonl").read_text().splitlines()]


def _history(uri: str, run: Path) -> dict:
    from mlflow.tracking import MlflowClient

    run_id = json.loads((run / "mlflow_run.json").read_text())["run_id"]
    client = MlflowClient(uri)
    out = {}
    for key in client.get_run(run_id).data.metrics:
        if key.startswith(SYSTEM_PREFIX):
            continue
        rows = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        out[key] = [s for s, _ in rows] if key in TIMING_KEYS else rows
    out["_status"] = client.get_run(run_id).info.status
    return out


def drill(model: str, out: Path, rng: random.Random, threads: int) -> list[dict]:
    folder = out / model
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    log = folder / "drill.log"
    ref = folder / "reference"
    trace = folder / "reference.trace"
    rc, seconds = run_child(model, ref, uri, resume=False, threads=threads, trace=trace, log=log)
    if rc != 0:
        raise SystemExit(f"{model}: the reference run failed (rc {rc}); see {log}")
    visits = Counter(trace.read_text().split())
    print(f"{model}: reference run {seconds:.0f} s; fault points reached: "
          + ", ".join(f"{p} x{visits[p]}" for p in PHASES), flush=True)

    scenarios = [(p, [rng.randint(1, visits[p])]) for p in PHASES if visits[p]]
    scenarios.append(("timed", [rng.uniform(0.2, 0.6) * seconds]))
    # killed, then its resume killed too (at its first or second checkpoint write)
    scenarios.append(("twice", [rng.randint(1, visits["train_step"]), rng.randint(1, 2)]))
    results = []
    for k, (phase, points) in enumerate(scenarios):
        run = folder / f"kill{k}_{phase}"
        kills = []
        for j, point in enumerate(points):
            t = folder / f"kill{k}_{phase}.trace{j}"
            resume = j > 0
            if phase == "timed":
                rc, _ = run_child(model, run, uri, resume=resume, threads=threads, kill_after=point, trace=t, log=log)
                hit = (t.read_text().split() or ["startup"])[-1] if t.exists() else "startup"
                where = f"t={point:.1f}s (last point reached: {hit})"
            else:
                fault = ("train_step" if j == 0 else "checkpoint_write") if phase == "twice" else phase
                rc, _ = run_child(model, run, uri, resume=resume, threads=threads, fault=f"{fault}:{point}",
                                  log=log)
                where = f"{fault}:{point}"
            kills.append((where, rc))
        killed = sum(rc == -signal.SIGKILL for _, rc in kills)
        rc = finish_by_resuming(model, run, uri, threads, log)
        diffs = compare(ref, run, uri) if rc == 0 else [f"resume failed (rc {rc})"]
        state = json.loads((run / "checkpoints" / "latest" / "state.json").read_text()) if rc == 0 else {}
        row = {"model": model, "scenario": phase, "kills": [w for w, rc in kills if rc == -signal.SIGKILL],
               "not_killed": [w for w, rc in kills if rc != -signal.SIGKILL], "sigkilled": killed,
               "resumed_ok": rc == 0, "identical": not diffs, "diffs": diffs,
               "global_step": state.get("global_step"), "best_metric": state.get("best_metric")}
        results.append(row)
        print(f"  {model:<3} {phase:<16} killed at {', '.join(w for w, _ in kills):<48} "
              f"sigkill x{killed}  resumed {'ok' if rc == 0 else 'FAILED'}  "
              f"{'identical' if not diffs else 'DIFFERS: ' + '; '.join(diffs)}", flush=True)
    return results


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        model, run_dir, uri, resume, threads = sys.argv[2:7]
        return child(model, Path(run_dir), uri, resume == "1", int(threads))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/wb_drill_kill9"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="rec,det")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    t0 = time.time()
    results = []
    for model in args.models.split(","):
        results += drill(model, args.out, rng, args.threads)
    kills = sum(r["sigkilled"] for r in results)
    same = sum(r["identical"] for r in results)
    phases = Counter(w.split(":")[0] if not w.startswith("t=") else "timed" for r in results for w in r["kills"])
    # (a timed kill that came after its run had finished is not counted: see "not_killed" in drill.json)
    (args.out / "drill.json").write_text(json.dumps(results, indent=1))
    print(f"\nkill -9 drill: {kills} SIGKILLs in {len(results)} runs ({dict(phases)}); {len(results)} resumed, "
          f"{same} identical to the uninterrupted run; {time.time() - t0:.0f} s; details {args.out / 'drill.json'}")
    return 0 if same == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
