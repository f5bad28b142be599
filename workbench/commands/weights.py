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
``workbench.weights.importers``), checks it against the source model run by its own runtime (onnxruntime /
Paddle Inference) and prints the figures. Next to ``--out`` it writes ``<out>.import.json`` (what was mapped,
what was initialised, the parity figures) and, for recognition, ``<out>.dict.txt`` (the dictionary; an official
dictionary is also put into the cache, where ``wb train`` / ``wb eval`` look for it, so no download is needed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from workbench.errors import WeightsError

log = logging.getLogger("workbench.weights")

# A wrong mapping gives differences of order 0.1..1; float32 re-ordering gives ~1e-5 (see tests/test_weights_import.py).
PARITY_TOLERANCE = 1e-3
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _parser() -> argparse.ArgumentParser:
    from workbench.config.suggest import OneLineArgumentParser

    parser = OneLineArgumentParser(prog="wb weights", description="fetch official weights / import inference models")
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
    from workbench.weights.fetch import sha256_of
    from workbench.weights.pretrained import check_state_dict_fits, fetch_official_pretrained

    path = fetch_official_pretrained(args.name, cache=args.cache_dir, mirror=args.mirror,
                                     offline=True if args.offline else None, progress=not args.no_progress)
    try:
        tensors = check_state_dict_fits(args.name, path)
    except WeightsError as exc:
        bad = path.with_name(path.name + ".corrupt")
        os.replace(path, bad)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)
        raise WeightsError(f"{exc}\n  The file was moved to {bad}; run the command again to download it anew.") from None
    print(f"{args.name}: {path}")
    print(f"  {path.stat().st_size:,} bytes, sha256 {sha256_of(path)}, {tensors} tensors fit the training graph")
    print(f"  use it: wb train recipe=... model.name={args.name} model.pretrained={args.name}")
    return 0


# ------------------------------------------------------------------------------------------------ import


def _image_paths(source: Path, limit: int) -> list[Path]:
    """Up to ``limit`` image paths from a label file (PaddleOCR format, first column) or a folder."""
    from workbench.data.labels import read_label_lines, resolve_image_path

    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    elif source.is_file():
        lines, findings = read_label_lines(source)
        if not lines:
            raise WeightsError(f"{source}: no usable label lines" + (f" ({findings[0]})" if findings else ""))
        paths = [resolve_image_path(source, line.path) for line in lines]
    else:
        raise WeightsError(f"{source}: no such label file or image folder")
    if not paths:
        raise WeightsError(f"{source}: no images found")
    if len(paths) > limit:  # spread over the whole set, deterministically
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, limit).round().astype(int)]
    return paths


def _read_images(source: Path, limit: int) -> list[np.ndarray]:
    from workbench.data.images import read_image

    return [read_image(p, allow_truncated=True) for p in _image_paths(source, limit)]


def _resolve_dictionary(args, result_dictionary, spec, num_classes):
    """(Charset, where it came from) for a rec import."""
    from workbench.data.charset import Charset

    if args.dict is not None:
        return Charset.from_file(args.dict), str(args.dict)
    if result_dictionary:
        return Charset(result_dictionary, use_space_char=True, source="inference.yml"), "inference.yml"
    if spec.dictionary is not None and spec.dictionary.num_ctc_classes == num_classes:
        from workbench.weights.pretrained import fetch_dictionary

        path = fetch_dictionary(spec.dictionary)
        return Charset.from_file(path), f"official {spec.dictionary.file_name}"
    raise WeightsError(f"{args.source}: a recognition model needs its dictionary: pass --dict FILE "
                       f"({num_classes} CTC classes = {num_classes - 2} dictionary lines + blank + space)")


def _write_dictionary(charset, out: Path, spec) -> tuple[Path, Optional[Path]]:
    """``<out>.dict.txt`` (LF line ends) and, when it is the official dictionary byte for byte, a copy in the
    cache where ``fetch_dictionary`` finds it."""
    from workbench.weights.fetch import cache_dir

    text = "".join(ch + "\n" for ch in charset.characters).encode("utf-8")  # = what Charset.sha256 hashes
    path = out.with_name(out.stem + ".dict.txt")
    path.write_bytes(text)
    cached = None
    official = spec.dictionary
    if official is not None and charset.sha256 == official.sha256:
        cached = cache_dir() / "dictionaries" / official.file_name
        cached.parent.mkdir(parents=True, exist_ok=True)
        if not cached.is_file():
            cached.write_bytes(text)
    return path, cached


