"""The general OCR pipeline (detection → crops → recognition), run for analysis, with every reading kept.

Two runners give the same per-image result (:class:`PageResult`) and can both read arbitrary crops
(``recognize``), which the attribution uses to read the ground-truth boxes ("perfect crops"):

* :class:`WorkbenchPipeline` — our det + rec models in this process (run dirs, checkpoints, ``.pdparams``,
  MLflow run ids, official names, ``stock``). It replicates PaddleX 3.7's OCR pipeline
  (``paddlex/inference/pipelines/ocr/pipeline.py``, ``text_type: general``) step by step:

  1. detection: resize as ``DetResizeForTest`` with the pipeline YAML's ``limit_side_len`` / ``limit_type`` /
     ``max_side_limit`` (:class:`~workbench.data.preprocess.DetResize`), ImageNet normalisation in PaddleX's float32
     arithmetic, the model, PaddleX's ``DBPostProcess`` (:class:`~workbench.postprocess.db.DBPostProcess`, quads);
  2. the boxes sorted top to bottom, left to right (:func:`sort_quad_boxes` = ``SortQuadBoxes``);
  3. each box cropped as ``CropByPolys(det_box_type="quad")``: the box's minimum-area rectangle warped upright
     (:func:`crop_quad`; a crop at least 1.5× taller than wide is turned by 90°); boxes whose crop is empty are
     dropped;
  4. no document preprocessing (it moves pixels away from the ground truth's coordinates); with a text-line
     orientation model (``textline_ori=``), every crop is classified as PaddleX's ``TextLineOrientation`` module
     does (:class:`~workbench.data.preprocess.ClsPreprocess`, batches of ``textline_batch_size``) and the crops
     classified 180° are turned with PaddleX's own rotation (:func:`~workbench.data.orientation.pipeline_turn`);
  5. recognition: the crops sorted by aspect ratio, read in batches of ``TextRecognition.batch_size``, each crop
     resized to height 48 keeping its ratio and the batch right-padded to its widest crop
     (:func:`~workbench.data.preprocess.preprocess_rec_batch`), greedy CTC decoding;
  6. ``text_rec_score_thresh``: PaddleX drops readings scoring below it. Here every reading is kept with its score;
     :meth:`PageResult.kept` applies the threshold exactly as PaddleX does (``score >= thresh``).

  Crops are fed in OpenCV's BGR order, as PaddleX does for models whose ``inference.yml`` says
  ``DecodeImage: {img_mode: BGR}`` (upstream's export, and ours).

* :class:`PaddleXPipeline` — an exported pipeline folder (``PaddleOCR.yaml`` + inference model folders), or two
  inference model folders, through the real ``paddlex.create_pipeline``. Its ``model_dir`` paths are resolved
  against the folder. It runs with ``text_rec_score_thresh=0`` so every reading comes back, and the configured
  threshold is applied afterwards (the same ``>=`` test). Document preprocessing (orientation / unwarping) is
  switched off: it moves pixels, and the ground truth is in the original image's coordinates. The text-line
  orientation model runs if the YAML enables it.

:func:`load_pipeline` turns the command line's ``det=`` / ``rec=`` references into one of the two.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from workbench.data.crops import TURN_RATIO, crop_corners, crop_is_turned, crop_quad, turn_180  # noqa: F401
from workbench.engine.device import cpu_math_threads_kept
from workbench.errors import ConfigError, WeightsError, WorkbenchError
from workbench.paddlex_files import CLASSIFIER_BATCH_SIZE, PIPELINE_YAML, is_inference_model_dir, is_pipeline_export

log = logging.getLogger("workbench.analyze")

#: a crop this many times taller than wide is turned by 90° before recognition (PaddleX's get_rotate_crop_image)


# --- settings ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PipelineSettings:
    """The OCR pipeline's knobs. Defaults: the PaddleX 3.7 ``OCR`` pipeline YAML (what ``PaddleOCR.yaml`` holds)."""

    limit_side_len: int = 64
    limit_type: str = "min"
    max_side_limit: int = 4000
    thresh: float = 0.3
    box_thresh: float = 0.6
    unclip_ratio: float = 1.5
    max_candidates: int = 1000  # max_candidates and score_mode: the det model's inference.yml, not the pipeline YAML
    score_mode: str = "fast"
    rec_batch_size: int = 6
    score_thresh: float = 0.0  # text_rec_score_thresh
    textline_batch_size: int = 6  # TextLineOrientation.batch_size (when the pipeline runs the module)

    def __post_init__(self):
        problems = []
        if self.limit_type not in ("min", "max", "resize_long"):
            problems.append(f"limit_type={self.limit_type!r}: choose min, max or resize_long")
        if self.score_mode not in ("fast", "slow"):
            problems.append(f"score_mode={self.score_mode!r}: choose fast or slow")
        for key in ("limit_side_len", "max_side_limit", "max_candidates", "rec_batch_size", "textline_batch_size"):
            if int(getattr(self, key)) < 1:
                problems.append(f"{key}={getattr(self, key)} must be >= 1")
        for key in ("thresh", "box_thresh"):
            if not 0.0 <= float(getattr(self, key)) <= 1.0:
                problems.append(f"{key}={getattr(self, key)} must be within [0, 1]")
        if self.unclip_ratio <= 0:
            problems.append(f"unclip_ratio={self.unclip_ratio} must be > 0")
        if problems:
            raise ConfigError("pipeline settings: " + "; ".join(problems))

    @classmethod
    def from_pipeline_config(cls, config: dict) -> "PipelineSettings":
        """Settings of a PaddleX OCR pipeline config; absent keys take PaddleX's code defaults (which differ from
        the YAML's: 960 / max / unclip 2.0, batch size 1)."""
        sub = config.get("SubModules", {})
        det, rec = sub.get("TextDetection", {}) or {}, sub.get("TextRecognition", {}) or {}
        textline = sub.get("TextLineOrientation", {}) or {}
        return cls(
            limit_side_len=int(det.get("limit_side_len", 960)),
            limit_type=str(det.get("limit_type", "max")),
            max_side_limit=int(det.get("max_side_limit", 4000)),
            thresh=float(det.get("thresh", 0.3)),
            box_thresh=float(det.get("box_thresh", 0.6)),
            unclip_ratio=float(det.get("unclip_ratio", 2.0)),
            rec_batch_size=int(rec.get("batch_size", 1)),
            score_thresh=float(rec.get("score_thresh", 0.0)),
            textline_batch_size=int(textline.get("batch_size", 1)),
        )

    @classmethod
    def for_checkpoints(cls, det: "LoadedModel", rec: "LoadedModel") -> "PipelineSettings":
        """The settings ``wb export`` writes for these models: the det run's evaluation resize and post-process
        (``meta.json``, ``eval.det.score_mode``) and the rec run's ``eval.rec.score_thresh``; for stock models and
        bare weight files the pipeline YAML's resize limits and the det model's own post-processing defaults
        (``models.zoo.det_postprocess``)."""
        from workbench.tasks.export_writer import recorded_eval_settings

        values = cls._det_values(det)
        if rec.checkpoint is not None:
            eval_rec = recorded_eval_settings(rec.checkpoint, "rec")
            if "score_thresh" in eval_rec:
                values["score_thresh"] = float(eval_rec["score_thresh"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def for_detector(cls, det: "LoadedModel") -> "PipelineSettings":
        """The detection settings ``wb export`` writes for ``det`` (see :meth:`for_checkpoints`)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in cls._det_values(det).items() if k in known})

    @staticmethod
    def _det_values(det: "LoadedModel") -> dict:
        from workbench.models import zoo
        from workbench.tasks.export_writer import recorded_eval_settings

        values: dict = {}
        if det.checkpoint is None:
            values.update(zoo.det_postprocess(det.name))  # the det model's own defaults (v6: 0.2 / 0.45 / 1.4)
        else:
            values.update(det.checkpoint.meta.get("resize") or {})
            values.update(det.checkpoint.meta.get("postprocess") or {})
            values["score_mode"] = recorded_eval_settings(det.checkpoint, "det").get("score_mode", "fast")
        return values

    def with_overrides(self, **values) -> "PipelineSettings":
        """A copy with the values that are not ``None`` replaced (command-line overrides)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


# --- results ----------------------------------------------------------------------------------------------------
@dataclass
class PageResult:
    """One image through the pipeline: every detected box (the pipeline's order) with its reading.

    ``polys``: ``[4, 2]`` integer arrays in original image pixels. ``scores``: recognition scores (no threshold
    applied). ``det_scores``: box scores (``None`` when the runner does not expose them: PaddleX's pipeline drops
    them). ``angles``: the text-line orientation model's class per box (1 = turned by 180°), -1 when not used.
    ``timings``: seconds per stage; keys ending in ``_infer`` are model inference.
    """

    polys: list
    texts: list
    scores: list
    det_scores: Optional[list] = None
    angles: Optional[list] = None
    timings: dict = field(default_factory=dict)

    def kept(self, score_thresh: float) -> list[int]:
        """Indices of the readings the pipeline outputs at ``text_rec_score_thresh=score_thresh``."""
        return [i for i, s in enumerate(self.scores) if s >= score_thresh]


# --- the pipeline's geometry (PaddleX's SortQuadBoxes / CropByPolys) ---------------------------------------------
def sort_quad_boxes(polys: Sequence) -> list[int]:
    """The order PaddleX's ``SortQuadBoxes`` puts boxes in, as indices: by the first point's (y, x), then one
    backwards pass per box that swaps neighbours less than 10 px apart in y when they are out of order in x."""
    tops = [(int(p[0][1]), int(p[0][0])) for p in polys]
    order = sorted(range(len(polys)), key=lambda i: tops[i])  # stable, as Python's sorted on the boxes
    for i in range(len(order) - 1):
        for j in range(i, -1, -1):
            (y1, x1), (y0, x0) = tops[order[j + 1]], tops[order[j]]
            if abs(y1 - y0) < 10 and x1 < x0:
                order[j], order[j + 1] = order[j + 1], order[j]
            else:
                break
    return order


# --- our models in process --------------------------------------------------------------------------------------
@dataclass
class LoadedModel:
    """A det or rec model ready for inference, and where it came from."""

    task: str
    name: str  # zoo name
    ref: str  # what the user gave
    source: str  # the weights file
    model: Any
    charset: Any = None  # rec
    image_shape: tuple = (3, 48, 320)  # rec input (C, H, W)
    checkpoint: Any = None  # the workbench checkpoint it came from (engine.checkpoint.Checkpoint), if any


def load_model(ref: str, task: str, *, model_name: Optional[str] = None, rec_dict: Optional[str] = None,
               tracking_uri: Optional[str] = None, fuse: bool = True) -> LoadedModel:
    """Our ``task`` model for ``ref`` (resolved by ``workbench.weights.refs``), in eval mode.

    * a run id / run dir / checkpoint dir (or its ``model.pdparams``): exactly what ``wb export`` would ship — the
      checks, the training dictionary, and the EMA weights when the checkpoint has them
      (:func:`workbench.export.inference_model.load_export_source`);
    * ``stock``, an official name, or a ``.pdparams`` (of ``model_name``, else the model its import record names,
      else the stock model; with the dictionary written beside it, else the model's official one): loaded
      strictly (official weights and dictionary fetched into the cache).

    ``rec_dict`` overrides the dictionary of a bare rec ``.pdparams`` (a checkpoint's must agree with its own).
    ``fuse``: fold the re-parameterisable layers, as the exported inference graph does.
    """
    from workbench.tasks import registry
    from workbench.weights import refs

    w = refs.resolve(ref, stock=registry.get(task).stock_models, tracking_uri=tracking_uri, fetch=False, what=task,
                     task=task)
    if w.task is not None and w.task != task:
        raise ConfigError(f"{task}={ref} is a {w.task} model")
    if w.checkpoint is not None:
        from workbench.export.inference_model import build_model, load_export_source

        source = load_export_source(w.checkpoint_dir, task, dictionary=rec_dict, tracking_uri=tracking_uri)
        loaded = LoadedModel(task=task, name=source.model_name, ref=ref, model=build_model(source),
                             source=str(source.path / source.weights_file), charset=source.charset,
                             image_shape=tuple(source.image_shape), checkpoint=source.checkpoint)
    else:
        if w.kind not in (refs.RefKind.OFFICIAL, refs.RefKind.STOCK):
            w.require_weights(task)
        loaded = _load_weights(w, task, model_name=model_name, rec_dict=rec_dict)
    loaded.model.eval()
    if fuse:
        from workbench.models.rep import fuse_for_inference

        fuse_for_inference(loaded.model, fold_for_deployment=True)
    return loaded


def _load_weights(w, task: str, *, model_name: Optional[str], rec_dict: Optional[str]) -> LoadedModel:
    """Official weights (``stock``, a name) or a weights file, into a fresh model, strictly. The dictionary of a
    dictionary-sized head: ``rec_dict``, else the one written beside the weights, else the model's official one."""
    from workbench.data.charset import Charset
    from workbench.models import zoo
    from workbench.models.rec import NRTR_PE_KEY
    from workbench.tasks import registry
    from workbench.weights.pretrained import fetch_dictionary, fetch_official_pretrained, load_strict, read_state_dict

    official = w.model_name if w.weights_file is None else None
    name = official or model_name or w.model_name or registry.get(task).stock_model
    spec = zoo.get_spec(name)
    try:
        weights = w.weights_file or fetch_official_pretrained(official)
        dictionary = rec_dict or w.dictionary or (fetch_dictionary(spec.dictionary) if spec.dictionary else None)
    except WeightsError as exc:
        if official is None:
            raise
        raise WeightsError(
            f"{task}={w.ref}: the official {official} weights are not available here.\n{exc}\n"
            f"Without internet access, put the official file at the path above, or import the stock ONNX model "
            f"with `wb weights import` and pass {task}=<the imported .pdparams>."
        ) from None
    charset = Charset.from_file(dictionary, use_space_char=True) if dictionary else None
    try:
        model = zoo.build_model(name, charset=charset)
    except ConfigError as exc:
        raise ConfigError(f"{task}={w.ref}: {exc} (give the dictionary: rec_dict=<file>)") from None
    report = load_strict(model, read_state_dict(weights), source=str(weights), optional_missing=(NRTR_PE_KEY,))
    return LoadedModel(task=task, name=name, ref=w.ref, source=str(report.source), model=model, charset=charset,
                       image_shape=tuple(spec.image_shape or (3, 48, 320)))


class Detector:
    """The pipeline's detection step with our det model (steps 1-2 of the module docstring): a BGR image -> its
    boxes (quads) and box scores, in the pipeline's order."""

    def __init__(self, det: LoadedModel, settings: PipelineSettings = PipelineSettings()):
        from workbench.data.preprocess import DetResize
        from workbench.postprocess.db import DBPostProcess

        if det.task != "det":
            raise ConfigError(f"det={det.ref} is a {det.task} model")
        self.det, self.settings = det, settings
        self.resize = DetResize(limit_side_len=settings.limit_side_len, limit_type=settings.limit_type,
                                max_side_limit=settings.max_side_limit)
        self.post = DBPostProcess(thresh=settings.thresh, box_thresh=settings.box_thresh,
                                  max_candidates=settings.max_candidates, unclip_ratio=settings.unclip_ratio,
                                  score_mode=settings.score_mode)

    def __call__(self, image: np.ndarray, timings: Optional[dict] = None) -> tuple[list, list]:
        import paddle

        from workbench.data.preprocess import normalize_det

        resized, shape = self.resize(image)
        x = normalize_det(resized, arithmetic="paddlex")[None]
        t0 = time.perf_counter()
        with paddle.no_grad():
            prob = self.det.model(paddle.to_tensor(x)).numpy()
        t1 = time.perf_counter()
        polys, scores = self.post(prob, shape.as_array()[None])[0]
        order = sort_quad_boxes(polys)
        if timings is not None:
            timings["det_infer"] = timings.get("det_infer", 0.0) + t1 - t0
            timings["det_post"] = timings.get("det_post", 0.0) + time.perf_counter() - t1
        return [np.asarray(polys[i]) for i in order], [float(scores[i]) for i in order]


def load_detector(ref: str, *, tracking_uri: Optional[str] = None) -> Detector:
    """Our det model for ``ref`` (any reference :func:`load_model` takes), fused, with the settings ``wb export``
    would write for it: what the deployed pipeline's detection step gives."""
    det = load_model(ref, "det", tracking_uri=tracking_uri)
    return Detector(det, PipelineSettings.for_detector(det))


class WorkbenchPipeline:
    """Our det + rec models (and optionally a text-line orientation model), run like PaddleX's OCR pipeline
    (module docstring)."""

    kind = "workbench"

    def __init__(self, det: LoadedModel, rec: LoadedModel, settings: PipelineSettings = PipelineSettings(),
                 textline: Optional[LoadedModel] = None):
        from workbench.postprocess.ctc import CTCDecoder

        if det.task != "det" or rec.task != "rec":
            raise ConfigError(f"det={det.ref} is a {det.task} model, rec={rec.ref} a {rec.task} model")
        if textline is not None and textline.task != "textline_ori":
            raise ConfigError(f"textline_ori={textline.ref} is a {textline.task} model")
        self.det, self.rec, self.settings, self.textline = det, rec, settings, textline
        if textline is not None:
            from workbench.data.orientation import TEXTLINE_CLASSES
            from workbench.data.preprocess import ClsPreprocess
            from workbench.models import zoo

            self.textline_preprocess = ClsPreprocess.from_spec(zoo.get_spec(textline.name).preprocess)
            self.textline_angles = TEXTLINE_CLASSES.angles
        self.detect = Detector(det, settings)  # boxes and box scores of one BGR image, in the pipeline's order
        self.decoder = CTCDecoder(rec.charset)

    def describe(self) -> dict:
        out = {"runner": "workbench (in process)", "det": f"{self.det.name} ({self.det.ref})",
               "det_weights": self.det.source, "rec": f"{self.rec.name} ({self.rec.ref})",
               "rec_weights": self.rec.source, "dictionary": getattr(self.rec.charset, "source", None),
               "text-line orientation": bool(self.textline)}
        if self.textline is not None:
            out.update(textline_ori=f"{self.textline.name} ({self.textline.ref})",
                       textline_ori_weights=self.textline.source)
        return out

    @property
    def orientation_model(self) -> bool:
        return self.textline is not None

    def orient(self, crops: Sequence[np.ndarray], timings: Optional[dict] = None) -> list[int]:
        """The text-line orientation model's class of each crop (1: upside down), in batches as PaddleX's module."""
        import paddle

        out: list[int] = []
        size = max(1, int(self.settings.textline_batch_size))
        spent = 0.0
        for start in range(0, len(crops), size):
            x = self.textline_preprocess.batch(crops[start: start + size])
            t0 = time.perf_counter()
            with paddle.no_grad():
                probs = self.textline.model(paddle.to_tensor(x)).numpy()
            spent += time.perf_counter() - t0
            out += [int(i) for i in probs.argmax(-1)]
        if timings is not None:
            timings["textline_infer"] = timings.get("textline_infer", 0.0) + spent
        return out

    def recognize(self, crops: Sequence[np.ndarray], timings: Optional[dict] = None,
                  key: str = "rec_infer") -> list[tuple[str, float]]:
        """Readings of BGR crops: sorted by aspect ratio, read in batches of ``rec_batch_size`` (as the pipeline)."""
        import paddle

        from workbench.data.preprocess import preprocess_rec_batch

        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / float(crops[i].shape[0]))
        out: list = [None] * len(crops)
        size = max(1, int(self.settings.rec_batch_size))
        spent = 0.0
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            x = preprocess_rec_batch([crops[i] for i in batch], self.rec.image_shape)
            t0 = time.perf_counter()
            with paddle.no_grad():
                probs = self.rec.model(paddle.to_tensor(x)).numpy()
            spent += time.perf_counter() - t0
            for i, reading in zip(batch, self.decoder(probs)):
                out[i] = reading
        if timings is not None:
            timings[key] = timings.get(key, 0.0) + spent
        return out

    def run(self, image: np.ndarray) -> PageResult:
        timings: dict = {}
        t0 = time.perf_counter()
        polys, det_scores = self.detect(image, timings)
        t1 = time.perf_counter()
        crops = [crop_quad(image, p) for p in polys]
        keep = [i for i, c in enumerate(crops) if c.size > 0]  # the pipeline drops boxes with an empty crop
        polys, det_scores, crops = [polys[i] for i in keep], [det_scores[i] for i in keep], [crops[i] for i in keep]
        timings["crop"] = time.perf_counter() - t1
        angles = [-1] * len(polys)
        if self.textline is not None and crops:
            from workbench.data.orientation import pipeline_turn

            angles = self.orient(crops, timings)
            crops = [pipeline_turn(c, self.textline_angles[a]) for c, a in zip(crops, angles)]
        readings = self.recognize(crops, timings)
        timings["pipeline"] = time.perf_counter() - t0
        return PageResult(polys=polys, texts=[r[0] for r in readings], scores=[float(r[1]) for r in readings],
                          det_scores=det_scores, angles=angles, timings=timings)


# --- the real PaddleX pipeline ----------------------------------------------------------------------------------
def read_pipeline_yaml(path: str | Path) -> tuple[dict, Path]:
    """A pipeline YAML (or the folder holding ``PaddleOCR.yaml``), read as ``wb export`` writes it, with its
    ``model_dir`` paths made absolute against the YAML's folder; every named folder must exist."""
    import yaml

    from workbench.errors import ExportError
    from workbench.export.pipeline_yaml import load_pipeline_config

    p = Path(path)
    file = p / PIPELINE_YAML if p.is_dir() else p
    try:
        config = load_pipeline_config(file)
    except (OSError, yaml.YAMLError, ExportError) as exc:
        raise ConfigError(f"{file}: not a readable pipeline YAML ({exc})") from None
    if config.get("pipeline_name") != "OCR":
        raise ConfigError(f"{file}: not a PaddleX OCR pipeline config (pipeline_name: OCR)")
    for name, module in (config.get("SubModules") or {}).items():
        if isinstance(module, dict) and module.get("model_dir") and not Path(module["model_dir"]).is_dir():
            moved = (file.parent / Path(module["model_dir"]).name).is_dir()
            raise ConfigError(f"{file}: SubModules.{name}.model_dir → {module['model_dir']} does not exist"
                              + (f" (the folder was moved or copied: run `wb export repoint={file.parent}`)"
                                 if moved else ""))
    return config, file


def pipeline_config_for_models(det_dir: str | Path, rec_dir: str | Path,
                               settings: PipelineSettings = PipelineSettings(),
                               textline_dir: Optional[str | Path] = None) -> dict:
    """An OCR pipeline config for two inference model folders (their ``inference.yml`` names the models), and a
    text-line orientation model folder when given; each module's engine as ``wb export`` sets it."""
    import yaml

    def model_name(d):
        meta = yaml.safe_load((Path(d) / "inference.yml").read_text(encoding="utf-8")) or {}
        name = (meta.get("Global") or {}).get("model_name")
        if not name:
            raise ConfigError(f"{d}/inference.yml has no Global.model_name")
        return name

    s = settings
    config = {
        "pipeline_name": "OCR", "text_type": "general", "use_doc_preprocessor": False,
        "use_textline_orientation": textline_dir is not None,
        "SubModules": {
            "TextDetection": {"module_name": "text_detection", "model_name": model_name(det_dir),
                              "model_dir": str(Path(det_dir).resolve()), "limit_side_len": s.limit_side_len,
                              "limit_type": s.limit_type, "max_side_limit": s.max_side_limit, "thresh": s.thresh,
                              "box_thresh": s.box_thresh, "unclip_ratio": s.unclip_ratio},
            "TextRecognition": {"module_name": "text_recognition", "model_name": model_name(rec_dir),
                                "model_dir": str(Path(rec_dir).resolve()), "batch_size": s.rec_batch_size,
                                "score_thresh": s.score_thresh},
        },
    }
    if textline_dir is not None:
        config["SubModules"]["TextLineOrientation"] = {
            "module_name": "textline_orientation", "model_name": model_name(textline_dir),
            "model_dir": str(Path(textline_dir).resolve()),
            # one crop per batch, as wb export writes it (paddlex_files.CLASSIFIER_BATCH_SIZE: PaddleX 3.7.2 turns
            # every crop of a larger batch by the first crop's class)
            "batch_size": CLASSIFIER_BATCH_SIZE}
    # as `wb export` writes it: a graph oneDNN cannot run (nearest_interp in stock or older det graphs; PaddleX's
    # CPU default crashes on it) runs that module on plain Paddle kernels
    from workbench.export import pipeline_yaml

    for section in config["SubModules"].values():
        if pipeline_yaml.graph_needs_paddle_run_mode(section["model_dir"]):
            section["engine_config"] = pipeline_yaml.PADDLE_RUN_MODE
    return config


class PaddleXPipeline:
    """An OCR pipeline config run by ``paddlex.create_pipeline`` (module docstring).

    ``run_mode``: PaddleX's predictor run mode (``paddle``, ``mkldnn``, ...); ``None`` = PaddleX's default for the
    device. ``settings`` override the config's detection parameters and threshold (passed to ``predict``).
    """

    kind = "paddlex"

    def __init__(self, config: dict, *, settings: Optional[PipelineSettings] = None, device: str = "cpu",
                 run_mode: Optional[str] = None, source: str = ""):
        import paddlex

        config = copy.deepcopy(config)
        if config.get("text_type", "general") != "general":
            raise ConfigError(f"{source}: text_type {config.get('text_type')!r}; the analysis needs 'general'")
        if config.get("use_doc_preprocessor"):
            log.info("document preprocessing switched off for the analysis: it moves pixels away from the "
                     "ground truth's coordinates")
            config["use_doc_preprocessor"] = False
        from workbench.paddlex_files import require_registered_model

        for key in ("TextDetection", "TextRecognition"):
            name = (config.get("SubModules", {}).get(key) or {}).get("model_name")
            if name:
                require_registered_model(name, f"{source}: SubModules.{key}.model_name", ConfigError)
        self.config = config
        self.settings = settings or PipelineSettings.from_pipeline_config(config)
        det_dir = (config.get("SubModules", {}).get("TextDetection") or {}).get("model_dir")
        if det_dir and (Path(det_dir) / "inference.yml").is_file():  # what PaddleX's det model reads from there
            import yaml

            post = (yaml.safe_load((Path(det_dir) / "inference.yml").read_text(encoding="utf-8")) or {}).get(
                "PostProcess") or {}
            self.settings = replace(self.settings, max_candidates=int(post.get("max_candidates", 1000)),
                                    score_mode=str(post.get("score_mode", "fast")))
        config["SubModules"]["TextRecognition"]["batch_size"] = self.settings.rec_batch_size
        self.source = source
        self.device = device
        self.run_mode = run_mode
        engine_config = {"run_mode": run_mode} if run_mode else None
        try:
            self.pipeline = paddlex.create_pipeline(config=config, device=device, engine_config=engine_config)
            # the GT crops are read by the same recognition model, configured as the pipeline's module
            rec = config["SubModules"]["TextRecognition"]
            self.rec_model = paddlex.create_model(model_name=rec["model_name"], model_dir=rec.get("model_dir"),
                                                  device=device, batch_size=self.settings.rec_batch_size,
                                                  engine_config=engine_config or rec.get("engine_config"))
        except Exception as exc:  # PaddleX raises plain exceptions; say which config failed
            raise WorkbenchError(f"PaddleX could not create the OCR pipeline from {source}: "
                                 f"{exc.__class__.__name__}: {exc}") from exc

    def describe(self) -> dict:
        sub = self.config.get("SubModules", {})
        out = {"runner": "PaddleX pipeline", "config": self.source, "device": self.device,
               "run_mode": self.run_mode or "PaddleX default",
               "text-line orientation": bool(self.config.get("use_textline_orientation"))}
        for key in ("TextDetection", "TextRecognition", "TextLineOrientation"):
            if key in sub and (key != "TextLineOrientation" or self.orientation_model):
                out[key] = f"{sub[key].get('model_name')} ({sub[key].get('model_dir')})"
        return out

    @property
    def orientation_model(self) -> bool:
        return bool(self.config.get("use_textline_orientation"))

    def _call(self, what: str, fn):
        try:
            with cpu_math_threads_kept():  # Paddle Inference leaves 1 thread after a run; wb's models share the process
                return fn()
        except Exception as exc:
            hint = ""
            if "onednn" in str(exc).lower() or "mkldnn" in str(exc).lower():
                hint = " (a oneDNN failure: try paddlex_run_mode=paddle)"
            raise WorkbenchError(f"PaddleX failed on {what}: {exc.__class__.__name__}: {exc}{hint}") from exc

    def run(self, image: np.ndarray) -> PageResult:
        s = self.settings
        t0 = time.perf_counter()
        result = self._call("an image", lambda: list(self.pipeline.predict(
            image, text_det_limit_side_len=s.limit_side_len, text_det_limit_type=s.limit_type,
            text_det_max_side_limit=s.max_side_limit, text_det_thresh=s.thresh, text_det_box_thresh=s.box_thresh,
            text_det_unclip_ratio=s.unclip_ratio, text_rec_score_thresh=0.0))[0])
        spent = time.perf_counter() - t0
        polys = [np.asarray(p) for p in result["dt_polys"]]
        texts, scores = list(result["rec_texts"]), [float(x) for x in result["rec_scores"]]
        if len(texts) != len(polys):
            raise WorkbenchError(f"PaddleX returned {len(polys)} boxes but {len(texts)} readings at threshold 0")
        angles = [int(a) for a in result.get("textline_orientation_angles", [-1] * len(polys))]
        return PageResult(polys=polys, texts=texts, scores=scores, det_scores=None, angles=angles,
                          timings={"pipeline_infer": spent, "pipeline": spent})

    def recognize(self, crops: Sequence[np.ndarray], timings: Optional[dict] = None,
                  key: str = "rec_infer") -> list[tuple[str, float]]:
        if not crops:
            return []
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / float(crops[i].shape[0]))
        t0 = time.perf_counter()
        results = self._call("crops", lambda: list(self.rec_model.predict([crops[i] for i in order])))
        if timings is not None:
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0
        out: list = [None] * len(crops)
        for i, r in zip(order, results):
            out[i] = (str(r["rec_text"]), float(r["rec_score"]))
        return out


