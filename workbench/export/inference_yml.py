"""``inference.yml``: the file PaddleX reads next to an inference model, and the first place a newcomer looks.

What PaddleX 3.7 actually reads from it (the rest is documentation for people and other tools):

* ``Global.model_name`` — must be a name PaddleX has registered (``PP-OCRv5_mobile_det`` ...) and equal to the
  ``model_name`` the pipeline YAML / ``create_model`` asks for, or PaddleX refuses the folder.
* det: ``PreProcess.transform_ops`` → ``DecodeImage.img_mode`` (BGR: the channel order the model trained in),
  ``NormalizeImage`` (mean / std / scale), ``DetResizeForTest`` (left ``null``: the resize limits live in the
  pipeline YAML, where PaddleX reads them — a standalone ``create_model`` uses its own default, long side ≤ 960);
  ``PostProcess`` (DBPostProcess ``thresh``, ``box_thresh``, ``max_candidates``, ``unclip_ratio``, ``score_mode``:
  the defaults of a standalone module; the pipeline overrides the first four from its YAML).
* rec: ``DecodeImage.img_mode`` (BGR: without it the rec predictor converts crops to RGB), ``RecResizeImg.image_shape``
  (the height is fixed, the width follows the crop), ``PostProcess.character_dict`` (the training dictionary,
  line by line; PaddleX adds the CTC blank in front and the space class at the end itself).
* ``Hpi.backend_configs`` — TensorRT dynamic-shape ranges, used only with TensorRT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml

from workbench.errors import ExportError

INFERENCE_YML = "inference.yml"

# TensorRT shape ranges (min / opt / max), the ones upstream's exporter writes for these models.
_DET_TRT_SHAPES = [[1, 3, 32, 32], [1, 3, 736, 736], [1, 3, 4000, 4000]]


def _rec_trt_shapes(height: int) -> list:
    return [[1, 3, height, 160], [1, 3, height, 320], [8, 3, height, 3200]]


def det_inference_config(paddlex_name: str, *, preprocess: dict, postprocess: dict) -> dict:
    """The det ``inference.yml`` content. ``postprocess``: thresh, box_thresh, max_candidates, unclip_ratio,
    score_mode."""
    mean = [float(v) for v in preprocess.get("mean", (0.485, 0.456, 0.406))]
    std = [float(v) for v in preprocess.get("std", (0.229, 0.224, 0.225))]
    scale = float(preprocess.get("scale", 1.0 / 255))
    order = preprocess.get("channel_order", "BGR")
    if order != "BGR":
        raise ExportError(f"{paddlex_name}: det preprocessing with channel order {order!r} is not supported")
    return {
        "Global": {"model_name": paddlex_name},
        "Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": {"x": _DET_TRT_SHAPES}},
                                    "tensorrt": {"dynamic_shapes": {"x": _DET_TRT_SHAPES}}}},
        "PreProcess": {
            "transform_ops": [
                {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                {"DetResizeForTest": None},
                {"NormalizeImage": {"mean": mean, "std": std, "scale": scale, "order": "hwc"}},
                {"ToCHWImage": None},
                {"KeepKeys": {"keep_keys": ["image", "shape"]}},
            ]
        },
        "PostProcess": {
            "name": "DBPostProcess",
            "thresh": float(postprocess["thresh"]),
            "box_thresh": float(postprocess["box_thresh"]),
            "max_candidates": int(postprocess["max_candidates"]),
            "unclip_ratio": float(postprocess["unclip_ratio"]),
            "score_mode": str(postprocess.get("score_mode", "fast")),
        },
    }


def rec_inference_config(paddlex_name: str, *, image_shape, characters: list[str]) -> dict:
    """The rec ``inference.yml`` content: ``characters`` are the dictionary lines (no blank, no space class)."""
    c, h, w = (int(v) for v in image_shape)
    return {
        "Global": {"model_name": paddlex_name},
        "Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": {"x": _rec_trt_shapes(h)}},
                                    "tensorrt": {"dynamic_shapes": {"x": _rec_trt_shapes(h)}}}},
        "PreProcess": {
            "transform_ops": [
                {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                {"RecResizeImg": {"image_shape": [c, h, w]}},
                {"KeepKeys": {"keep_keys": ["image"]}},
            ]
        },
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": list(characters)},
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Repeated lists are written out again instead of as YAML anchors (``&id001``): easier to read."""

    def ignore_aliases(self, data) -> bool:
        return True


_TASK_NOTES = {
    "det": [
        "# The OCR pipeline reads the detection resize limits and thresh / box_thresh / unclip_ratio from",
        "# SubModules.TextDetection in ../PaddleOCR.yaml: edit them there. PostProcess below holds the defaults of",
        "# this model used on its own (paddlex.create_model), which resizes to a long side of at most 960.",
    ],
    "rec": [
        "# PostProcess.character_dict is the training dictionary, line for line. PaddleX adds the CTC blank in",
        "# front and the space class at the end itself. Crops are resized to height RecResizeImg.image_shape[1].",
    ],
}


def _header(task: str, provenance: dict) -> str:
    lines = [
        "# PaddleX inference config written by `wb export` (OCR Workbench).",
        "# PaddleX reads: Global.model_name (must equal the pipeline's model_name), PreProcess, PostProcess.",
        *_TASK_NOTES.get(task, []),
        "#",
        "# Exported from:",
    ]
    for k, v in provenance.items():
        lines.append(f"#   {k}: {v}")
    return "\n".join(lines) + "\n"


def write_inference_yml(model_dir: str | Path, config: dict, provenance: Optional[dict] = None) -> Path:
    """Write ``config`` as ``model_dir/inference.yml`` (with a commented provenance header) and check that it
    reads back identically — a dictionary line such as ``yes``, ``null`` or ``:`` must stay a string."""
    path = Path(model_dir) / INFERENCE_YML
    body = yaml.dump(config, Dumper=_NoAliasDumper, allow_unicode=True, sort_keys=False, default_flow_style=False,
                     width=120)
    task = "rec" if config.get("PostProcess", {}).get("name") == "CTCLabelDecode" else "det"
    path.write_text(_header(task, provenance or {}) + body, encoding="utf-8")
    back = read_inference_yml(path)
    if back != config:
        raise ExportError(f"{path}: the YAML does not read back as written (a value changed type or text)")
    return path


def read_inference_yml(path: str | Path) -> dict[str, Any]:
    """Read an ``inference.yml`` (or a model folder holding one) the way PaddleX does (``yaml.SafeLoader``)."""
    path = Path(path)
    if path.is_dir():
        path = path / INFERENCE_YML
    if not path.is_file():
        raise ExportError(f"{path} not found: not a PaddleX inference model folder")
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f, Loader=yaml.SafeLoader)
    if not isinstance(data, dict):
        raise ExportError(f"{path}: not a YAML mapping")
    return data


def model_name_of(model_dir: str | Path) -> str:
    """``Global.model_name`` of an inference model folder (raises with the file name when absent)."""
    data = read_inference_yml(model_dir)
    name = (data.get("Global") or {}).get("model_name")
    if not name:
        raise ExportError(f"{Path(model_dir) / INFERENCE_YML}: no Global.model_name; PaddleX will refuse this folder")
    return str(name)
