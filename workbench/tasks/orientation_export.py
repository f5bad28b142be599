"""Exporting an orientation classifier (text line or document): a fixed input size, PaddleX's classifier
preprocessing and its ``Topk`` post-process with the task's label list.

PaddleX's ``ClasRunnerPredictor`` reads from ``inference.yml``: ``PreProcess.transform_ops`` (``ResizeImage`` with
``size: [W, H]`` or ``resize_short``, optionally ``CropImage``, ``NormalizeImage``, ``ToCHWImage``; images are
converted to RGB first) and ``PostProcess.Topk`` (``topk``, ``label_list``). The OCR pipeline turns a crop by
``class_id × 180°`` (text lines) or a page by ``int(label_list[class_id])`` degrees counter-clockwise (documents),
so the label lists must be PaddleX's own (``0_degree`` / ``180_degree``; ``0`` / ``90`` / ``180`` / ``270``).
"""

from __future__ import annotations

from typing import ClassVar

from workbench.errors import ExportError
from workbench.tasks.export_writer import ExportWriter, FileCheck, ModuleSettings


def cls_inference_config(paddlex_name: str, *, preprocess: dict, classes, image_shape) -> dict:
    """The ``inference.yml`` content of a classifier: ``preprocess`` as a zoo row's (``size`` (H, W), or
    ``resize_short`` + ``crop``; ``mean``, ``std``, ``scale``)."""
    _, h, w = (int(v) for v in image_shape)
    p = dict(preprocess)
    if p.get("size"):
        ops = [{"ResizeImage": {"size": [int(p["size"][1]), int(p["size"][0])]}}]
    else:
        ops = [{"ResizeImage": {"resize_short": int(p["resize_short"])}}]
        if p.get("crop"):
            ops.append({"CropImage": {"size": int(p["crop"])}})
    ops += [{"NormalizeImage": {"channel_num": 3, "mean": [float(v) for v in p["mean"]],
                                "std": [float(v) for v in p["std"]], "scale": float(p["scale"]), "order": ""}},
            {"ToCHWImage": None}]
    shapes = [[1, 3, h, w], [1, 3, h, w], [8, 3, h, w]]
    return {
        "Global": {"model_name": paddlex_name},
        "Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": {"x": shapes}},
                                    "tensorrt": {"dynamic_shapes": {"x": shapes}}}},
        "PreProcess": {"transform_ops": ops},
        "PostProcess": {"Topk": {"topk": 1, "label_list": [str(c) for c in classes]}},
    }


def _resize_of(yml: dict):
    ops = yml.get("PreProcess", {}).get("transform_ops", [])
    resize = next((op["ResizeImage"] for op in ops if "ResizeImage" in op), None)
    crop = next((op["CropImage"] for op in ops if "CropImage" in op), None)
    return resize, crop


class OrientationExportWriter(ExportWriter):
    """``task``: the registered task it writes; ``pipeline_keys``: the settings its pipeline section takes."""

    optional = True
    yml_notes: ClassVar[tuple[str, ...]] = (
        "# PostProcess.Topk.label_list is PaddleX's class list: the pipeline turns the image by the predicted",
        "# class's angle (counter-clockwise). PreProcess is what the model trained with (RGB, resize, normalise).",
    )

    def __init__(self, task: str, pipeline_keys: tuple[str, ...] = ()):
        self.task = task
        self.pipeline_keys = tuple(pipeline_keys)

    def checkpoint_facts(self, checkpoint, spec, where: str, dictionary=None) -> dict:
        classes = checkpoint.meta.get("classes")
        if classes is not None and list(classes) != list(spec.classes or ()):
            raise ExportError(f"{where}: meta.json classes {classes} are not {spec.name}'s {list(spec.classes)}")
        return {"image_shape": tuple(int(v) for v in spec.image_shape)}

    def input_spec(self, source) -> list:
        import paddle

        _, h, w = source.image_shape
        return [paddle.static.InputSpec([None, 3, h, w], "float32", name="x")]

    def settings(self, cfg, source, base: dict) -> ModuleSettings:
        """The module's pipeline settings: PaddleX's defaults, except ``batch_size``: the export's
        ``<task>_batch_size`` if given, else :data:`~workbench.paddlex_files.CLASSIFIER_BATCH_SIZE` (1: PaddleX 3.7.2
        turns every crop of a larger batch by the first crop's class; the verification reports it if set higher)."""
        from workbench.paddlex_files import CLASSIFIER_BATCH_SIZE

        params = {k: base[k] for k in self.pipeline_keys if k in base}
        if "batch_size" in self.pipeline_keys:
            batch = getattr(cfg, f"{self.task}_batch_size", None)
            params["batch_size"] = int(batch) if batch is not None else CLASSIFIER_BATCH_SIZE
        return ModuleSettings(params, {})

    def inference_config(self, source, model_settings: dict) -> dict:
        from workbench.models import zoo

        spec = zoo.get_spec(source.model_name)
        return cls_inference_config(source.paddlex_name, preprocess=dict(spec.preprocess), classes=spec.classes,
                                    image_shape=source.image_shape)

    def file_checks(self, inference_yml: dict, source) -> list[FileCheck]:
        from workbench.models import zoo

        spec = zoo.get_spec(source.model_name)
        labels = ((inference_yml.get("PostProcess") or {}).get("Topk") or {}).get("label_list")
        resize, crop = _resize_of(inference_yml)
        p = dict(spec.preprocess)
        want = {"size": [int(p["size"][1]), int(p["size"][0])]} if p.get("size") else \
            {"resize_short": int(p["resize_short"])}
        checks = [FileCheck("Topk.label_list equals the training classes", labels, list(spec.classes),
                            labels == list(spec.classes)),
                  FileCheck("ResizeImage", resize, want, resize == want)]
        if p.get("crop"):
            checks.append(FileCheck("CropImage.size", (crop or {}).get("size"), int(p["crop"]),
                                    (crop or {}).get("size") == int(p["crop"])))
        return checks
