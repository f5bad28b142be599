"""Verification: the exported folder, run by the real PaddleX, must behave like the model the workbench trained.

Upstream users learn in production that an exported model behaves differently (#17538, #16080, #17425). Here
the export is run through PaddleX itself and compared, number for number, with the workbench's own predictions
(the training graph, unfused, in dynamic mode, with the workbench's preprocessing and post-processing):

``module`` stage — ``paddlex.create_model`` on each exported folder:
    rec: the run's validation crops; det: the probe images (PaddleX's standalone resize, long side ≤ 960).
``pipeline`` stage — ``paddlex.create_pipeline`` with the exported ``PaddleOCR.yaml`` on the probe images:
    det with the YAML's limits and thresholds, rec on the crops the pipeline cut from its own boxes.
``cli`` stage — ``paddleocr ocr`` in a subprocess, run inside the export folder with the printed model-name
    flags: its texts and boxes must equal the pipeline's.

In every stage the model input PaddleX built, the model output it got (det probability map, rec CTC
probabilities — read by wrapping the predictor's runner) and its decoded result are compared with ours:

=====================  ===========================================  ==============================
quantity               compared                                     pass when
=====================  ===========================================  ==============================
model input            our preprocessing vs PaddleX's tensor        max abs diff ≤ ``input_atol``
det probability map    our model vs the exported graph in PaddleX   max abs diff ≤ max(``det_map_atol``, F·e)
det boxes              our DB post-process vs PaddleX's boxes       same count, vertices ≤ ``box_px``
rec probabilities      our model vs the exported graph in PaddleX   max abs diff ≤ max(``rec_prob_atol``, F·e)
rec text               our CTC decode vs PaddleX's text             identical (or a numerical tie)
scores                 box / text scores                            abs diff ≤ ``score_atol``
=====================  ===========================================  ==============================

``e`` is the float32 error of the workbench model on that very input (max abs difference to a float64 run of it)
and ``F`` = ``noise_factor`` (4): two float32 evaluations of one function cannot be expected to agree better
than their own rounding allows, and a barely trained model can amplify rounding a lot (the tiny test models reach
e ≈ 2e-3 on det maps). A real export bug (wrong normalisation, fusion, dictionary) is orders of magnitude larger.

A *numerical tie* is a text difference that comes only from steps where our two most likely classes are closer
than twice the difference between the two graphs' probabilities there (see :func:`_text_agreement`); it is
reported as such. PaddleX against PaddleX (pipeline vs ``paddleocr`` CLI, same settings) must be identical.

Cropping and box sorting are PaddleX's own geometry (not something an export can change); the rec comparison
runs on the crops PaddleX cut, after its boxes were checked equal to ours.

The report (``verification.json`` + ``verification.md`` in the export folder) lists every comparison; any
failure raises :class:`~workbench.errors.ExportError` naming where the two sides differ. The pipeline's
results are kept as ``expected`` so :func:`recheck` can prove a moved or copied folder still gives them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from workbench.errors import ExportError

log = logging.getLogger("workbench.export")

REPORT_JSON = "verification.json"
REPORT_MD = "verification.md"
PROBES_DIR = "probes"


@dataclass
class Tolerances:
    """What "behaves the same" means. Float32 graphs on CPU: the exported graph is fused (rep-layers, BN) and
    run by Paddle Inference with its own kernels, so outputs differ by float rounding, not more."""

    input_atol: float = 1e-5  # preprocessing: both sides compute the same float32 arithmetic
    det_map_atol: float = 1e-3  # det probability map, values in [0, 1]
    rec_prob_atol: float = 1e-4  # rec CTC probabilities, values in [0, 1]
    # A model can be ill-conditioned in float32 (a barely trained one often is): then the bound is this many times
    # the workbench model's own float32 error on that input, measured against a float64 run of it.
    noise_factor: float = 4.0
    score_atol: float = 1e-3  # box scores (mean of the map) and text scores (mean of max probabilities)
    box_px: int = 1  # box vertices, in source-image pixels


@dataclass
class Check:
    stage: str  # files | module | pipeline | cli
    item: str  # probe image / crop / file
    what: str
    value: Any
    limit: Any
    passed: bool
    detail: str = ""


@dataclass
class Report:
    tolerances: Tolerances
    checks: list[Check] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)  # pipeline results per probe image (for recheck)

    def add(self, stage, item, what, value, limit, passed, detail="") -> Check:
        c = Check(stage, str(item), what, _jsonable(value), _jsonable(limit), bool(passed), detail)
        self.checks.append(c)
        if not c.passed:
            log.warning("verification FAILED: [%s] %s: %s = %s (limit %s) %s", stage, item, what, c.value, limit,
                        detail)
        return c

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def max_values(self) -> dict[str, float]:
        """The largest value of every numeric quantity (the figures to quote)."""
        out: dict[str, float] = {}
        for c in self.checks:
            if isinstance(c.value, (int, float)) and not isinstance(c.value, bool):
                key = f"{c.stage}: {c.what}"
                out[key] = max(out.get(key, float("-inf")), float(c.value))
        return out

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "tolerances": asdict(self.tolerances),
            "summary": {"checks": len(self.checks), "failed": len(self.failures()), "max": self.max_values()},
            "facts": self.facts,
            "failures": [asdict(c) for c in self.failures()],
            "checks": [asdict(c) for c in self.checks],
            "expected": self.expected,
        }

    def to_markdown(self) -> str:
        lines = [f"# Export verification: {'PASSED' if self.passed else 'FAILED'}", ""]
        lines += ["Tolerances: " + ", ".join(f"{k}={v}" for k, v in asdict(self.tolerances).items()), ""]
        if self.failures():
            lines += ["## Failures", "", "| stage | item | what | value | limit | detail |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {c.stage} | {c.item} | {c.what} | {_short(c.value)} | {_short(c.limit)} | {c.detail} |"
                      for c in self.failures()]
            lines.append("")
        lines += ["## Largest differences", "", "| quantity | max |", "|---|---|"]
        lines += [f"| {k} | {v:.3g} |" for k, v in sorted(self.max_values().items())]
        lines += ["", "## Every comparison", "", "| stage | item | what | value | limit | ok | detail |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c.stage} | {c.item} | {c.what} | {_short(c.value)} | {_short(c.limit)} | "
                  f"{'yes' if c.passed else '**NO**'} | {c.detail} |" for c in self.checks]
        if self.facts:
            lines += ["", "## Facts", "", "```json", json.dumps(self.facts, indent=1, default=str), "```"]
        return "\n".join(lines) + "\n"

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        folder = Path(folder)
        j, m = folder / REPORT_JSON, folder / REPORT_MD
        j.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False, default=str), encoding="utf-8")
        m.write_text(self.to_markdown(), encoding="utf-8")
        return j, m

    def raise_if_failed(self, folder: Optional[str | Path] = None) -> None:
        if self.passed:
            return
        fails = self.failures()
        shown = "\n".join(f"  [{c.stage}] {c.item}: {c.what} = {_short(c.value)} (limit {_short(c.limit)}) {c.detail}"
                          for c in fails[:15])
        more = f"\n  ... and {len(fails) - 15} more" if len(fails) > 15 else ""
        where = f"\nfull report: {Path(folder) / REPORT_MD}" if folder is not None else ""
        if not self.checks:
            shown = "  nothing was compared"
        raise ExportError(f"export verification failed ({len(fails)} of {len(self.checks)} checks):\n"
                          f"{shown}{more}{where}")


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _short(v, n: int = 60) -> str:
    s = f"{v:.3g}" if isinstance(v, float) else str(v)
    return s if len(s) <= n else s[: n - 1] + "…"


# ----------------------------------------------------------------------------------------------- probes


@dataclass
class Probes:
    """What verification runs on. Paths are inside the export folder (``probes/``) once :func:`copy_probes` ran."""

    images: list[Path] = field(default_factory=list)  # full images for det and the pipeline
    crops: list[Path] = field(default_factory=list)  # rec crops for the module stage
    crop_texts: list[str] = field(default_factory=list)  # their labels (shown in the report, not compared)


def validation_files(checkpoint) -> tuple[list[Path], Optional[str]]:
    """The validation label files (and ``data.root``) recorded in a checkpoint's ``config.yaml``."""
    import yaml

    text = checkpoint.config_yaml
    if not text:
        return [], None
    data = (yaml.safe_load(text) or {}).get("data") or {}
    val = data.get("val")
    if not val and not data.get("train") and (data.get("demo") or {}).get("dir"):
        val = str(Path(data["demo"]["dir"]) / "val.txt")  # a demo run: its generated validation set
    files = [val] if isinstance(val, str) else list(val or [])
    return [Path(f) for f in files if f and Path(f).is_file()], data.get("root")


