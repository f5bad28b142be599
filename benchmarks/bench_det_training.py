"""Detection training speed and memory, side by side with PaddleOCR's own trainer, and against the cores' limit.

    PADDLEOCR_DIR=/path/to/PaddleOCR PADDLEOCR_PYTHON=/path/to/venv/bin/python \\
        nice -n 10 python benchmarks/bench_det_training.py [--steps 10] [--warmup 2] [--threads 2] [--rounds 1]

Both sides train PP-OCRv5_mobile_det from random weights on the same seeded subset of ../shared/data/icdar2015_det,
batch 4, 640x640 random crops, upstream's augmentation (CopyPaste, flip / rotate / scale, random crop, DB border
and shrink maps), ``--workers`` loader processes, ``--threads`` OMP/MKL threads, one after the other:

* wb: ``wb train recipe=det_finetune data.augment.copy_paste=true`` (upstream's config copy-pastes text);
* upstream: ``tools/train.py -c configs/det/PP-OCRv5/PP-OCRv5_mobile_det.yml`` from the given checkout, unchanged
  except CPU, this data, batch and workers, no pretrained backbone, no evaluation.

Printed per side: samples/s, CPU seconds per sample (whole process tree), peak RSS / PSS summed over the trainer
and its loader workers; the ratios against the targets (>= 3x samples/s, <= 1/3 peak RSS); FLOPs of a training
step, the GEMM peak at ``--threads`` threads and the model-FLOP utilisation. Everything goes to one MLflow run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import SHARED, report
from _sidebyside import Targets, add_common_arguments, compare, subset_labels, wb_workers

DATA = SHARED / "data" / "icdar2015_det"
MODEL = "PP-OCRv5_mobile_det"
SIZE = 640


def limit_figures(batch: int, threads: int) -> tuple[float, dict]:
    """(forward+backward FLOPs of one step, GEMM peak figures at ``threads``); printed."""
    from _limit import count_step_flops, peak_gflops

    flops = count_step_flops(MODEL, batch, (SIZE, SIZE))
    peaks = peak_gflops(threads)
    lines = {"FLOPs / step (fwd + bwd)": f"{flops.step / 1e9:.1f} GFLOP ({flops.step / batch / 1e9:.2f} / sample)"}
    lines.update({f"  fwd {kind}": f"{v / 1e9:.2f} GFLOP" for kind, v in sorted(flops.by_kind.items())})
    lines.update({f"peak {name}": f"{p['gflops_wall']:.1f} GFLOP/s wall, {p['gflops_cpu']:.1f} per CPU-s"
                  for name, p in peaks.items()})
    report(f"{MODEL}: the limit at {threads} threads", lines)
    return flops.step, peaks["GEMM 1024^3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, steps=10, warmup=2, batch=4)
    args = parser.parse_args()

    samples = (args.warmup + args.steps + 2) * args.batch  # one epoch covers every step of both trainers
    labels = subset_labels(DATA / "label.txt", samples, Path(tempfile.mkdtemp(prefix="bench-det-")) / "label.txt",
                           rewrite_root=DATA)
    flops, peak = (None, None) if args.no_limit else limit_figures(args.batch, args.threads)
    wb_overrides = [
        "recipe=det_finetune", f"data.train={labels}", "data.val=null", f"data.num_workers={wb_workers(args)}",
        f"data.augment.crop_size=[{SIZE},{SIZE}]", "data.augment.copy_paste=true", "model.pretrained=null",
    ]
    compare("det", args, wb_overrides=wb_overrides, targets=Targets(speed=3.0), flops_per_step=flops, peak=peak,
            upstream_kwargs={"label_file": labels, "data_dir": DATA},
            describe={"model": MODEL, "batch, input": f"{args.batch}, {SIZE}x{SIZE} random crops",
                      "data": f"{samples} images of {DATA}", "upstream change": "none"})


if __name__ == "__main__":
    sys.exit(main())