# --- from the command line's references ------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadOptions:
    """How ``wb analyze`` loads the models behind ``det=`` / ``rec=`` (see :func:`load_model`) and runs them."""

    rec_dict: Optional[str] = None  # the dictionary of a bare rec .pdparams
    det_model: Optional[str] = None  # the zoo names of bare .pdparams files
    rec_model: Optional[str] = None
    textline_ori_model: Optional[str] = None
    device: str = "cpu"  # cpu | gpu | gpu:N | auto
    paddlex_run_mode: Optional[str] = None  # PaddleX runner: paddle | mkldnn | ... (None: PaddleX's default)
    tracking_uri: Optional[str] = None


def load_pipeline(det: Optional[str], rec: Optional[str], *, pipeline: Optional[str] = None,
                  settings: Optional[dict] = None, options: LoadOptions = LoadOptions(),
                  textline_ori: Optional[str] = None):
    """The runner for ``det=`` / ``rec=`` / ``pipeline=`` / ``textline_ori=`` (see ``wb analyze``).

    * ``pipeline=<export folder | pipeline YAML | models:/<name>/<version>>``, or ``det=<export folder>`` (``rec``
      omitted or the same): the real PaddleX pipeline (a registered version's exported folder, downloaded);
    * ``det=<inference model folder> rec=<inference model folder>``: the real PaddleX pipeline on the two models;
    * anything else (``stock`` / ``stock-v6`` ... (the task's ``TaskEntry.stock_models``), an official name, a run
      id / run dir / checkpoint dir, a ``.pdparams``): our models in process. ``None`` means ``stock``.

    ``textline_ori``: a text-line orientation model in the pipeline (``None``: none), given like ``det`` / ``rec``
    (an inference model folder when they are; an exported pipeline brings its own).

    ``settings``: command-line overrides of :class:`PipelineSettings` fields (``None`` values are ignored).
    """
    device, paddlex_run_mode = options.device, options.paddlex_run_mode
    overrides = {k: v for k, v in (settings or {}).items() if v is not None}
    if pipeline is not None and pipeline.startswith("models:/"):  # a registered version: its exported pipeline
        from workbench.export.registered import registered_export

        pipeline = str(registered_export(pipeline, options.tracking_uri))
    for ref in (det, rec):
        if ref is not None and ref != pipeline and is_pipeline_export(ref):
            if pipeline is not None:
                raise ConfigError(f"two pipelines given: pipeline={pipeline} and {ref}")
            pipeline = ref
    if pipeline is not None:
        if textline_ori is not None:
            raise ConfigError(f"textline_ori={textline_ori}: an exported pipeline ({pipeline}) brings its own "
                              "text-line orientation setting (use_textline_orientation in its PaddleOCR.yaml)")
        others = {r for r in (det, rec) if r is not None and r != pipeline}
        if others:
            raise ConfigError(f"an exported pipeline ({pipeline}) holds both models; drop det=/rec= "
                              f"({', '.join(sorted(others))}) or give two model references instead")
        if not is_pipeline_export(pipeline):
            raise ConfigError(f"pipeline={pipeline}: no {PIPELINE_YAML} there")
        config, file = read_pipeline_yaml(pipeline)
        s = PipelineSettings.from_pipeline_config(config).with_overrides(**overrides)
        return PaddleXPipeline(config, settings=s, device=device, run_mode=paddlex_run_mode, source=str(file))
    det, rec = det or "stock", rec or "stock"
    refs = {"det": det, "rec": rec, **({"textline_ori": textline_ori} if textline_ori is not None else {})}
    inference_dirs = {k: is_inference_model_dir(r) for k, r in refs.items()}
    if all(inference_dirs.values()):
        from workbench.models import zoo
        from workbench.paddlex_files import model_name_of

        s = PipelineSettings(**zoo.det_postprocess(model_name_of(det, error=ConfigError))).with_overrides(**overrides)
        config = pipeline_config_for_models(det, rec, s, textline_dir=textline_ori)
        return PaddleXPipeline(config, settings=s, device=device, run_mode=paddlex_run_mode,
                               source=" ".join(f"{k}={r}" for k, r in refs.items()))
    if any(inference_dirs.values()):
        which = next(k for k, v in inference_dirs.items() if v)
        raise ConfigError(f"{which}={refs[which]} is an exported inference model and the others are not: give all "
                          "as inference models (run by PaddleX) or all as weights / runs")
    from workbench.engine.device import set_device

    set_device(device)
    det_loaded = load_model(det, "det", model_name=options.det_model, tracking_uri=options.tracking_uri)
    rec_loaded = load_model(rec, "rec", model_name=options.rec_model, rec_dict=options.rec_dict,
                            tracking_uri=options.tracking_uri)
    textline_loaded = None
    if textline_ori is not None:
        textline_loaded = load_model(textline_ori, "textline_ori", model_name=options.textline_ori_model,
                                     tracking_uri=options.tracking_uri)
    s = PipelineSettings.for_checkpoints(det_loaded, rec_loaded).with_overrides(**overrides)
    return WorkbenchPipeline(det_loaded, rec_loaded, s, textline=textline_loaded)