def select_probes(
    det_checkpoint=None,
    rec_checkpoint=None,
    *,
    probe_images: Iterable[str] = (),
    num_images: int = 2,
    num_crops: int = 8,
) -> Probes:
    """Probe images: the user's, else the first ``num_images`` of the det run's validation set; rec crops: the
    first ``num_crops`` of the rec run's validation set. With only rec exported and no images given, the rec
    crops double as pipeline images."""
    from workbench.data.images import read_image
    from workbench.data.labels import read_det_labels, read_rec_labels

    probes = Probes()
    for p in probe_images:
        if not Path(p).is_file():
            raise ExportError(f"probe image not found: {p}")
        read_image(p)  # a bad probe image is an error naming it before anything is exported
        probes.images.append(Path(p))
    if not probes.images and det_checkpoint is not None:
        files, root = validation_files(det_checkpoint)
        for f in files:
            samples, _ = read_det_labels(f, root)
            for s in samples:
                if len(probes.images) < num_images and _readable(read_image, s.image_path):
                    probes.images.append(s.image_path)
    if rec_checkpoint is not None:
        files, root = validation_files(rec_checkpoint)
        for f in files:
            samples, _ = read_rec_labels(f, root)
            for s in samples:
                if len(probes.crops) < num_crops and _readable(read_image, s.image_path):
                    probes.crops.append(s.image_path)
                    probes.crop_texts.append(s.text)
        if not probes.crops:
            raise ExportError(f"{rec_checkpoint.path}: no validation crops recorded in config.yaml (data.val) to "
                              "verify the rec model on")
    if not probes.images:
        probes.images = list(probes.crops[:num_images])
    if not probes.images:
        raise ExportError("no probe images: the det run has no validation data in its config.yaml; pass "
                          "probe_images=[...]")
    return probes


