"""Make ``tests/fixtures/upstream_models.npz``: whole-model eval outputs of upstream PaddleOCR's own code (backbone,
neck and head, built by ``ppocr.modeling.architectures.build_model`` from the official training configs) for the
families PaddleX does not implement: PP-OCRv4 server det / rec and PP-OCRv3 mobile det / rec.

    <python with PaddleOCR's requirements> benchmarks/make_upstream_model_fixture.py --paddleocr /path/to/PaddleOCR

Unlike ``make_upstream_backbone_fixture.py`` (which loads three backbone files on their own), this imports the
``ppocr`` package, so it runs in an environment with PaddleOCR's requirements. For each model:

1. the ``Architecture`` section of the official config is built (rec heads sized for a 30-class charset, the
   sizes upstream's trainer derives from a dictionary: CTC 30, NRTR 33, SAR 32);
2. every parameter is drawn from its state-dict key (``workbench.models.synthetic_weights``; the test draws the
   same values for our implementation from our keys, which equal upstream's);
3. every BatchNorm's running statistics are calibrated on a deterministic batch by the upstream forward (inference
   path, BatchNorm layers alone in train mode with momentum 0, so the multi-head training branches need no
   labels) and stored with the upstream file hashes;
4. the eval-mode output on a deterministic input (another seed) is stored: det the probability map, rec the CTC
   branch's softmax.

Nothing from upstream is copied into the project: the file holds numbers only.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from make_upstream_backbone_fixture import smooth_input  # noqa: E402

SEED = 7
NUM_CLASSES = 30
#: zoo name -> (official training config, input shape). PP-OCRv4_server_rec_doc is PP-OCRv4_server_rec's graph
#: with another dictionary (its config differs in data and dictionary only), so it is not repeated.
CASES = {
    "PP-OCRv4_server_det": ("configs/det/PP-OCRv4/PP-OCRv4_server_det.yml", (1, 3, 64, 64)),
    "PP-OCRv4_server_rec": ("configs/rec/PP-OCRv4/PP-OCRv4_server_rec.yml", (1, 3, 48, 96)),
    "PP-OCRv3_mobile_det": ("configs/det/PP-OCRv3/PP-OCRv3_mobile_det.yml", (1, 3, 64, 64)),
    "PP-OCRv3_mobile_rec": ("configs/rec/PP-OCRv3/PP-OCRv3_mobile_rec.yml", (1, 3, 48, 96)),
}
#: upstream sources the outputs depend on (hashed into the fixture)
SOURCES = ("ppocr/modeling/backbones/rec_hgnet.py", "ppocr/modeling/backbones/det_mobilenet_v3.py",
           "ppocr/modeling/backbones/rec_mv1_enhance.py", "ppocr/modeling/necks/db_fpn.py",
           "ppocr/modeling/necks/intracl.py", "ppocr/modeling/necks/rnn.py", "ppocr/modeling/heads/det_db_head.py",
           "ppocr/modeling/heads/rec_multi_head.py", "ppocr/modeling/heads/rec_ctc_head.py")


def calibrate_inference_path(model, batch) -> int:
    """BatchNorm statistics := those of its input on ``batch`` along the inference path (see module doc)."""
    import paddle
    import paddle.nn as nn

    norms = [m for m in model.sublayers(include_self=True)
             if isinstance(m, (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D))]
    model.eval()
    saved = [m._momentum for m in norms]
    try:
        for m in norms:
            m._momentum = 0.0
            m.train()
        with paddle.no_grad():
            model(paddle.to_tensor(batch))
    finally:
        for m, momentum in zip(norms, saved):
            m._momentum = momentum
        model.eval()
    return len(norms)


def model_output(out):
    """The tensor a model's eval forward gives: det ``{"maps": ...}``, rec the CTC softmax."""
    return out["maps"] if isinstance(out, dict) else out


def main() -> int:
    import paddle
    import yaml

    from workbench.models.synthetic_weights import synthetic_state

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paddleocr", type=Path, required=True, help="a PaddleOCR checkout (repository root)")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "upstream_models.npz")
    args = parser.parse_args()
    sys.path.insert(0, str(args.paddleocr))
    from ppocr.modeling.architectures import build_model

    arrays: dict[str, np.ndarray] = {}
    for name, (config_path, shape) in CASES.items():
        arch = copy.deepcopy(yaml.safe_load((args.paddleocr / config_path).read_text())["Architecture"])
        if arch["model_type"] == "rec":
            arch["Head"]["out_channels_list"] = {"CTCLabelDecode": NUM_CLASSES, "SARLabelDecode": NUM_CLASSES + 2,
                                                 "NRTRLabelDecode": NUM_CLASSES + 3}
        paddle.seed(0)
        model = build_model(arch)
        state = model.state_dict()
        values = synthetic_state({k: tuple(v.shape) for k, v in state.items()}, SEED)
        for key, value in values.items():
            state[key].set_value(value)
        calibrated = calibrate_inference_path(model, smooth_input((4, *shape[1:]), 1))
        for key, value in model.state_dict().items():
            if key.endswith(("._mean", "._variance")):
                arrays[f"{name}/bn/{key}"] = value.numpy().astype(np.float32)
        with paddle.no_grad():
            out = model_output(model(paddle.to_tensor(smooth_input(shape, 2))))
        arrays[f"{name}/out"] = out.numpy().astype(np.float32)
        arrays[f"{name}/config_sha256"] = np.array(hashlib.sha256((args.paddleocr / config_path).read_bytes()).hexdigest())
        print(f"{name}: {len(values)} drawn tensors, {calibrated} BatchNorms calibrated, output {tuple(out.shape)}, "
              f"|out| max {float(out.abs().max()):.3g}")
    for source in SOURCES:
        arrays[f"source_sha256/{source}"] = np.array(hashlib.sha256((args.paddleocr / source).read_bytes()).hexdigest())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
