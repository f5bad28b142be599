"""Does the built-in demo learn in minutes? Runs the README's main job exactly as a user would -- `wb train
recipe=rec_finetune` (and `recipe=det_finetune`) with no data, on a freshly generated demo set -- and prints the
eval curve and the wall time.

    python benchmarks/demo_learning.py            # rec and det
    python benchmarks/demo_learning.py rec        # one (rec, det, textline_ori, doc_ori)

Runs in a temporary folder (demo set, run dir, ./mlflow.db of that folder), so nothing here is touched.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time

METRIC = {"rec_finetune": ("acc", "norm_edit_dis"), "det_finetune": ("hmean", "precision", "recall"),
          "textline_ori_finetune": ("acc",), "doc_ori_finetune": ("acc",)}
EVAL = re.compile(r"eval @ step (\d+) \(epoch \d+\): (.*?)(?: \| best|$)")


def run(recipe: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "workbench.cli", "train", f"recipe={recipe}",
                               "trainer.progress_bar=false", f"hydra.run.dir={tmp}/run"],
                              cwd=tmp, capture_output=True, text=True)
        wall = time.time() - t0
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
            raise SystemExit(f"{recipe}: wb train failed ({proc.returncode})")
        log = proc.stdout + proc.stderr
        generated = re.search(r"generat\w+ .*?(\d+(?:\.\d+)?) ?s", log)
        print(f"\n== wb train recipe={recipe}  (wall {wall:.0f} s including demo-set generation and tracking)")
        for line in log.splitlines():
            m = EVAL.search(line)
            if not m:
                continue
            values = dict(kv.split("=", 1) for kv in m.group(2).split(", "))
            print(f"  step {int(m.group(1)):5d}  " + "  ".join(f"{k}={float(values[k]):.3f}" for k in METRIC[recipe]))
        speed = re.findall(r"samples/s=([\d.]+)", log)
        if speed:
            print(f"  training speed (last logged): {speed[-1]} samples/s")
        if generated:
            print(f"  {generated.group(0)}")


def main() -> None:
    which = sys.argv[1:] or ["rec", "det"]
    for name in which:
        run(f"{name}_finetune")


if __name__ == "__main__":
    main()