def _readable(read_image, path) -> bool:
    try:
        read_image(path)
        return True
    except Exception:
        return False


def copy_probes(probes: Probes, folder: Path) -> Probes:
    """Copy the probes into ``folder/probes/{images,crops}`` (numbered, so names never collide)."""
    out = Probes(crop_texts=list(probes.crop_texts))
    for kind, paths, dst_list in (("images", probes.images, out.images), ("crops", probes.crops, out.crops)):
        d = folder / PROBES_DIR / kind
        d.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(paths):
            dst = d / f"{i:02d}_{Path(p).name}"
            shutil.copyfile(p, dst)
            dst_list.append(dst)
    if probes.crop_texts:
        (folder / PROBES_DIR / "crops_labels.json").write_text(
            json.dumps({p.name: t for p, t in zip(out.crops, probes.crop_texts)}, ensure_ascii=False, indent=1),
            encoding="utf-8")
    return out


# ----------------------------------------------------------------------------------------------- recording


class _RunnerRecorder:
    """Stands in for a PaddleX predictor's runner and keeps every input batch and output."""

    def __init__(self, runner):
        self._runner = runner
        self.calls: list[tuple[list[np.ndarray], list[np.ndarray]]] = []

    def __call__(self, x):
        out = self._runner(x)
        self.calls.append(([np.array(a) for a in x], [np.array(o) for o in out]))
        return out

    def __getattr__(self, name):
        return getattr(self._runner, name)


class _PredictorRecorder:
    """Stands in for a pipeline's predictor: keeps the images it was given and the results it yielded."""

    def __init__(self, predictor):
        self._predictor = predictor
        self.calls: list[tuple[list, list]] = []

    def __call__(self, inputs, *args, **kwargs):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        results = []
        self.calls.append((inputs, results))
        for r in self._predictor(inputs, *args, **kwargs):
            results.append(r)
            yield r

    def __getattr__(self, name):
        return getattr(self._predictor, name)


def _record_runner(predictor) -> _RunnerRecorder:
    target = getattr(predictor, "_predictor", predictor)  # paddlex.create_model wraps the predictor
    if not hasattr(target, "runner"):
        raise ExportError(f"PaddleX predictor {type(target).__name__} has no 'runner': this paddlex version is not "
                          "supported by the verification")
    rec = _RunnerRecorder(target.runner)
    target.runner = rec
    return rec


def _inner_pipeline(pipeline):
    inner = getattr(pipeline, "_pipeline", pipeline)
    if not (hasattr(inner, "text_det_model") and hasattr(inner, "text_rec_model")):
        raise ExportError(f"PaddleX OCR pipeline {type(inner).__name__} has no text_det_model/text_rec_model: this "
                          "paddlex version is not supported by the verification")
    return inner


# ----------------------------------------------------------------------------------------------- our side