# --- one image, attributed --------------------------------------------------------------------------------------
@dataclass
class AnalyzedImage:
    page: PageResult
    attribution: Any  # attribution.ImageAttribution
    gt_crops: list  # per GT: the "perfect crop" (BGR), None for don't care or a box too thin to crop
    timings: dict
    #: detected boxes re-read turned (misread ones): box index → its crop as cut, before any orientation model
    box_crops: dict = field(default_factory=dict)


def analyze_image(runner, image: np.ndarray, gt_polys: Sequence, gt_texts: Sequence[str],
                  gt_ignore: Sequence[bool], *, compare=None, rules=None) -> AnalyzedImage:
    """Run the pipeline on one BGR image, read every care GT box as the pipeline would crop it (and, where that
    reading is wrong, the crop turned by 180°), attribute each GT text to an outcome, and where a matched box is
    misread, read its crop turned by 180° and attribute again (an upside-down crop is an orientation error)."""
    from workbench.analysis.attribution import ImageInput, MatchRules, TextCompare, attribute_image, boxes_to_turn

    compare = compare or TextCompare()
    rules = rules or MatchRules()
    page = runner.run(image)
    timings = dict(page.timings)
    t0 = time.perf_counter()
    n = len(gt_polys)
    care = [g for g in range(n) if not gt_ignore[g] and str(gt_texts[g]).strip()]
    crops: list = [None] * n
    for g in care:
        crop = crop_quad(image, gt_polys[g])
        crops[g] = crop if crop.size else None
    readable = [g for g in care if crops[g] is not None]
    perfect: list = [None] * n
    rotated: list = [None] * n
    timings["gt_crop"] = time.perf_counter() - t0
    for g, reading in zip(readable, runner.recognize([crops[g] for g in readable], timings, key="gt_rec_infer")):
        perfect[g] = reading
    wrong = [g for g in readable if not compare.equal(perfect[g][0], gt_texts[g])]
    if wrong:
        turned = runner.recognize([turn_180(crops[g]) for g in wrong], timings, key="gt_rec_infer")
        for g, reading in zip(wrong, turned):
            rotated[g] = reading
    t1 = time.perf_counter()
    inp = ImageInput(
        gt_polys=gt_polys, gt_texts=gt_texts, gt_ignore=gt_ignore, pred_polys=page.polys, pred_texts=page.texts,
        pred_scores=page.scores, score_thresh=runner.settings.score_thresh, perfect=perfect, rotated=rotated,
        vertical=[g in care and crop_is_turned(gt_polys[g]) for g in range(n)], pred_angles=page.angles,
    )
    attribution = attribute_image(inp, compare, rules)
    spent = time.perf_counter() - t1
    misread = boxes_to_turn(attribution)
    box_crops: dict = {}
    if misread:  # an upside-down crop of a detected box is an orientation error: read those turned, attribute again
        angles = page.angles or [-1] * len(page.polys)
        box_crops = {j: crop_quad(image, page.polys[j]) for j in misread}
        # turned relative to what the recogniser got: the crop as cut when the orientation model had turned it
        opposite = [box_crops[j] if angles[j] == 1 else turn_180(box_crops[j]) for j in misread]
        inp.pred_rotated = [None] * len(page.polys)
        for j, reading in zip(misread, runner.recognize(opposite, timings, key="turned_rec_infer")):
            inp.pred_rotated[j] = reading
        t2 = time.perf_counter()
        attribution = attribute_image(inp, compare, rules)
        spent += time.perf_counter() - t2
    timings["attribution"] = spent
    return AnalyzedImage(page=page, attribution=attribution, gt_crops=crops, timings=timings, box_crops=box_crops)
