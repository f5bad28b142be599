"""Speed figures that used to be timed asserts in tests (they belong here: a busy CI machine is not a benchmark),
plus the costs of the fault-tolerance machinery.

    nice -n 10 python benchmarks/bench_fault_paths.py [--threads 1]

Prints: module report writing for large sets (4,500 rec rows, 500 det images), one training step of the tiny
test models, ``Tracker.log_metrics`` latency while the MLflow server is unreachable (it must not wait on the
network), the safe weights loader against ``paddle.load``, a full PP-OCRv5 mobile rec checkpoint write
(files + fsync + manifest sha256) and its verification, and the refusal of a decompression bomb.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, SHARED, report

sys.path.insert(0, str(ROOT / "tests"))


def _timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def reports(tmp: Path) -> dict:
    from analysis_samples import det_rows, det_samples, perfect_predictions, rec_rows, rec_samples
    from workbench.reports.det_report import write_det_report
    from workbench.reports.rec_report import write_rec_report

    data = SHARED / "data"
    samples = rec_samples(data, 20)
    rows, metrics = rec_rows(samples, {5: "CUTTING CHARGE", 9: "G5T"})
    big = [{**r, "line": r["line"] + 20 * k} for k in range(225) for r in rows]
    t_rec = _timed(lambda: write_rec_report(big, metrics, tmp / "rec", title="big"), 1)
    dsamples = det_samples(data)
    drows, dmetrics = det_rows(dsamples, [perfect_predictions(s) for s in dsamples])
    dbig = [{**r, "line": r["line"] + 1000 * k} for k in range(100) for r in drows]
    t_det = _timed(lambda: write_det_report(dbig, dmetrics, tmp / "det", title="big"), 1)
    return {"rec report, 4,500 rows (s)": f"{t_rec:.2f}", "det report, 500 images (s)": f"{t_det:.2f}"}


def tiny_steps() -> dict:
    import numpy as np
    import paddle

    from workbench.losses.db import DBLoss
    from workbench.losses.multi import MultiLoss
    from workbench.models import zoo

    paddle.seed(0)
    rec = zoo.build_model("rec_tiny", num_classes=40)
    rec.train()
    rng = np.random.default_rng(0)
    batch = {"image": paddle.to_tensor(rng.normal(size=(4, 3, 48, 320)).astype("float32")),
             "label_ctc": paddle.to_tensor(rng.integers(1, 39, (4, 25)).astype("int64")),
             "label_gtc": paddle.to_tensor(rng.integers(1, 39, (4, 25)).astype("int64")),
             "length": paddle.to_tensor(np.full(4, 5, "int64"))}
    opt = paddle.optimizer.Adam(1e-3, parameters=rec.parameters())

    def rec_step():
        MultiLoss()(rec(batch["image"], batch), batch)["loss"].backward()
        opt.step()
        opt.clear_grad()

    det = zoo.build_model("det_tiny")
    det.train()
    x = paddle.to_tensor(rng.normal(size=(4, 3, 128, 128)).astype("float32"))
    shrink = np.zeros((4, 128, 128), "float32")
    shrink[:, 30:60, 20:100] = 1
    targets = {"shrink_map": shrink, "shrink_mask": np.ones_like(shrink),
               "threshold_map": np.full_like(shrink, 0.3), "threshold_mask": np.ones_like(shrink)}
    dopt = paddle.optimizer.Adam(1e-3, parameters=det.parameters())

    def det_step():
        DBLoss()(det(x), targets)["loss"].backward()
        dopt.step()
        dopt.clear_grad()

    return {"rec_tiny step, batch 4 (s)": f"{_timed(rec_step):.3f}",
            "det_tiny step, batch 4 at 128² (s)": f"{_timed(det_step):.3f}"}


def tracker_latency(tmp: Path) -> dict:
    from workbench.tracking.mlflow import Tracker

    t = Tracker("http://127.0.0.1:9", "bench", backlog_dir=tmp / "run")  # nothing listens on port 9
    t0 = time.perf_counter()
    for step in range(1, 1001):
        t.log_metrics({"loss": 1.0 / step, "lr": 1e-3}, step=step)
    per_call = (time.perf_counter() - t0) / 1000
    t.finish(retry_for=0.5)
    return {"log_metrics, server down (µs/call)": f"{per_call * 1e6:.0f}"}


def checkpoints(tmp: Path) -> dict:
    import paddle

    from workbench.engine import checkpoint as ckpt
    from workbench.models import zoo
    from workbench.files.safe_load import load_state_dict

    model = zoo.build_model("PP-OCRv5_mobile_rec", num_classes=18385)
    state = model.state_dict()
    opt_like = {"accumulators": {"moment1": dict(state), "moment2": dict(state)}}
    folder = tmp / "ckpt" / "checkpoints"
    t_save = _timed(lambda: ckpt.save_checkpoint(folder / "latest", model_state=state, train_state=ckpt.TrainState(),
                                                 meta={}, optimizer_state=opt_like), 2)
    t_verify = _timed(lambda: ckpt.verify_checkpoint(folder / "latest"))
    f = folder / "latest" / ckpt.MODEL_FILE
    t_safe = _timed(lambda: load_state_dict(f))
    t_paddle = _timed(lambda: paddle.load(str(f)))
    size = sum(p.stat().st_size for p in (folder / "latest").iterdir())
    return {"PP-OCRv5 mobile rec checkpoint (MB)": f"{size / 1e6:.1f}",
            "  write: files + fsync + sha256 (s)": f"{t_save:.2f}",
            "  verify on resume (s)": f"{t_verify:.2f}",
            "  safe load model.pdparams (s)": f"{t_safe:.3f}",
            "  paddle.load model.pdparams (s)": f"{t_paddle:.3f}"}


def bomb() -> dict:
    from fuzz_inputs import png_bomb
    from workbench.data.images import check_image_bytes

    data = png_bomb()
    t = _timed(lambda: check_image_bytes(data, "bomb.png"), 5)
    return {"50000² PNG bomb refused (µs)": f"{t * 1e6:.0f}", "  its file size (bytes)": len(data)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from workbench.engine.device import set_cpu_math_threads

    set_cpu_math_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        report("module reports", reports(tmp))
        report(f"tiny training steps ({args.threads} thread(s))", tiny_steps())
        report("tracking while the server is down", tracker_latency(tmp))
        report("checkpoints", checkpoints(tmp))
        report("decompression bomb", bomb())


if __name__ == "__main__":
    main()