class Workbench:
    """The workbench's own predictions for the exported modules (training graph, unfused, dynamic mode).

    ``det_map`` / ``rec_probs`` also return the float32 error of that prediction: the max abs difference to the
    same model run in float64 (built on first use), which sets how close two float32 graphs can be expected to be.
    """

    def __init__(self, det_source=None, rec_source=None):
        from workbench.export.inference_model import build_model

        self.det_source, self.rec_source = det_source, rec_source
        self.det_model = build_model(det_source) if det_source is not None else None
        self.rec_model = build_model(rec_source) if rec_source is not None else None
        self._f64: dict = {}
        self.decoder = None
        if rec_source is not None:
            from workbench.postprocess.ctc import CTCDecoder

            self.decoder = CTCDecoder(rec_source.charset.characters, use_space_char=True)

    def det_input(self, image: np.ndarray, resize) -> tuple[np.ndarray, Any]:
        from workbench.data.preprocess import normalize_det

        resized, shape = resize(image)
        return normalize_det(resized, arithmetic="paddlex")[None], shape

    def _run(self, task: str, x: np.ndarray) -> tuple[np.ndarray, float]:
        import paddle

        from workbench.export.inference_model import build_model

        model = self.det_model if task == "det" else self.rec_model
        if task not in self._f64:
            self._f64[task] = build_model(self.det_source if task == "det" else self.rec_source).to(dtype="float64")
        with paddle.no_grad():
            out = model(paddle.to_tensor(x)).numpy()
            exact = self._f64[task](paddle.to_tensor(x.astype(np.float64))).numpy()
        return out, _max_diff(out, exact)

    def det_map(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        return self._run("det", x)

    def rec_input(self, crops: list[np.ndarray]) -> np.ndarray:
        from workbench.data.preprocess import preprocess_rec_batch

        return preprocess_rec_batch(crops, self.rec_source.image_shape)

    def rec_probs(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        return self._run("rec", x)


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max()) if a.size else 0.0


def _quads(polys) -> np.ndarray:
    arr = np.asarray(polys if len(polys) else np.zeros((0, 4, 2)), dtype=np.float64)
    return arr.reshape(-1, 4, 2)


def compare_boxes(report: Report, stage: str, item: str, ours, ours_scores, theirs, their_scores, tol: Tolerances):
    a, b = _quads(ours), _quads(theirs)
    report.add(stage, item, "det box count (ours vs PaddleX)", f"{len(a)} vs {len(b)}", "equal", len(a) == len(b))
    if len(a) == len(b) and len(a):
        d = float(np.abs(a - b).max())
        report.add(stage, item, "det box vertices max abs diff (px)", d, tol.box_px, d <= tol.box_px)
        s = _max_diff(ours_scores, their_scores)
        report.add(stage, item, "det box scores max abs diff", s, tol.score_atol, s <= tol.score_atol)


def _margin(probs: np.ndarray) -> float:
    """Smallest gap between the two most likely classes over all steps (small: a tie float noise can flip)."""
    top2 = np.sort(probs, axis=-1)[..., -2:]
    return float((top2[..., 1] - top2[..., 0]).min()) if probs.size else float("inf")


def _text_agreement(ours: str, theirs: str, p_ours: np.ndarray, p_theirs: np.ndarray) -> tuple[bool, str]:
    """Texts must be identical. The one exception is a *numerical tie*: the two argmax paths differ only at
    steps where our two most likely classes are closer than twice the probability difference between the two
    graphs there — rounding decides such a step, in either graph (our own float32 run is no more "right" there).
    Anything else is a mismatch."""
    gap = f"smallest top-2 probability gap {_margin(p_ours):.1e}"
    if ours == theirs:
        return True, gap
    if p_ours.shape != p_theirs.shape:
        return False, f"ours {ours!r} vs PaddleX {theirs!r}; output shapes differ"
    steps = np.nonzero(p_ours.argmax(-1) != p_theirs.argmax(-1))[0]
    if not len(steps):
        return False, f"ours {ours!r} vs PaddleX {theirs!r} from the same argmax path: the decoders differ"
    top2 = np.sort(p_ours[steps], axis=-1)[:, -2:]
    gaps = top2[:, 1] - top2[:, 0]
    bound = 2 * np.abs(p_ours[steps] - p_theirs[steps]).max(axis=-1)
    where = ", ".join(f"step {s}: gap {g:.1e} vs 2x diff {b:.1e}" for s, g, b in zip(steps, gaps, bound))
    if np.all(gaps <= bound):
        return True, f"numerical tie (ours {ours!r}, PaddleX {theirs!r}) at {where}"
    return False, f"ours {ours!r} vs PaddleX {theirs!r}; argmax differs at {where}"


def compare_rec_batch(report, stage, items, ours_x, their_x, wb: Workbench, their_probs, their_texts, their_scores,
                      tol: Tolerances) -> list[tuple[str, float]]:
    """Compare one rec batch; returns our decoded (text, score) per crop."""
    label = items[0] if len(items) == 1 else f"{items[0]} … {items[-1]} ({len(items)} crops)"
    d_in = _max_diff(ours_x, their_x)
    report.add(stage, label, "rec input max abs diff", d_in, tol.input_atol, d_in <= tol.input_atol,
               f"shape ours {list(np.shape(ours_x))} PaddleX {list(np.shape(their_x))}")
    probs, f32_error = wb.rec_probs(ours_x)
    d = _max_diff(probs, their_probs)
    limit = max(tol.rec_prob_atol, tol.noise_factor * f32_error)
    report.add(stage, label, "rec probabilities max abs diff", d, limit, d <= limit,
               f"float32 error of our model {f32_error:.2e}")
    decoded = wb.decoder(probs)
    for i, (item, (text, score)) in enumerate(zip(items, decoded)):
        ok, detail = _text_agreement(text, their_texts[i], probs[i], np.asarray(their_probs)[i])
        report.add(stage, item, "rec text (ours vs PaddleX)", text, their_texts[i], ok, detail)
        ds = abs(float(score) - float(their_scores[i]))
        report.add(stage, item, "rec score abs diff", ds, tol.score_atol, ds <= tol.score_atol)
    return decoded


# ----------------------------------------------------------------------------------------------- stages


def _det_postprocess(det_yml: dict, params: Optional[dict] = None):
    from workbench.postprocess.db import DBPostProcess

    pp = dict(det_yml["PostProcess"])
    p = dict(params or {})
    return DBPostProcess(
        thresh=float(p.get("thresh", pp["thresh"])), box_thresh=float(p.get("box_thresh", pp["box_thresh"])),
        max_candidates=int(pp.get("max_candidates", 1000)),
        unclip_ratio=float(p.get("unclip_ratio", pp["unclip_ratio"])), score_mode=pp.get("score_mode", "fast"),
    )


def verify_files(report: Report, folder: Path, wb: Workbench) -> None:
    """inference.yml says what the workbench trained: names, dictionary (line for line), input shape."""
    from workbench.export.inference_yml import read_inference_yml

    for task, source in (("det", wb.det_source), ("rec", wb.rec_source)):
        if source is None:
            continue
        yml = read_inference_yml(folder / task)
        name = (yml.get("Global") or {}).get("model_name")
        report.add("files", f"{task}/inference.yml", "Global.model_name", name, source.paddlex_name,
                   name == source.paddlex_name)
        if task == "rec":
            chars = yml["PostProcess"].get("character_dict")
            same = chars == list(source.charset.characters)
            report.add("files", "rec/inference.yml", "character_dict equals the training dictionary",
                       f"{len(chars or [])} lines", f"{len(source.charset)} lines", same)
            shape = next(op["RecResizeImg"]["image_shape"] for op in yml["PreProcess"]["transform_ops"]
                         if "RecResizeImg" in op)
            report.add("files", "rec/inference.yml", "RecResizeImg.image_shape", shape, list(source.image_shape),
                       list(shape) == list(source.image_shape))


def verify_modules(report: Report, folder: Path, wb: Workbench, probes: Probes, tol: Tolerances, device: str,
                   det_engine_config: Optional[dict]) -> None:
    """``paddlex.create_model`` on each exported folder vs the workbench."""
    from paddlex import create_model

    from workbench.data.images import read_image
    from workbench.data.preprocess import DetResize
    from workbench.export.inference_yml import read_inference_yml

    if wb.rec_source is not None:
        model = create_model(wb.rec_source.paddlex_name, model_dir=str(folder / "rec"), device=device)
        runner = _record_runner(model)
        for path in probes.crops:
            before = len(runner.calls)
            (result,) = list(model.predict(str(path)))
            (their_x,), (their_probs,) = runner.calls[before]
            ours_x = wb.rec_input([read_image(path)])
            compare_rec_batch(report, "module", [path.name], ours_x, their_x, wb, their_probs,
                              [result["rec_text"]], [result["rec_score"]], tol)
    if wb.det_source is not None:
        det_dir = folder / "det"
        kwargs = {"engine_config": det_engine_config} if det_engine_config else {}
        model = create_model(wb.det_source.paddlex_name, model_dir=str(det_dir), device=device, **kwargs)
        runner = _record_runner(model)
        post = _det_postprocess(read_inference_yml(det_dir))
        resize = DetResize.paddlex_module()  # PaddleX's standalone default for the PP-OCR det names
        for path in probes.images:
            before = len(runner.calls)
            (result,) = list(model.predict(str(path)))
            (their_x,), (their_map,) = runner.calls[before]
            _compare_det(report, "module", path.name, wb, read_image(path), resize, post, their_x, their_map,
                         result["dt_polys"], result["dt_scores"], tol)


def _compare_det(report, stage, item, wb, image, resize, post, their_x, their_map, their_polys, their_scores, tol):
    ours_x, shape = wb.det_input(image, resize)
    d_in = _max_diff(ours_x, their_x)
    report.add(stage, item, "det input max abs diff", d_in, tol.input_atol, d_in <= tol.input_atol,
               f"shape ours {list(ours_x.shape)} PaddleX {list(np.shape(their_x))}")
    prob, f32_error = wb.det_map(ours_x)
    d = _max_diff(prob, their_map)
    limit = max(tol.det_map_atol, tol.noise_factor * f32_error)
    report.add(stage, item, "det probability map max abs diff", d, limit, d <= limit,
               f"float32 error of our model {f32_error:.2e}")
    (polys, scores), = post(prob, shape.as_array()[None])
    compare_boxes(report, stage, item, polys, scores, their_polys, their_scores, tol)


def run_pipeline(folder: Path, images: list[Path], device: str, record: bool = False):
    """``paddlex.create_pipeline`` on the exported YAML (relative model dirs resolved against the folder)."""
    from paddlex import create_pipeline

    from workbench.export.pipeline_yaml import PIPELINE_YAML, load_pipeline_config

    config = load_pipeline_config(folder / PIPELINE_YAML)
    pipeline = create_pipeline(config=config, device=device)
    recorders = None
    if record:
        inner = _inner_pipeline(pipeline)
        det_runner, rec_runner = _record_runner(inner.text_det_model), _record_runner(inner.text_rec_model)
        det_pred, rec_pred = _PredictorRecorder(inner.text_det_model), _PredictorRecorder(inner.text_rec_model)
        inner.text_det_model, inner.text_rec_model = det_pred, rec_pred
        recorders = (inner, det_runner, rec_runner, det_pred, rec_pred)
    results = []
    for path in images:
        (res,) = list(pipeline.predict(str(path)))
        results.append(res)
    return config, results, recorders


def _result_summary(res) -> dict:
    return {
        "rec_texts": [str(t) for t in res["rec_texts"]],
        "rec_scores": [float(s) for s in res["rec_scores"]],
        "dt_polys": _quads(res["dt_polys"]).astype(int).tolist(),
    }


def verify_pipeline(report: Report, folder: Path, wb: Workbench, probes: Probes, tol: Tolerances, device: str) -> dict:
    """``paddlex.create_pipeline(PaddleOCR.yaml)`` on the probe images vs the workbench; returns the pipeline's
    results per image (the ``expected`` of later rechecks)."""
    from workbench.data.images import read_image
    from workbench.data.preprocess import DetResize
    from workbench.export.inference_yml import read_inference_yml

    config, results, (inner, det_runner, rec_runner, det_pred, rec_pred) = run_pipeline(
        folder, probes.images, device, record=True)
    det_cfg = config["SubModules"]["TextDetection"]
    expected = {p.name: _result_summary(r) for p, r in zip(probes.images, results)}

    if wb.det_source is not None:
        resize = DetResize(limit_side_len=int(det_cfg["limit_side_len"]), limit_type=det_cfg["limit_type"],
                           max_side_limit=int(det_cfg["max_side_limit"]))
        post = _det_postprocess(read_inference_yml(folder / "det"), det_cfg)
        if len(det_runner.calls) != len(probes.images) or len(det_pred.calls) != len(probes.images):
            raise ExportError(f"verification: expected one detection call per probe image, got {len(det_runner.calls)}")
        for path, (_, det_results), ((their_x,), (their_map,)) in zip(probes.images, det_pred.calls, det_runner.calls):
            (det_res,) = det_results
            _compare_det(report, "pipeline", path.name, wb, read_image(path), resize, post, their_x, their_map,
                         det_res["dt_polys"], det_res["dt_scores"], tol)

    n_crops = sum(len(crops) for crops, _ in rec_pred.calls)
    report.add("pipeline", "all probes", "text lines recognised by the pipeline", n_crops, "> 0", n_crops > 0,
               "" if n_crops else "no boxes found: give probe_images= with visible text, or check box_thresh")
    if wb.rec_source is not None and n_crops:
        batch_size = int(getattr(inner.text_rec_model, "batch_sampler").batch_size)
        calls = iter(rec_runner.calls)
        for k, (crops, rec_results) in enumerate(rec_pred.calls):
            for start in range(0, len(crops), batch_size):
                chunk = crops[start: start + batch_size]
                results = rec_results[start: start + batch_size]
                try:
                    (their_x,), (their_probs,) = next(calls)
                except StopIteration:
                    raise ExportError("verification: fewer recognition batches than crops") from None
                items = [f"call{k}/crop{start + i}" for i in range(len(chunk))]
                compare_rec_batch(report, "pipeline", items, wb.rec_input(chunk), their_x, wb, their_probs,
                                  [r["rec_text"] for r in results], [r["rec_score"] for r in results], tol)
    return expected


def paddleocr_command(config: dict, *, yaml_path: str, image: str, det_dir: Optional[str] = None,
                      rec_dir: Optional[str] = None, extra: Iterable[str] = ()) -> list[str]:
    """The ``paddleocr ocr`` command for a pipeline YAML: the model-name flags are required, or paddleocr
    replaces the YAML's models with its PP-OCRv6 defaults (#15707)."""
    from workbench.export.pipeline_yaml import module_names

    names = module_names(config)
    cmd = ["paddleocr", "ocr", "-i", image, "--paddlex_config", yaml_path,
           "--text_detection_model_name", names["det"], "--text_recognition_model_name", names["rec"]]
    if det_dir:
        cmd += ["--text_detection_model_dir", det_dir]
    if rec_dir:
        cmd += ["--text_recognition_model_dir", rec_dir]
    return cmd + list(extra)


def _paddleocr_executable() -> list[str]:
    script = Path(sys.executable).with_name("paddleocr")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "paddleocr"]


