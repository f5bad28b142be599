"""Make ``tests/fixtures/upstream_backbones.npz``: outputs of upstream PaddleOCR's own backbone code for the model
families PaddleX does not implement (PPHGNet_small: PP-OCRv4 server det / rec; MobileNetV3 det: PP-OCRv3 mobile det;
MobileNetV1Enhance: PP-OCRv3 mobile rec),
on deterministic weights our tests can reproduce without the upstream code.

    python benchmarks/make_upstream_backbone_fixture.py --paddleocr /path/to/PaddleOCR [--out tests/fixtures/...]

Only ``ppocr/modeling/backbones/rec_hgnet.py``, ``det_mobilenet_v3.py`` and ``rec_mv1_enhance.py`` are needed from the
checkout (each is
loaded on its own, so the rest of PaddleOCR and its dependencies are not). For each case:

1. the upstream backbone is built and its parameters set from ``workbench.models.synthetic_weights.synthetic_state``
   (values drawn from each *state-dict key* and a seed: the test draws the same values for our implementation);
2. its BatchNorm running statistics are calibrated on a deterministic batch by the upstream forward (train mode,
   momentum 0) and stored -- they are the only weights the fixture carries;
3. the eval-mode outputs on a deterministic input (another seed) are stored.

The fixture records the upstream files' sha256 so a regeneration can be compared. Nothing from upstream is copied
into the project: the file holds numbers only.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 5
#: case -> (upstream file, factory(module), input shape)
CASES = {
    "PPHGNet_small_rec": ("rec_hgnet.py", lambda m: m.PPHGNet_small(det=False), (1, 3, 48, 96)),
    "PPHGNet_small_det": ("rec_hgnet.py", lambda m: m.PPHGNet_small(det=True), (1, 3, 64, 64)),
    "MobileNetV3_det": ("det_mobilenet_v3.py",
                        lambda m: m.MobileNetV3(scale=0.5, model_name="large", disable_se=True), (1, 3, 64, 64)),
    # PP-OCRv3 rec. With upstream's defaults (last conv stride 1, 2x2 max pool): every layer of the official one
    # (conv stride (1, 2), 2x2 average pool: configuration only) is exercised.
    "MobileNetV1Enhance": ("rec_mv1_enhance.py", lambda m: m.MobileNetV1Enhance(scale=0.5), (1, 3, 48, 64)),
}


def smooth_input(shape, seed: int) -> np.ndarray:
    """An image-like input (random walks along W, normalised), the same for the generator and the test."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(0, 0.3, shape), axis=-1)
    return ((x - x.mean()) / x.std()).astype(np.float32)


def calibration_shape(shape):
    return (4, *shape[1:])


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"upstream_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    import paddle

    from workbench.models.synthetic_weights import calibrate_running_stats, synthetic_state

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paddleocr", type=Path, required=True, help="a PaddleOCR checkout (repository root)")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "upstream_backbones.npz")
    args = parser.parse_args()
    folder = args.paddleocr / "ppocr" / "modeling" / "backbones"
    arrays, total = {}, 0
    for case, (file_name, factory, shape) in CASES.items():
        path = folder / file_name
        paddle.seed(0)
        model = factory(_load(path))
        state = model.state_dict()
        values = synthetic_state({f"backbone.{k}": tuple(v.shape) for k, v in state.items()}, SEED)
        for key, value in values.items():
            state[key.removeprefix("backbone.")].set_value(value)
        calibrate_running_stats(model, smooth_input(calibration_shape(shape), 1))
        for key, value in model.state_dict().items():
            if key.endswith(("._mean", "._variance")):
                arrays[f"{case}/bn/{key}"] = value.numpy().astype(np.float32)
        with paddle.no_grad():
            out = model(paddle.to_tensor(smooth_input(shape, 2)))
        for i, o in enumerate(out if isinstance(out, list) else [out]):
            arrays[f"{case}/out{i}"] = o.numpy().astype(np.float32)
        arrays[f"{case}/source_sha256"] = np.array(hashlib.sha256(path.read_bytes()).hexdigest())
        size = sum(v.nbytes for k, v in arrays.items() if k.startswith(case))
        total += size
        print(f"{case}: {len(values)} drawn tensors, outputs {[tuple(o.shape) for o in (out if isinstance(out, list) else [out])]}, {size / 1e3:.0f} kB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB compressed, {total / 1e3:.0f} kB raw)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
