"""Would a static training graph cut the per-step cost of a rec step? Eager with wb's kernels, eager with Paddle's
own ops, and ``paddle.jit.to_static`` (forward + CTC loss, ``full_graph=True``, PIR) side by side (issue 12).

    PYTHONPATH=$PWD nice -n 10 python benchmarks/bench_static_training_graph.py [--batches 1 16] [--widths 96 152 320]

PP-OCRv5_mobile_rec with the stock weights imported from ../shared/models (`wb weights import`, or ``--weights``),
BatchNorms frozen and the NRTR branch not computed, as the receipts fine-tune trains it; one real batch of
../shared/data/icdar2015_rec crops at 48x320, cut to each width. Each mode times forward + loss, then backward,
the modes and widths alternating round by round; medians after ``--warmup`` rounds. wb's kernels run only in
eager mode (``kernels.training_applies``), so the static graph runs Paddle's ops: what it can save is the eager
dispatch of those ops, which the ``eager_paddle`` column measures against it. Loss values differ between modes by
the SVTR neck's dropout, not by the graph. Prints a table and logs one MLflow run (``<out>/mlflow.db``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, SHARED  # noqa: E402
from finetune_receipts import STOCK, Bench  # noqa: E402

MODES = ("eager_wb", "eager_paddle", "static")
EXPERIMENT = "static-training-graph"


def stock_weights(out: Path) -> Path:
    """The stock PP-OCRv5_mobile_rec weights, imported once into ``out`` (``wb weights import``)."""
    weights = out / "rec.pdparams"
    if not weights.exists():
        Bench(out, f"sqlite:///{out / 'mlflow.db'}", EXPERIMENT).wb(
            ["weights", "import", str(STOCK / "PP-OCRv5_mobile_rec.onnx"), "--dict", str(STOCK / "ppocrv5_dict.txt"),
             "--out", str(weights)], "import")
    return weights


def build(weights: Path, batch: int):
    import paddle
    import paddle.nn as nn

    from workbench.config.schema import TrainConfig
    from workbench.tasks import build_task

    cfg = TrainConfig(task="rec")
    cfg.model.name = "PP-OCRv5_mobile_rec"
    cfg.model.pretrained = str(weights)
    cfg.model.character_dict = str(weights.with_suffix(".dict.txt"))
    cfg.model.max_text_length = 25
    cfg.data.train = str(SHARED / "data" / "icdar2015_rec" / "label.txt")
    cfg.data.policy, cfg.data.check, cfg.data.width_mode = "skip", False, "fixed"
    cfg.trainer.output_dir = tempfile.mkdtemp(prefix="bench-static-")
    task = build_task(cfg)
    dataset = task.train_dataset()
    data = task.collate_train([dataset[i] for i in range(batch)])
    model = task.build_model()
    task.load_initial_weights(model)
    model.train()
    for layer in model.sublayers():  # frozen BatchNorms, as a fine-tune from model.pretrained trains
        if isinstance(layer, (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D)):
            layer.eval()
    tensors = {k: paddle.to_tensor(data[k]) for k in ("image", "label_ctc", "length")}
    return task, model, task.build_loss(), tensors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--widths", type=int, nargs="+", default=[96, 152, 320])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights", type=Path, default=None, help="an imported PP-OCRv5_mobile_rec .pdparams")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_static_training_graph")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import paddle
    from paddle.static import InputSpec

    from workbench import kernels
    from workbench.engine.device import set_device

    set_device("cpu", num_threads=args.threads, keep_freed_memory=True)  # as the trainer sets it up on CPU
    weights = args.weights or stock_weights(args.out)
    results: dict[tuple, list[tuple[float, float]]] = {}
    for batch in args.batches:
        task, model, loss_fn, t = build(weights, batch)

        def forward_loss(image, label_ctc, length):
            batch_tensors = {"image": image, "label_ctc": label_ctc, "length": length}
            return loss_fn(model(image, batch_tensors), batch_tensors)["loss"]

        static = paddle.jit.to_static(forward_loss, full_graph=True, input_spec=[
            InputSpec([None, 3, 48, None], "float32"), InputSpec([None, t["label_ctc"].shape[1]], t["label_ctc"].dtype),
            InputSpec([None], t["length"].dtype)])
        for r in range(args.warmup + args.rounds):
            for mode in MODES:
                kernels.configure(enabled=mode == "eager_wb")
                fn = static if mode == "static" else forward_loss
                for width in args.widths:
                    t0 = time.perf_counter()
                    loss = fn(t["image"][:, :, :, :width], t["label_ctc"], t["length"])
                    t1 = time.perf_counter()
                    loss.backward()
                    t2 = time.perf_counter()
                    model.clear_gradients()
                    if r >= args.warmup:
                        results.setdefault((batch, width, mode), []).append((t1 - t0, t2 - t1))
        kernels.configure(enabled=True)

    print(f"\nforward + loss + backward, ms (median of {args.rounds}; forward / backward in brackets)")
    print(f"{'batch':>5} {'width':>5}  " + "  ".join(f"{m:>22}" for m in MODES) + "   static vs eager_paddle")
    metrics = {}
    for batch in args.batches:
        for width in args.widths:
            cells, totals = [], {}
            for mode in MODES:
                v = results[(batch, width, mode)]
                f, b = statistics.median(x[0] for x in v) * 1e3, statistics.median(x[1] for x in v) * 1e3
                totals[mode] = f + b
                cells.append(f"{f + b:7.1f} ({f:6.1f}/{b:6.1f})")
                metrics[f"ms/b{batch}_w{width}_{mode}"] = f + b
            print(f"{batch:>5} {width:>5}  " + "  ".join(f"{c:>22}" for c in cells)
                  + f"   {totals['static'] / totals['eager_paddle']:.2f}x the time")

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{args.out / 'mlflow.db'}")
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"static training graph {time.strftime('%Y-%m-%d %H:%M')}"):
        mlflow.log_params({"threads": args.threads, "rounds": args.rounds, "batches": args.batches,
                           "widths": args.widths, "paddle": paddle.__version__})
        mlflow.log_metrics(metrics)
    print(f"MLflow run logged in {mlflow.get_tracking_uri()}")


if __name__ == "__main__":
    main()