def subprocess_env() -> dict:
    """Environment for PaddleX subprocesses: a local font so drawing results never downloads one."""
    env = dict(os.environ)
    if not env.get("PADDLE_PDX_LOCAL_FONT_FILE_PATH"):
        font = local_font()
        if font:
            env["PADDLE_PDX_LOCAL_FONT_FILE_PATH"] = font
    return env


def local_font() -> Optional[str]:
    try:
        import matplotlib

        f = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return str(f) if f.is_file() else None
    except ImportError:
        return None


def run_cli(folder: Path, images: list[Path], device: str, *, inside: bool = True,
            timeout: float = 600) -> tuple[dict, list[str], str]:
    """``paddleocr ocr`` on the probe images, as the README says: ``inside`` the folder (the YAML's relative model
    dirs are what it uses), or from another directory with the model folders passed as flags. Returns
    ``{image name: result}``, the command and its output."""
    from workbench.export.pipeline_yaml import PIPELINE_YAML, load_pipeline_config

    folder = folder.resolve()
    config = load_pipeline_config(folder / PIPELINE_YAML, resolve_dirs=False)
    images_dir = images[0].parent
    if any(p.parent != images_dir for p in images):
        raise ExportError("verification: the CLI probe images must share one folder")
    with tempfile.TemporaryDirectory(prefix="wb-cli-") as save:
        if inside:
            cwd, yaml_path, dirs = folder, PIPELINE_YAML, {}
        else:
            subs = config["SubModules"]
            cwd, yaml_path = Path(save), str(folder / PIPELINE_YAML)
            dirs = {f"{t}_dir": str(folder / subs[s]["model_dir"]) for t, s in
                    (("det", "TextDetection"), ("rec", "TextRecognition")) if subs[s].get("model_dir")}
        image_arg = str(images_dir.resolve())
        if inside and images_dir.resolve().is_relative_to(folder):
            image_arg = str(images_dir.resolve().relative_to(folder))  # e.g. probes/images
        cmd = paddleocr_command(config, yaml_path=yaml_path, image=image_arg, **dirs,
                                extra=["--save_path", str(Path(save) / "out"), "--device", device])
        proc = subprocess.run(_paddleocr_executable() + cmd[1:], cwd=cwd, env=subprocess_env(),
                              capture_output=True, text=True, timeout=timeout)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise ExportError(f"`{' '.join(cmd)}` (in {folder}) failed with exit code {proc.returncode}:\n"
                              f"{output[-3000:]}")
        results = {}
        for path in images:
            f = Path(save) / "out" / f"{path.stem}_res.json"
            if not f.is_file():
                raise ExportError(f"`paddleocr ocr` wrote no {f.name}; its output:\n{output[-3000:]}")
            data = json.loads(f.read_text(encoding="utf-8"))
            results[path.name] = data.get("res", data)
    return results, cmd, output


