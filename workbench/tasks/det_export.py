"""Exporting a text detection checkpoint: dynamic input size, DB post-processing, ImageNet normalisation."""

from __future__ import annotations

from typing import ClassVar

from workbench.errors import ConfigError, ExportError
from workbench.tasks.export_writer import ExportWriter, ModuleSettings, recorded_eval_settings

#: the pipeline YAML's TextDetection keys
PIPELINE_KEYS = ("limit_side_len", "limit_type", "max_side_limit", "thresh", "box_thresh", "unclip_ratio")
# TensorRT shape ranges (min / opt / max), the ones upstream's exporter writes for these models.
_TRT_SHAPES = [[1, 3, 32, 32], [1, 3, 736, 736], [1, 3, 4000, 4000]]


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
        "Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": {"x": _TRT_SHAPES}},
                                    "tensorrt": {"dynamic_shapes": {"x": _TRT_SHAPES}}}},
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


class DetExportWriter(ExportWriter):
    task = "det"
    pipeline_keys = PIPELINE_KEYS
    yml_notes: ClassVar[tuple[str, ...]] = (
        "# The OCR pipeline reads the detection resize limits and thresh / box_thresh / unclip_ratio from",
        "# SubModules.TextDetection in ../PaddleOCR.yaml: edit them there. PostProcess below holds the defaults of",
        "# this model used on its own (paddlex.create_model), which resizes to a long side of at most 960.",
    )

    def input_spec(self, source) -> list:
        import paddle

        return [paddle.static.InputSpec([None, 3, None, None], "float32", name="x")]

    def settings(self, cfg, source, base: dict) -> ModuleSettings:
        """Pipeline YAML: resize limits and thresholds; inference.yml PostProcess: the same thresholds plus
        ``max_candidates`` and ``score_mode`` (the det run's ``meta.json`` and ``eval.det``)."""
        pipeline = {k: base[k] for k in PIPELINE_KEYS if k in base}
        post = {"max_candidates": 1000, "score_mode": "fast"}
        if source is not None:
            meta = source.checkpoint.meta
            pipeline.update(meta.get("resize") or {})
            pp = dict(meta.get("postprocess") or {})
            post["max_candidates"] = pp.pop("max_candidates", 1000)
            pipeline.update(pp)
            eval_det = recorded_eval_settings(source.checkpoint, "det")
            post["score_mode"] = eval_det.get("score_mode", "fast")
            if eval_det.get("box_type", "quad") != "quad":
                raise ExportError(f"{source.path}: trained/evaluated with box_type={eval_det['box_type']!r}; the "
                                  "general OCR pipeline crops 4-point boxes (box_type quad)")
        for k in PIPELINE_KEYS:
            if getattr(cfg, k) is not None:
                pipeline[k] = getattr(cfg, k)
        if cfg.max_candidates is not None:
            post["max_candidates"] = cfg.max_candidates
        if pipeline.get("limit_type") not in ("min", "max", "resize_long"):
            raise ConfigError(f"limit_type={pipeline.get('limit_type')!r}: choose min, max or resize_long")
        post.update({k: pipeline[k] for k in ("thresh", "box_thresh", "unclip_ratio")})
        return ModuleSettings(pipeline, post)

    def inference_config(self, source, model_settings: dict) -> dict:
        from workbench.models import zoo

        preprocess = dict(zoo.get_spec(source.model_name).preprocess)
        return det_inference_config(source.paddlex_name, preprocess=preprocess, postprocess=model_settings)
