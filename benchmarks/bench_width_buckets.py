"""Recognition fine-tuning on real crop widths: fixed 48x320 against width-bucketed batches (issue 12).

    PYTHONPATH=$PWD nice -n 10 python benchmarks/bench_width_buckets.py [--train-crops 800] [--epochs 1]

PP-OCRv5_mobile_rec, stock weights imported from ../shared/models (`wb weights import`), fine-tuned with the
``rec_finetune`` recipe's defaults on the scene-level training half of ../shared/data/icdar2015_rec (`wb data split
--val 0.5`; ``--train-crops`` of it, 0 = all 2,266) for ``--epochs`` epochs, once per side, the same seed:

* ``fixed``: ``data.width_mode=fixed``, every crop squeezed or padded into 48x320 (upstream's RecResizeImg);
* ``keep320``: ``data.width_mode=keep_ratio``, each crop at its own width but at least 320 (the recipe's default:
  the pipeline's canvas), batches grouped by width;
* ``bucket``: keep_ratio with ``data.min_width=--min-width`` (96) and ``data.max_width=320``: a short word trains at
  its own width, padded only to the widest crop of its width bucket; the 1.9 % of crops wider than 320 px are
  squeezed into 320 as on the ``fixed`` side, so both sides train the same input for them. ICDAR 2015 words are
  narrow: median 129 px at height 48, mean 148 px with the 96 px floor, against 320.
* ``bucket_wide``: the same with the recipe's ``max_width`` (1280): the wide crops keep their width (up to 704 px
  here), which costs a batch of them up to twice a 320-px batch.

Each side trains with the recipe's logging (a row every 10 steps) and evaluates once, after its last epoch: an
evaluation inside the timed steps (the same 400 crops on every side) or an MLflow write every step (~100 ms of a
2-core step, measured 2026-12-07) would add a per-step cost that is not training and shrink the ratio. Each side is
evaluated the same way (the recipe's evaluation: pipeline resize, at least 320 wide, as PaddleX reads
crops) on ``--val-crops`` crops of the held-out half. Printed: training samples/s (optimizer steps only, from
``train_log.jsonl``), the epoch time that gives, accuracy (upstream mode) and case-insensitive accuracy; the
speed ratio against ``fixed`` and the target (>= 2x at equal or better accuracy). Every run and a summary go to one
MLflow experiment (``<out>/mlflow.db``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune_receipts import DATA, ROOT, STOCK, Bench  # noqa: E402

SIDES = {
    "fixed": ["data.width_mode=fixed"],
    "keep320": ["data.width_mode=keep_ratio"],
    "bucket": ["data.width_mode=keep_ratio", "data.max_width=320"],  # + data.min_width
    "bucket_wide": ["data.width_mode=keep_ratio"],  # + data.min_width
}
TARGET = 2.0


def train_speed(run_dir: Path, batch: int) -> float:
    """Samples/s over the optimizer steps between the first and the last logged row (step 1, then every 10th: the
    starting weights' evaluation and the first step's set-up before it, the one evaluation after it)."""
    rows = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines() if line.strip()]
    if len(rows) < 2:
        raise SystemExit(f"{run_dir / 'train_log.jsonl'}: {len(rows)} step row(s); give more --train-crops")
    first, last = rows[0], rows[-1]
    return (last["step"] - first["step"]) * batch / max(last["time"] - first["time"], 1e-9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sides", nargs="+", choices=list(SIDES), default=["fixed", "bucket"])
    p.add_argument("--train-crops", type=int, default=800, help="0 = the whole training half (2,266 crops)")
    p.add_argument("--val-crops", type=int, default=400)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--min-width", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=16, help="the recipe's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_width_buckets")
    args = p.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    b = Bench(out, f"sqlite:///{out / 'mlflow.db'}", "width-buckets")
    split = out / "split"
    if not split.is_dir():
        b.wb(["data", "split", str(DATA / "icdar2015_rec" / "label.txt"), "--val", "0.5", "--seed", str(args.seed),
              "--out", str(split)], "split")
    train_file, val_file = split / "icdar2015_rec_train.txt", split / "icdar2015_rec_val.txt"
    weights = out / "weights" / "rec.pdparams"
    if not weights.is_file():
        b.wb(["weights", "import", str(STOCK / "PP-OCRv5_mobile_rec.onnx"), "--out", str(weights),
              "--dict", str(STOCK / "ppocrv5_dict.txt"), "--calib", str(train_file), "--probe", str(val_file),
              "--probe-count", "16"], "import")
    n_train = args.train_crops or sum(1 for _ in train_file.open())
    common = [f"trainer.epochs={args.epochs}", f"trainer.eval_every_epochs={args.epochs}",
              f"data.batch_size={args.batch_size}",
              f"data.max_val_samples={args.val_crops}", "data.policy=skip", f"seed={args.seed}",
              "trainer.early_stopping.patience=null"]
    if args.train_crops:
        common.append(f"data.max_train_samples={args.train_crops}")
    res: dict = {"train_crops": n_train, "val_crops": args.val_crops, "epochs": args.epochs,
                 "min_width": args.min_width, "sides": {}}
    for side in args.sides:
        extra = SIDES[side] + ([f"data.min_width={args.min_width}"] if side.startswith("bucket") else [])
        run, seconds = b.train("rec", weights, train_file, val_file, side, [*common, *extra])
        metrics = json.loads((run / "metrics.json").read_text())
        sps = train_speed(run, args.batch_size)
        res["sides"][side] = {"samples_per_s": round(sps, 3), "epoch_minutes": round(n_train / sps / 60, 2),
                              "wall_seconds": round(seconds), "acc": metrics.get("acc"),
                              "acc_honest_nocase": metrics.get("acc_honest_nocase"), "overrides": extra}
        print(f"  {side}: {res['sides'][side]}", flush=True)
    (out / "report.json").write_text(json.dumps(res, indent=1))

    print(f"\n== Fine-tuning epoch on real crop widths: PP-OCRv5_mobile_rec, {n_train} ICDAR 2015 crops, "
          f"{args.epochs} epoch(s), batch {args.batch_size}")
    print(f"  {'side':<10} {'samples/s':>10} {'epoch min':>10} {'acc':>8} {'nocase':>8}")
    for side, r in res["sides"].items():
        print(f"  {side:<10} {r['samples_per_s']:10.3f} {r['epoch_minutes']:10.2f} {r['acc']:8.4f} "
              f"{r['acc_honest_nocase']:8.4f}")
    sides = res["sides"]
    if "fixed" in sides and "bucket" in sides:
        ratio = sides["bucket"]["samples_per_s"] / sides["fixed"]["samples_per_s"]
        equal = sides["bucket"]["acc"] >= sides["fixed"]["acc"]
        res["bucket_vs_fixed"] = round(ratio, 3)
        print(f"  bucket / fixed speed {ratio:.2f}x (target >= {TARGET}x at equal or better accuracy: "
              f"{'met' if ratio >= TARGET and equal else 'NOT met'}; accuracy "
              f"{'equal or better' if equal else 'lower'})")

    import mlflow

    mlflow.set_tracking_uri(b.uri)
    mlflow.set_experiment(b.experiment)
    with mlflow.start_run(run_name=f"width buckets summary {time.strftime('%Y-%m-%d %H:%M')}"):
        flat = {f"{side}/{k}": float(v) for side, r in sides.items() for k, v in r.items()
                if isinstance(v, (int, float)) and v is not None}
        if "bucket_vs_fixed" in res:
            flat["bucket_vs_fixed"] = res["bucket_vs_fixed"]
        mlflow.log_metrics({re.sub(r"[^A-Za-z0-9_\-./ ]", "_", k): v for k, v in flat.items()})
        mlflow.log_dict(res, "report.json")


if __name__ == "__main__":
    main()