def compare_with_expected(report: Report, stage: str, expected: dict, results: dict, tol: Tolerances) -> None:
    """Texts identical and boxes equal (≤ ``box_px``) per probe image."""
    for name, exp in expected.items():
        got = results.get(name)
        if got is None:
            report.add(stage, name, "result present", False, True, False, "no result for this probe")
            continue
        got = _result_summary(got)
        same = list(got["rec_texts"]) == list(exp["rec_texts"])
        detail = "" if same else f"expected {exp['rec_texts']!r}, got {list(got['rec_texts'])!r}"
        report.add(stage, name, "texts identical to the pipeline's", f"{len(got['rec_texts'])} texts",
                   f"{len(exp['rec_texts'])} texts", same, detail)
        a, b = _quads(got["dt_polys"]), _quads(exp["dt_polys"])
        if len(a) != len(b):
            report.add(stage, name, "box count", len(a), len(b), False)
        elif len(a):
            d = float(np.abs(a - b).max())
            report.add(stage, name, "box vertices max abs diff (px)", d, tol.box_px, d <= tol.box_px)


# ----------------------------------------------------------------------------------------------- entry points


def verify_export(folder: str | Path, *, det_source=None, rec_source=None, probes: Probes,
                  tolerances: Optional[Tolerances] = None, device: str = "cpu", cli: bool = True,
                  det_engine_config: Optional[dict] = None) -> Report:
    """Run every stage on an export folder; writes the report into it and returns it (does not raise)."""
    import paddle

    folder = Path(folder)
    tol = tolerances or Tolerances()
    report = Report(tolerances=tol)
    paddle.set_device(device)
    timings = {}
    t = time.perf_counter()
    wb = Workbench(det_source, rec_source)
    verify_files(report, folder, wb)
    timings["load"] = time.perf_counter() - t
    try:
        t = time.perf_counter()
        verify_modules(report, folder, wb, probes, tol, device, det_engine_config)
        timings["module"] = time.perf_counter() - t
        t = time.perf_counter()
        report.expected = verify_pipeline(report, folder, wb, probes, tol, device)
        timings["pipeline"] = time.perf_counter() - t
        if cli:
            t = time.perf_counter()
            results, cmd, _ = run_cli(folder, probes.images, device)
            report.facts["cli_command"] = " ".join(cmd)
            compare_with_expected(report, "cli", report.expected, results, tol)
            timings["cli"] = time.perf_counter() - t
    except Exception as exc:  # PaddleX refusing the folder is exactly what verification must catch, loudly
        text = str(exc) if isinstance(exc, ExportError) else f"{type(exc).__name__}: {exc}"
        report.add("run", "PaddleX", "ran to completion", False, True, False,
                   text.splitlines()[0][:300] + _stock_hint(folder))
        report.facts["error"] = text
    report.facts.update(_versions(), device=device, seconds={k: round(v, 2) for k, v in timings.items()},
                        probes={"images": [p.name for p in probes.images], "crops": [p.name for p in probes.crops]})
    report.write(folder)
    return report


