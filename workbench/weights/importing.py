"""``wb weights import`` as a function: an ONNX export or a Paddle inference folder → a training-graph
``.pdparams``, proved against the source model run by its own runtime, with its record and dictionary beside it.

``import_weights(ImportOptions(source, out, ...))`` does what the command does (see ``workbench.weights.importers``
for how an import works) and writes, next to ``out``: ``<out>.import.json`` (what was mapped, what was
initialised, the parity figures) and, for recognition, ``<out>.dict.txt`` (the dictionary; an official dictionary
is also put into the cache, where ``wb train`` / ``wb eval`` look for it, so no download is needed). The weights
resolver (``workbench.weights.refs``) reads both back.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from workbench.errors import WeightsError

log = logging.getLogger("workbench.weights")

# A wrong mapping gives differences of order 0.1..1; float32 re-ordering gives ~1e-5 (see tests/test_weights_import.py).
PARITY_TOLERANCE = 1e-3
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class ImportOptions:
    """What to import and how (the options of ``wb weights import``)."""

    source: Path  # .onnx file or folder with inference.json + inference.pdiparams
    out: Path  # the .pdparams to write
    model: Optional[str] = None  # model name (default: inference.yml's Global.model_name, or the .onnx stem)
    dictionary: Optional[Path] = None  # rec: dictionary file (default: inference.yml's, or the official one)
    calib: Optional[Path] = None  # images for the BatchNorm statistics: label file or image folder
    calib_count: Optional[int] = None  # images read from calib (rec 64, det 8)
    probe: Optional[Path] = None  # images for the parity check: label file or folder
    probe_count: int = 16
    seed: int = 0  # seed of the fresh parts and the branch split


@dataclass
class ImportOutcome:
    out: Path
    model_name: str
    task: str
    report: object  # workbench.weights.importers.ImportReport (its summary() is what the command prints)
    parity: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)  # what <out>.import.json holds
    dictionary: Optional[Path] = None  # <out>.dict.txt (rec)
    usage: str = ""  # the model.* overrides that fine-tune from these weights


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


def _resolve_dictionary(opts, result_dictionary, spec, num_classes):
    """(Charset, where it came from) for a rec import."""
    from workbench.data.charset import Charset

    if opts.dictionary is not None:
        return Charset.from_file(opts.dictionary), str(opts.dictionary)
    if result_dictionary:
        return Charset(result_dictionary, use_space_char=True, source="inference.yml"), "inference.yml"
    if spec.dictionary is not None and spec.dictionary.num_ctc_classes == num_classes:
        from workbench.weights.pretrained import fetch_dictionary

        path = fetch_dictionary(spec.dictionary)
        return Charset.from_file(path), f"official {spec.dictionary.file_name}"
    raise WeightsError(f"{opts.source}: a recognition model needs its dictionary: pass --dict FILE "
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


def import_weights(opts: ImportOptions) -> ImportOutcome:
    """Import, check against the source runtime (a failed check raises and writes nothing), write the weights and
    their sidecars."""
    outcome = prepare_import(opts)
    outcome.check_parity()
    return write_import(outcome)


def prepare_import(opts: ImportOptions) -> "PreparedImport":
    """The imported model and its parity figures, nothing written yet."""
    from workbench.models import zoo
    from workbench.weights import importers as imp

    source = Path(opts.source).expanduser()
    kind = imp.inference_source_kind(source)
    yml = imp.read_inference_yml(source) if kind == "paddle" else None
    name = imp.resolve_model_name(kind, source, opts.model, yml)
    spec = zoo.get_spec(name)

    charset, dict_source = None, None
    if spec.task == "rec":  # a CTC head: the class count is checked against the dictionary before anything is built
        units = imp.extract_units(imp.read_graph(source))
        graph_classes = imp.ctc_classes(units)
        yml_dict = ((yml or {}).get("PostProcess") or {}).get("character_dict")
        charset, dict_source = _resolve_dictionary(opts, yml_dict, spec, graph_classes)
        if charset.num_ctc_classes != graph_classes:
            raise WeightsError(f"{source} outputs {graph_classes} classes but the dictionary ({dict_source}) gives "
                               f"{charset.num_ctc_classes} ({len(charset)} lines + blank + space): wrong dictionary")

    if opts.calib is not None:
        count = opts.calib_count or (8 if spec.task == "det" else 64)
        calibration = imp.preprocess_images(spec.task, _read_images(opts.calib, count), spec=spec,
                                            turned=spec.classes is not None)
        calibration_name = f"{count} images from {opts.calib}"
    else:
        calibration, calibration_name = None, "synthetic text images (pass --calib with your training data for " \
                                              "statistics that match it)"
    result = imp.import_inference_model(source, model_name=name, num_classes=charset.num_ctc_classes if charset
                                        else None, calibration=calibration, calibration_name=calibration_name,
                                        seed=opts.seed)

    # --- self-check against the source runtime
    if opts.probe is not None:
        probe = imp.preprocess_images(spec.task, _read_images(opts.probe, opts.probe_count), pipeline=True, spec=spec,
                                      turned=spec.classes is not None)
        probe_name = f"{sum(len(b) for b in probe)} images from {opts.probe}" + (
            " (each also turned through the classes' angles)" if spec.classes is not None else "")
    else:
        probe = imp.synthetic_inputs(spec.task, count=1 if spec.task == "det" else 8, seed=opts.seed + 1, spec=spec)
        probe_name = "synthetic text images"
    decode = None
    if charset is not None:
        from workbench.postprocess.ctc import CTCDecoder

        decode = CTCDecoder(charset)
    elif spec.classes is not None:  # a classifier: compare the decided classes
        classes = spec.classes

        def decode(probs):
            return [(classes[int(i)], float(p[int(i)])) for i, p in zip(probs.argmax(-1), probs)]
    parity = imp.compare_with_source(result.model, imp.source_runtime(source), probe, decode=decode)
    tolerance = PARITY_TOLERANCE
    if kind == "onnx":  # never tighter than twice onnxruntime's own float32 spread (weights/runtime_spread.py)
        from workbench.weights.runtime_spread import onnxruntime_spread

        parity["runtime_spread"] = max(onnxruntime_spread(source, probe))
        tolerance = max(tolerance, 2 * parity["runtime_spread"])
    parity.update(probe=probe_name, runtime="onnxruntime" if kind == "onnx" else "Paddle Inference",
                  tolerance=tolerance)
    result.report.parity = parity
    return PreparedImport(opts, source, spec, result, parity, charset, dict_source)


@dataclass
class PreparedImport:
    opts: ImportOptions
    source: Path
    spec: object  # the model's zoo spec
    result: object  # workbench.weights.importers.ImportedModel
    parity: dict
    charset: object = None  # rec: workbench.data.charset.Charset
    dict_source: Optional[str] = None

    def self_check_line(self) -> str:
        p = self.parity
        return (f"self-check vs {p['runtime']} on {p['probe']}: {p['samples']} samples, max |diff| "
                f"{p['max_abs_diff']:.2e}, mean |diff| {p['mean_abs_diff']:.2e}"
                + (f", decoded {'texts' if self.charset is not None else 'classes'} differing: {p['text_mismatches']}"
                   if "text_mismatches" in p else ""))

    def check_parity(self) -> None:
        p = self.parity
        if p["max_abs_diff"] > p["tolerance"]:
            raise WeightsError(f"the imported model does not reproduce {self.source} (max |diff| "
                               f"{p['max_abs_diff']:.3g} > {p['tolerance']:.3g}); nothing was written")
        if p.get("text_mismatches"):
            log.warning("decoded texts differ on %d probe samples (near-ties flip the arg-max): %s",
                        p["text_mismatches"], p["mismatched"])


def write_import(prepared: PreparedImport) -> ImportOutcome:
    """``out`` (atomically), ``<out>.import.json`` and, for recognition, ``<out>.dict.txt``."""
    import paddle

    spec, charset, result = prepared.spec, prepared.charset, prepared.result
    out = Path(prepared.opts.out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    paddle.save(result.model.state_dict(), str(tmp))
    os.replace(tmp, out)
    record = {"weights": str(out), **result.report.to_dict()}
    usage = f"model.name={spec.name} model.pretrained={out}"
    dict_path = None
    if charset is not None:
        dict_path, cached = _write_dictionary(charset, out, spec)
        record["dictionary"] = {"file": str(dict_path), "source": prepared.dict_source, "lines": len(charset),
                                "sha256": charset.sha256, "official_copy_in_cache": str(cached) if cached else None}
        if cached is None:
            usage += f" model.character_dict={dict_path}"
    out.with_name(out.stem + ".import.json").write_text(json.dumps(record, indent=1, ensure_ascii=False, default=str))
    return ImportOutcome(out, spec.name, spec.task, result.report, prepared.parity, record, dict_path, usage)
