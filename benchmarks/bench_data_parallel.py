"""Data-parallel scaling on this machine: the same training (global batch, steps) with 1 process and with N
processes (paddle.distributed collective mode; gloo on CPU, NCCL on GPU), through `wb train trainer.devices=N`.

    python benchmarks/bench_data_parallel.py [--devices 2] [--model rec_tiny] [--batch 32] [--steps 12]

On a 2-core CPU each process gets one core (OMP_NUM_THREADS=1), so 2 processes show how well the CPU cores are
used in parallel compared with one process using both cores through Paddle's own threads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, SHARED, report


def run(devices: int, args, out: Path, threads: int) -> float:
    d = SHARED / "data" / "icdar2015_rec" / "label.txt"
    cmd = [sys.executable, "-m", "workbench.cli", "train", "recipe=rec_finetune", f"model={args.model}",
           f"model.character_dict={SHARED}/fixtures/parity/ppocrv5_en_dict.txt", f"data.train={d}",
           "data.check=false", "tracking=off", f"data.batch_size={args.batch // devices}",
           f"trainer.max_steps={args.steps + 2}", "trainer.log_every_steps=1", "trainer.progress_bar=false",
           f"trainer.devices={devices}", f"trainer.output_dir={out}", "data.num_workers=1"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, env=env, cwd=out.parent, capture_output=True)
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()][2:]
    seconds = rows[-1]["time"] - rows[0]["time"]
    return (len(rows) - 1) * args.batch / seconds


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--devices", type=int, default=2)
    p.add_argument("--model", default="rec_tiny")
    p.add_argument("--batch", type=int, default=32, help="global batch")
    p.add_argument("--steps", type=int, default=12)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dp-"))
    cores = os.cpu_count() or 1
    one = run(1, args, tmp / "one", threads=cores)
    single = run(1, args, tmp / "single", threads=1)
    many = run(args.devices, args, tmp / "many", threads=max(cores // args.devices, 1))
    # Paddle's CPU kernels scale poorly (here: worse) with threads, so both single-process figures are shown.
    report(f"{args.model}, global batch {args.batch}, {args.steps} steps, {cores} CPU cores", {
        "1 process (all cores as threads)": f"{one:.2f} samples/s",
        "1 process (1 thread)": f"{single:.2f} samples/s",
        f"{args.devices} processes (data parallel)": f"{many:.2f} samples/s",
        "scaling vs 1 process, all cores": f"{many / one:.2f}x",
        "scaling vs 1 process, 1 thread": f"{many / single:.2f}x",
    })


if __name__ == "__main__":
    main()