def _stock_hint(folder: Path) -> str:
    """Stock modules (``model_dir: null``) are downloaded by PaddleX: say so when a run failed."""
    from workbench.export.pipeline_yaml import PIPELINE_YAML, load_pipeline_config

    try:
        subs = load_pipeline_config(folder / PIPELINE_YAML, resolve_dirs=False)["SubModules"]
    except Exception:
        return ""
    stock = [f"{key} {sec['model_name']}" for key, sec in subs.items()
             if key in ("TextDetection", "TextRecognition") and not sec.get("model_dir")]
    if not stock:
        return ""
    return (f" (stock model(s) {', '.join(stock)} have model_dir null: PaddleX downloads them; offline, give "
            "det_model_dir= / rec_model_dir= with a local model folder)")


def recheck(folder: str | Path, *, device: str = "cpu", cli: bool = True) -> Report:
    """Re-run the pipeline (and the CLI) of an export folder — moved, copied, on another machine — on its own
    probes and compare with the results recorded at export time. Needs no checkpoint and no workbench model."""
    folder = Path(folder)
    data = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
    tol = Tolerances(**data.get("tolerances", {}))
    expected = data.get("expected") or {}
    if not expected:
        raise ExportError(f"{folder / REPORT_JSON}: no expected results recorded")
    images = [folder / PROBES_DIR / "images" / name for name in expected]
    report = Report(tolerances=tol, facts={"recheck_of": str(folder.resolve()), **_versions()})
    _, results, _ = run_pipeline(folder, images, device)
    compare_with_expected(report, "pipeline", expected, {p.name: r for p, r in zip(images, results)}, tol)
    if cli:  # the form for "anywhere else" (the export-time verification ran the one for inside the folder)
        cli_results, cmd, _ = run_cli(folder, images, device, inside=False)
        report.facts["cli_command"] = " ".join(cmd)
        compare_with_expected(report, "cli", expected, cli_results, tol)
    return report


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("paddlepaddle", "paddlex", "paddleocr"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out
