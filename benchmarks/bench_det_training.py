"""Detection training throughput and memory: real-size PP-OCRv5_mobile_det, batch 4, 640x640 random crops of
../shared/data/icdar2015_det (flip / rotate / scale / crop augmentation and DB targets in worker processes), through
the real trainer; then evaluation speed (images/s) in the pipeline's resize mode.

    python benchmarks/bench_det_training.py [--steps 10] [--warmup 2] [--eval-images 30]

Reference (upstream PaddleOCR's own trainer here, same settings): ~0.21-0.25 samples/s, 4.7 GB peak RSS.
Target: >= 1.5x the throughput, no more memory.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import SHARED, peak_rss_gb, report


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--eval-images", type=int, default=30)
    p.add_argument("--model", default="PP-OCRv5_mobile_det")
    args = p.parse_args()

    from workbench.config.schema import TrainConfig
    from workbench.engine.trainer import Trainer
    from workbench.tasks import build_task

    out = tempfile.mkdtemp(prefix="bench-det-")
    cfg = TrainConfig(task="det")
    cfg.model.name = args.model
    cfg.data.train = str(SHARED / "data" / "icdar2015_det" / "label.txt")
    cfg.data.val = str(SHARED / "data" / "icdar2015_det" / "label.txt")
    cfg.data.max_val_samples = args.eval_images
    cfg.data.check = False
    cfg.data.batch_size = args.batch
    cfg.data.eval_batch_size = 1
    cfg.data.num_workers = args.workers
    cfg.eval.select_metric = "hmean"
    cfg.eval.det.also_upstream_mode = False
    cfg.trainer.max_steps = args.warmup + args.steps
    cfg.trainer.eval_every_epochs = None
    cfg.trainer.log_every_steps = 1
    cfg.trainer.progress_bar = False
    cfg.trainer.output_dir = out
    cfg.tracking.enabled = False
    task = build_task(cfg)
    trainer = Trainer(cfg, task, out)
    t0 = time.time()
    trainer.fit()  # ends with one evaluation of the final weights
    total = time.time() - t0
    rows = trainer.step_log[args.warmup:]
    seconds = rows[-1]["time"] - rows[0]["time"]
    steps = len(rows) - 1
    sps = steps * args.batch / seconds
    train_done = rows[-1]["time"]
    eval_seconds = time.time() - t0 - (train_done - t0)  # the final evaluation (plus checkpoint writes)

    # evaluation speed on its own: model + DB post-process + matching, pipeline resize mode
    from workbench.files.safe_load import load_state_dict

    model = task.build_model()
    model.set_state_dict(load_state_dict(f"{out}/checkpoints/latest/model.pdparams"))
    t1 = time.time()
    result = trainer.evaluate(model, task.val_dataset())
    eval_time = time.time() - t1
    rss_main, rss_children = peak_rss_gb()
    report(f"{args.model} training, batch {args.batch}, 640x640 crops, {args.workers} loader workers", {
        "measured steps (after warm-up)": steps,
        "samples/s": f"{sps:.2f}",
        "seconds/step": f"{seconds / steps:.2f}",
        "vs upstream 0.21 samples/s": f"{sps / 0.21:.2f}x",
        "eval images/s (pipeline resize)": f"{result.metrics['n_images'] / eval_time:.2f} "
                                            f"({int(result.metrics['n_images'])} ICDAR 2015 images 1280x720)",
        "peak RSS main process": f"{rss_main:.2f} GB",
        "peak RSS loader workers (max)": f"{rss_children:.2f} GB",
        "wall time incl. setup": f"{total:.0f} s (final eval + checkpoints {eval_seconds:.0f} s)",
    })


if __name__ == "__main__":
    main()