def import_command(args) -> int:
    import paddle

    from workbench.models import zoo
    from workbench.weights import importers as imp

    source = args.source.expanduser()
    kind = imp.inference_source_kind(source)
    yml = imp.read_inference_yml(source) if kind == "paddle" else None
    name = imp.resolve_model_name(kind, source, args.model, yml)
    spec = zoo.get_spec(name)

    charset = None
    if spec.task == "rec":
        # The class count is checked against the dictionary before anything is built.
        units = imp.extract_units(imp.read_graph(source))
        graph_classes = imp.ctc_classes(units)
        yml_dict = ((yml or {}).get("PostProcess") or {}).get("character_dict")
        charset, dict_source = _resolve_dictionary(args, yml_dict, spec, graph_classes)
        if charset.num_ctc_classes != graph_classes:
            raise WeightsError(f"{source} outputs {graph_classes} classes but the dictionary ({dict_source}) gives "
                               f"{charset.num_ctc_classes} ({len(charset)} lines + blank + space): wrong dictionary")

    if args.calib is not None:
        count = args.calib_count or (64 if spec.task == "rec" else 8)
        calibration = imp.preprocess_images(spec.task, _read_images(args.calib, count))
        calibration_name = f"{count} images from {args.calib}"
    else:
        calibration, calibration_name = None, "synthetic text images (pass --calib with your training data for " \
                                              "statistics that match it)"
    result = imp.import_inference_model(source, model_name=name, num_classes=charset.num_ctc_classes if charset
                                        else None, calibration=calibration, calibration_name=calibration_name,
                                        seed=args.seed)

    # --- self-check against the source runtime
    if args.probe is not None:
        probe = imp.preprocess_images(spec.task, _read_images(args.probe, args.probe_count), pipeline=True)
        probe_name = f"{len(probe)} images from {args.probe}"
    else:
        probe = imp.synthetic_inputs(spec.task, count=8 if spec.task == "rec" else 1, seed=args.seed + 1)
        probe_name = "synthetic text images"
    decode = None
    if charset is not None:
        from workbench.postprocess.ctc import CTCDecoder

        decode = CTCDecoder(charset)
    parity = imp.compare_with_source(result.model, imp.source_runtime(source), probe, decode=decode)
    parity.update(probe=probe_name, runtime="onnxruntime" if kind == "onnx" else "Paddle Inference",
                  tolerance=PARITY_TOLERANCE)
    result.report.parity = parity
    print(result.report.summary())
    print(f"  self-check vs {parity['runtime']} on {probe_name}: {parity['samples']} samples, "
          f"max |diff| {parity['max_abs_diff']:.2e}, mean |diff| {parity['mean_abs_diff']:.2e}"
          + (f", decoded texts differing: {parity['text_mismatches']}" if decode else ""))
    if parity["max_abs_diff"] > PARITY_TOLERANCE:
        raise WeightsError(f"the imported model does not reproduce {source} (max |diff| "
                           f"{parity['max_abs_diff']:.3g} > {PARITY_TOLERANCE}); nothing was written")
    if parity.get("text_mismatches"):
        log.warning("decoded texts differ on %d probe samples (near-ties flip the arg-max): %s",
                    parity["text_mismatches"], parity["mismatched"])

    # --- write
    out = args.out.expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    paddle.save(result.model.state_dict(), str(tmp))
    os.replace(tmp, out)
    record = {"weights": str(out), **result.report.to_dict()}
    usage = f"model.name={name} model.pretrained={out}"
    if charset is not None:
        dict_path, cached = _write_dictionary(charset, out, spec)
        record["dictionary"] = {"file": str(dict_path), "source": dict_source, "lines": len(charset),
                                "sha256": charset.sha256, "official_copy_in_cache": str(cached) if cached else None}
        if cached is None:
            usage += f" model.character_dict={dict_path}"
    out.with_name(out.stem + ".import.json").write_text(json.dumps(record, indent=1, ensure_ascii=False, default=str))
    print(f"wrote {out} (+ {out.stem}.import.json{', ' + out.stem + '.dict.txt' if charset is not None else ''})")
    print(f"  fine-tune: wb train recipe={spec.task}_finetune {usage} data.train=... data.val=...")
    print(f"  baseline:  wb eval recipe={spec.task}_finetune checkpoint={out} data.val=..."
          + ("" if charset is None or record["dictionary"]["official_copy_in_cache"] else
             f" model.character_dict={record['dictionary']['file']}"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
