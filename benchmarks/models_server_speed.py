"""Forward+backward time of the PP-OCRv5 server building blocks (train mode), printed as one line per case.

    PYTHONPATH=$PWD OMP_NUM_THREADS=2 python benchmarks/models_server_speed.py [--repeats 3] [--device cpu]

Cases: det backbone+neck at 1x3x640x640 and the rec backbone at 8x3x48x320. The loss is a plain mean of the
output (the heads are not included). The first iteration is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import paddle

from workbench.models.backbones.pphgnetv2 import pphgnetv2_b4
from workbench.models.necks.lkpan import LKPAN


def _time(step, repeats: int) -> list[float]:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        if paddle.device.get_device().startswith("gpu"):
            paddle.device.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    paddle.set_device(args.device)
    paddle.seed(0)

    backbone = pphgnetv2_b4(det=True)
    neck = LKPAN(backbone.out_channels, 256)
    backbone.train()
    neck.train()
    det_x = paddle.rand([1, 3, 640, 640])

    def det_step():
        neck(backbone(det_x)).mean().backward()
        backbone.clear_gradients()
        neck.clear_gradients()

    rec = pphgnetv2_b4(text_rec=True)
    rec.train()
    rec_x = paddle.rand([8, 3, 48, 320])

    def rec_step():
        rec(rec_x).mean().backward()
        rec.clear_gradients()

    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    for name, step in (("det backbone+neck 1x3x640x640", det_step), ("rec backbone 8x3x48x320", rec_step)):
        times = _time(step, args.repeats)
        print(
            f"{name}: fwd+bwd median {sorted(times)[len(times) // 2]:.3f}s min {min(times):.3f}s "
            f"(device={args.device}, OMP_NUM_THREADS={threads}, repeats={args.repeats})"
        )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
