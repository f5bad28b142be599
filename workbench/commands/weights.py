"""`wb weights`: get starting weights -- official training checkpoints, or inference models imported.

    wb weights fetch PP-OCRv5_mobile_rec [--cache-dir D] [--offline] [--mirror URL]
    wb weights import ~/.paddlex/official_models/PP-OCRv5_mobile_det --out weights/v5_mobile_det.pdparams
    wb weights import models/PP-OCRv5_mobile_rec.onnx --model PP-OCRv5_mobile_rec --dict ppocrv5_dict.txt \\
        --out weights/v5_mobile_rec.pdparams [--calib train/label.txt] [--probe val/label.txt]

``fetch`` downloads ``<name>_pretrained.pdparams`` into the cache (resumable, with a progress bar) and checks it:
against its recorded sha256 when one is known, and always against the model's training graph (every key and
shape), so a truncated or damaged file is moved aside instead of used. ``--offline`` (or ``WB_OFFLINE=1``) never
touches the network and says where to put the file.

``import`` turns an ONNX export or a Paddle inference folder into a training-graph ``.pdparams`` (see
``workbench.weights.importers``; the work is ``workbench.weights.importing.import_weights``), checks it against
the source model run by its own runtime (onnxruntime / Paddle Inference) and prints the figures. Next to ``--out`` it writes ``<out>.import.json`` (what was mapped,
what was initialised, the parity figures) and, for recognition, ``<out>.dict.txt`` (the dictionary; an official
dictionary is also put into the cache, where ``wb train`` / ``wb eval`` look for it, so no download is needed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wb weights", description="fetch official weights / import inference models")
    sub = parser.add_subparsers(dest="action", required=True)

    fetch = sub.add_parser("fetch", help="download an official *_pretrained.pdparams into the cache")
    fetch.add_argument("name", help="official model name, e.g. PP-OCRv5_mobile_rec")
    fetch.add_argument("--cache-dir", type=Path, help="weights cache (default $WB_CACHE_DIR or ~/.cache/ocr-workbench)")
    fetch.add_argument("--offline", action="store_true", help="never download; say where to put the file")
    fetch.add_argument("--mirror", help="URL prefix holding the same file names (default $WB_WEIGHTS_MIRROR)")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")

    imp = sub.add_parser("import", help="import an ONNX model / Paddle inference folder into the training graph")
    imp.add_argument("source", type=Path, help=".onnx file or folder with inference.json + inference.pdiparams")
    imp.add_argument("--out", type=Path, required=True, help="the .pdparams to write")
    imp.add_argument("--model", help="model name (default: inference.yml's Global.model_name, or the .onnx stem)")
    imp.add_argument("--dict", type=Path, help="rec: dictionary file (default: inference.yml's, or the official one)")
    imp.add_argument("--calib", type=Path,
                     help="images for the BatchNorm statistics: a label file or an image folder, ideally your "
                          "training data (default: synthetic text images)")
    imp.add_argument("--calib-count", type=int, default=None, help="images read from --calib (rec 64, det 8)")
    imp.add_argument("--probe", type=Path, help="images for the parity check: label file or folder "
                                                "(default: synthetic text images)")
    imp.add_argument("--probe-count", type=int, default=16, help="images read from --probe")
    imp.add_argument("--seed", type=int, default=0, help="seed of the fresh parts and the branch split")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.action == "fetch":
        return fetch_command(args)
    return import_command(args)


# ------------------------------------------------------------------------------------------------ fetch


def fetch_command(args) -> int:
    from workbench.models import zoo
    from workbench.tasks import registry
    from workbench.weights.fetch import sha256_of
    from workbench.weights.pretrained import fetch_checked

    path, tensors = fetch_checked(args.name, cache=args.cache_dir, mirror=args.mirror,
                                  offline=True if args.offline else None, progress=not args.no_progress)
    print(f"{args.name}: {path}")
    print(f"  {path.stat().st_size:,} bytes, sha256 {sha256_of(path)}, {tensors} tensors fit the training graph")
    recipe = registry.get(zoo.get_spec(args.name).task).recipe
    print(f"  use it: wb train recipe={recipe} model.name={args.name} model.pretrained={args.name} "
          "data.train=... data.val=...")
    return 0


# ------------------------------------------------------------------------------------------------ import


def import_command(args) -> int:
    from workbench.tasks import registry
    from workbench.weights.importing import ImportOptions, prepare_import, write_import

    prepared = prepare_import(ImportOptions(
        source=args.source, out=args.out, model=args.model, dictionary=args.dict, calib=args.calib,
        calib_count=args.calib_count, probe=args.probe, probe_count=args.probe_count, seed=args.seed))
    print(prepared.result.report.summary())
    print("  " + prepared.self_check_line())
    prepared.check_parity()
    done = write_import(prepared)
    recipe = registry.get(done.task).recipe
    out = done.out
    print(f"wrote {out} (+ {out.stem}.import.json{', ' + out.stem + '.dict.txt' if done.dictionary else ''})")
    print(f"  fine-tune: wb train recipe={recipe} {done.usage} data.train=... data.val=...")
    # `wb eval` reads the model name and the dictionary from the files written beside the weights
    print(f"  baseline:  wb eval recipe={recipe} checkpoint={out} data.val=...")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
