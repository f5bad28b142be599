"""Exporting a text recognition checkpoint: the training dictionary (proved by its sha256), fixed input height,
CTC decoding."""

from __future__ import annotations

from typing import ClassVar, Optional

from workbench.errors import ExportError
from workbench.tasks.export_writer import ExportWriter, FileCheck, ModuleSettings, recorded_eval_settings

#: the pipeline YAML's TextRecognition keys
PIPELINE_KEYS = ("batch_size", "score_thresh")


def _trt_shapes(height: int) -> list:
    return [[1, 3, height, 160], [1, 3, height, 320], [8, 3, height, 3200]]


def rec_inference_config(paddlex_name: str, *, image_shape, characters: list[str]) -> dict:
    """The rec ``inference.yml`` content: ``characters`` are the dictionary lines (no blank, no space class)."""
    c, h, w = (int(v) for v in image_shape)
    return {
        "Global": {"model_name": paddlex_name},
        "Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": {"x": _trt_shapes(h)}},
                                    "tensorrt": {"dynamic_shapes": {"x": _trt_shapes(h)}}}},
        "PreProcess": {
            "transform_ops": [
                {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                {"RecResizeImg": {"image_shape": [c, h, w]}},
                {"KeepKeys": {"keep_keys": ["image"]}},
            ]
        },
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": list(characters)},
    }


def training_dictionary(checkpoint, where: str, override=None):
    """The dictionary ``checkpoint`` trained with (its ``dict.txt``, or ``override`` for a checkpoint without
    one), proved by the sha256 and class count in ``meta.json``."""
    from workbench.data.charset import Charset

    meta = checkpoint.meta
    use_space = bool(meta.get("use_space_char", True))
    if not use_space:
        raise ExportError(
            f"{where}: trained with use_space_char=false. PaddleX's CTCLabelDecode always appends a space class, "
            "so the exported head would be one class short and every prediction shifted. Train with "
            "model.use_space_char=true."
        )
    dict_file = checkpoint.dict_file
    if dict_file is None and override is None:
        raise ExportError(f"{where}: no dict.txt in the checkpoint; pass rec_dict=<the training dictionary>")
    charset = Charset.from_file(dict_file or override, use_space_char=True)
    if dict_file is not None and override is not None:
        other = Charset.from_file(override, use_space_char=True)
        if other.sha256 != charset.sha256:
            raise ExportError(
                f"{where}: rec_dict={override} ({len(other)} lines, sha256 {other.sha256[:12]}) is not the "
                f"dictionary the checkpoint trained with ({dict_file}: {len(charset)} lines, sha256 "
                f"{charset.sha256[:12]})"
            )
    expected_sha = meta.get("dictionary_sha256")
    if expected_sha is None:
        raise ExportError(f"{where}: meta.json has no dictionary_sha256; cannot prove which dictionary it trained with")
    if charset.sha256 != expected_sha:
        raise ExportError(
            f"{where}: dictionary {charset.source} has sha256 {charset.sha256[:12]}… but the run trained with "
            f"{expected_sha[:12]}… (meta.json dictionary_sha256): decoding would map classes to the wrong characters"
        )
    expected_classes = meta.get("num_ctc_classes")
    if expected_classes is not None and int(expected_classes) != charset.num_ctc_classes:
        raise ExportError(
            f"{where}: dictionary gives {charset.num_ctc_classes} CTC classes ({len(charset)} lines + blank + "
            f"space) but meta.json num_ctc_classes={expected_classes}"
        )
    return charset


class RecExportWriter(ExportWriter):
    task = "rec"
    pipeline_keys = PIPELINE_KEYS
    yml_notes: ClassVar[tuple[str, ...]] = (
        "# PostProcess.character_dict is the training dictionary, line for line. PaddleX adds the CTC blank in",
        "# front and the space class at the end itself. Crops are resized to height RecResizeImg.image_shape[1].",
    )

    def checkpoint_facts(self, checkpoint, spec, where: str, dictionary=None) -> dict:
        charset = training_dictionary(checkpoint, where, dictionary)
        image_shape = tuple(int(v) for v in (checkpoint.meta.get("image_shape") or spec.image_shape or (3, 48, 320)))
        if len(image_shape) != 3 or image_shape[0] != 3:
            raise ExportError(f"{where}: meta.json image_shape={list(image_shape)} is not [3, H, W]")
        return {"charset": charset, "image_shape": image_shape}

    def input_spec(self, source) -> list:
        import paddle

        _, height, _ = source.image_shape
        return [paddle.static.InputSpec([None, 3, height, None], "float32", name="x")]

    def settings(self, cfg, source, base: dict) -> ModuleSettings:
        """Pipeline YAML: ``batch_size`` and ``score_thresh`` (the rec run's ``eval.rec.score_thresh``)."""
        params = {k: base[k] for k in PIPELINE_KEYS if k in base}
        if source is not None:
            eval_rec = recorded_eval_settings(source.checkpoint, "rec")
            if "score_thresh" in eval_rec:
                params["score_thresh"] = float(eval_rec["score_thresh"])
        if cfg.rec_score_thresh is not None:
            params["score_thresh"] = cfg.rec_score_thresh
        if cfg.rec_batch_size is not None:
            params["batch_size"] = cfg.rec_batch_size
        return ModuleSettings(params, {})

    def inference_config(self, source, model_settings: dict) -> dict:
        return rec_inference_config(source.paddlex_name, image_shape=source.image_shape,
                                    characters=source.charset.characters)

    def file_checks(self, inference_yml: dict, source) -> list[FileCheck]:
        chars: Optional[list] = inference_yml["PostProcess"].get("character_dict")
        shape = next(op["RecResizeImg"]["image_shape"] for op in inference_yml["PreProcess"]["transform_ops"]
                     if "RecResizeImg" in op)
        return [
            FileCheck("character_dict equals the training dictionary", f"{len(chars or [])} lines",
                      f"{len(source.charset)} lines", chars == list(source.charset.characters)),
            FileCheck("RecResizeImg.image_shape", shape, list(source.image_shape),
                      list(shape) == list(source.image_shape)),
        ]
