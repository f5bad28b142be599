"""The files an orientation export writes: the classifier's inference.yml (what PaddleX's classifier predictor
reads) and the pipeline YAML with the orientation steps switched on exactly when they are given."""

from __future__ import annotations

import pytest

from workbench.errors import ExportError
from workbench.export import inference_yml, pipeline_yaml
from workbench.export.pipeline_yaml import ModuleRef
from workbench.tasks.orientation_export import cls_inference_config


def test_orientation_sections_and_their_switches():
    base = pipeline_yaml.paddlex_default_ocr_config()
    modules = {"TextDetection": ModuleRef("PP-OCRv5_mobile_det", "det"),
               "TextRecognition": ModuleRef("PP-OCRv5_mobile_rec", "rec"),
               "TextLineOrientation": ModuleRef("PP-LCNet_x0_25_textline_ori", "textline_ori", {"batch_size": 8}),
               "DocOrientationClassify": ModuleRef("PP-LCNet_x1_0_doc_ori", "doc_ori")}
    config = pipeline_yaml.build_pipeline_config_from(modules, base=base)
    assert config["use_textline_orientation"] is True and config["use_doc_preprocessor"] is True
    doc = config["SubPipelines"]["DocPreprocessor"]
    assert doc["use_doc_orientation_classify"] is True and doc["use_doc_unwarping"] is False
    assert doc["SubModules"]["DocOrientationClassify"]["model_dir"] == "doc_ori"
    assert config["SubModules"]["TextLineOrientation"] == {**base["SubModules"]["TextLineOrientation"],
                                                           "model_name": "PP-LCNet_x0_25_textline_ori",
                                                           "model_dir": "textline_ori", "batch_size": 8}
    assert pipeline_yaml.enabled_sections(config) == ["TextDetection", "TextRecognition", "TextLineOrientation",
                                                      "DocOrientationClassify"]
    assert pipeline_yaml.module_dirs(config) == {"TextDetection": "det", "TextRecognition": "rec",
                                                 "TextLineOrientation": "textline_ori", "DocOrientationClassify": "doc_ori"}
    # without them, every optional step is off (PaddleX's default would switch them all on)
    plain = pipeline_yaml.build_pipeline_config_from({k: modules[k] for k in ("TextDetection", "TextRecognition")},
                                                     base=base)
    assert plain["use_textline_orientation"] is False and plain["use_doc_preprocessor"] is False
    assert pipeline_yaml.enabled_sections(plain) == ["TextDetection", "TextRecognition"]
    with pytest.raises(ExportError, match="unknown settings"):
        pipeline_yaml.build_pipeline_config_from(
            {"TextLineOrientation": ModuleRef("PP-LCNet_x0_25_textline_ori", "t", {"score_thresh": 0.5})}, base=base)


def test_outside_command_names_every_module_folder():
    from workbench.export.verify import paddleocr_command

    config = pipeline_yaml.build_pipeline_config(ModuleRef("PP-OCRv5_mobile_det", "det"),
                                                 ModuleRef("PP-OCRv5_mobile_rec", "rec"),
                                                 textline_orientation=ModuleRef("PP-LCNet_x0_25_textline_ori", "tl"))
    cmd = paddleocr_command(config, yaml_path="x/PaddleOCR.yaml", image="a.jpg",
                            model_dirs={s: f"x/{d}" for s, d in pipeline_yaml.module_dirs(config).items()})
    assert cmd[-6:] == ["--text_detection_model_dir", "x/det", "--text_recognition_model_dir", "x/rec",
                        "--textline_orientation_model_dir", "x/tl"]


@pytest.mark.parametrize("name", ["PP-LCNet_x0_25_textline_ori", "PP-LCNet_x1_0_doc_ori"])
def test_classifier_inference_yml_is_what_paddlex_builds_its_predictor_from(name, tmp_path):
    from paddlex.inference.models.image_classification.predictor import ClasRunnerPredictor

    from workbench.models import zoo

    spec = zoo.get_spec(name)
    content = cls_inference_config(name, preprocess=dict(spec.preprocess), classes=spec.classes,
                                   image_shape=spec.image_shape)
    inference_yml.write_inference_yml(tmp_path, content, {"test": True})
    assert inference_yml.read_inference_yml(tmp_path) == content
    # PaddleX's own builder accepts every op and the Topk label list (no model file needed for this part)
    predictor = ClasRunnerPredictor.__new__(ClasRunnerPredictor)
    predictor._model_config, predictor.topk = content, None
    pre, post = predictor._build()
    assert {"Read", "Resize", "Normalize", "ToCHW", "ToBatch"} <= set(pre) and set(post) == {"Topk"}
    assert ("Crop" in pre) == ("crop" in spec.preprocess)
    assert post["Topk"].class_id_map == dict(enumerate(spec.classes))


def test_a_classifier_result_gives_each_image_its_own_class():
    """PaddleX 3.7.2 hands every result of a classifier batch the whole batch's class_ids ([N, 1]); the class of
    the i-th image is row i (and an image's own result, [topk], is read as it is)."""
    import numpy as np

    from workbench.paddlex_files import CLASSIFIER_BATCH_SIZE, classifier_class_id

    batch = {"class_ids": np.array([[1], [1], [0]], np.int32)}
    assert [classifier_class_id(batch, i) for i in range(3)] == [1, 1, 0]
    assert classifier_class_id({"class_ids": np.array([0, 1])}, 5) == 0  # one image's top-2
    assert CLASSIFIER_BATCH_SIZE == 1
