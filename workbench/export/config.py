"""``wb export``'s settings: :class:`ExportConfig`, typed once from ``key=value`` arguments (a typo is an error)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from workbench.errors import ConfigError
from workbench.export.verify import Tolerances

DEFAULT_EXPORT_ROOT = "export"


@dataclass
class ExportConfig:
    """Per pipeline module ``<task>`` (a registered task: det, rec, textline_ori, doc_ori): ``<task>=`` the
    fine-tuned run / checkpoint to export, or ``<task>_model_dir=`` a PaddleX inference model folder to copy in, or
    ``<task>_model_name=`` a stock model (PaddleX downloads it); at least one module must be fine-tuned. det and rec
    are always in the pipeline (stock when not given); the orientation modules only when one of their keys is."""

    det: Optional[str] = None  # run id / run dir / checkpoint dir of the fine-tuned detection model
    rec: Optional[str] = None  # ... of the fine-tuned recognition model
    textline_ori: Optional[str] = None  # ... of the fine-tuned text-line orientation model
    doc_ori: Optional[str] = None  # ... of the fine-tuned document orientation model
    out: Optional[str] = None  # export folder (default: export/<timestamp>)
    checkpoint: str = "best"  # which checkpoint of a run: best | latest
    weights: str = "auto"  # auto (EMA weights when the checkpoint has them) | model | ema
    rec_dict: Optional[str] = None  # only for a rec checkpoint without dict.txt
    # The module that is not exported: a PaddleX inference-model folder (copied in) or a stock model name.
    det_model_dir: Optional[str] = None
    rec_model_dir: Optional[str] = None
    det_model_name: Optional[str] = None
    rec_model_name: Optional[str] = None
    textline_ori_model_dir: Optional[str] = None
    textline_ori_model_name: Optional[str] = None
    doc_ori_model_dir: Optional[str] = None
    doc_ori_model_name: Optional[str] = None
    # Document unwarping (UVDoc: not fine-tunable upstream): off unless its model folder is given.
    doc_unwarping_model_dir: Optional[str] = None
    # Detection limits and thresholds (default: the det run's evaluation settings, else PaddleX's pipeline limits
    # and the det model's own post-processing defaults, models.zoo.det_postprocess).
    limit_side_len: Optional[int] = None
    limit_type: Optional[str] = None
    max_side_limit: Optional[int] = None
    thresh: Optional[float] = None
    box_thresh: Optional[float] = None
    unclip_ratio: Optional[float] = None
    max_candidates: Optional[int] = None
    rec_score_thresh: Optional[float] = None  # default: the rec run's eval.rec.score_thresh
    rec_batch_size: Optional[int] = None
    # default 1 (paddlex_files.CLASSIFIER_BATCH_SIZE): PaddleX 3.7.2 turns a larger batch by its first crop's class
    textline_ori_batch_size: Optional[int] = None
    # Verification
    probe_images: list = field(default_factory=list)  # default: the det run's first validation images
    num_probe_images: int = 2
    num_probe_crops: int = 8
    cli: bool = True  # also run `paddleocr ocr` in a subprocess (from another directory)
    serve: bool = True  # also serve the pipeline (`paddlex --serve`, needs `.[serve]`) and POST the probes to /ocr
    device: str = "cpu"
    tolerances: Tolerances = field(default_factory=Tolerances)
    overwrite: bool = False
    # A fine-tuned checkpoint that scored worse on val than its starting weights is refused unless this is true.
    allow_regression: bool = False
    # MLflow: auto = when a source run was tracked or tracking_uri is given
    tracking: str = "auto"  # auto | on | off
    tracking_uri: Optional[str] = None
    experiment: Optional[str] = None  # default: the source run's experiment, else "wb-export"
    register: Optional[str] = None  # register the bundle as a new version of this MLflow model
    alias: Optional[str] = None  # with register=: point this alias of the model at the new version (champion, ...)
    check: Optional[str] = None  # re-verify an existing export folder instead of exporting
    repoint: Optional[str] = None  # after moving / copying an export folder: point its YAML at the new place

    def fine_tuned(self, task: str) -> Optional[str]:
        """The run / checkpoint given for ``task`` (``<task>=``)."""
        return getattr(self, task, None)

    def model_dir(self, task: str) -> Optional[str]:
        return getattr(self, f"{task}_model_dir", None)

    def model_name(self, task: str) -> Optional[str]:
        return getattr(self, f"{task}_model_name", None)

    def dictionary(self, task: str) -> Optional[str]:
        """A dictionary file for a checkpoint without its own (``<task>_dict=``; rec)."""
        return getattr(self, f"{task}_dict", None)


def parse_args(argv: list[str]) -> ExportConfig:
    """``key=value`` arguments (``wb export`` s command line) typed as :class:`ExportConfig`."""
    from workbench.config.compose import parse_key_values

    cfg = parse_key_values(ExportConfig, argv, "wb export", "det=<run> rec=<run> out=export/x")
    cfg.tracking = {"False": "off", "True": "on"}.get(str(cfg.tracking), cfg.tracking)  # YAML reads off / on as bools
    if cfg.tracking not in ("auto", "on", "off"):
        raise ConfigError(f"tracking={cfg.tracking!r}: choose auto, on or off")
    if cfg.alias and not cfg.register:
        raise ConfigError("alias= names a version of register=<model>: give register= too")
    return cfg
