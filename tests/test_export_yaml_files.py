"""inference.yml and PaddleOCR.yaml: what PaddleX reads, written so that it reads back exactly."""

from __future__ import annotations

import pytest
import yaml

from workbench.errors import ExportError
from workbench.export import inference_yml, pipeline_yaml
from workbench.export.pipeline_yaml import ModuleRef
from workbench.tasks import det_export, rec_export


def test_pipeline_config_starts_from_paddlex_default_and_sets_our_modules():
    default = pipeline_yaml.paddlex_default_ocr_config()
    det = ModuleRef("PP-OCRv5_mobile_det", "det", {"box_thresh": 0.45, "limit_side_len": 736},
                    engine_config=pipeline_yaml.PADDLE_RUN_MODE)
    rec = ModuleRef("PP-OCRv5_mobile_rec", "rec", {"score_thresh": 0.2})
    config = pipeline_yaml.build_pipeline_config(det, rec, base=default)

    subs = config["SubModules"]
    assert subs["TextDetection"]["model_name"] == "PP-OCRv5_mobile_det" and subs["TextDetection"]["model_dir"] == "det"
    assert subs["TextDetection"]["box_thresh"] == 0.45 and subs["TextDetection"]["limit_side_len"] == 736
    # untouched defaults come from paddlex's own file
    assert subs["TextDetection"]["unclip_ratio"] == default["SubModules"]["TextDetection"]["unclip_ratio"]
    assert subs["TextDetection"]["engine_config"] == {"paddle_static": {"run_mode": "paddle"}}
    assert subs["TextRecognition"]["score_thresh"] == 0.2 and subs["TextRecognition"]["model_dir"] == "rec"
    assert config["use_doc_preprocessor"] is False and config["use_textline_orientation"] is False
    doc = config["SubPipelines"]["DocPreprocessor"]
    assert doc["use_doc_orientation_classify"] is False and doc["use_doc_unwarping"] is False
    assert default["use_doc_preprocessor"] is True  # the default was copied, not modified


def test_pipeline_config_switches_optional_steps_on_only_with_their_models():
    config = pipeline_yaml.build_pipeline_config(
        ModuleRef("PP-OCRv5_mobile_det", "det"), ModuleRef("PP-OCRv5_mobile_rec", None),
        textline_orientation=ModuleRef("PP-LCNet_x1_0_textline_ori", "textline_orientation"))
    assert config["use_textline_orientation"] is True and config["use_doc_preprocessor"] is False
    assert config["SubModules"]["TextLineOrientation"]["model_dir"] == "textline_orientation"
    assert config["SubModules"]["TextRecognition"]["model_dir"] is None  # stock model: PaddleX fetches it


def test_unknown_module_setting_is_an_error():
    with pytest.raises(ExportError, match="box_tresh"):
        pipeline_yaml.build_pipeline_config(ModuleRef("PP-OCRv5_mobile_det", "det", {"box_tresh": 0.5}),
                                            ModuleRef("PP-OCRv5_mobile_rec", "rec"))


def test_pipeline_yaml_reads_back_and_resolves_dirs_against_its_folder(tmp_path):
    config = pipeline_yaml.build_pipeline_config(
        ModuleRef("PP-OCRv5_mobile_det", "det", engine_config=pipeline_yaml.PADDLE_RUN_MODE),
        ModuleRef("PP-OCRv5_mobile_rec", "rec"))
    path = pipeline_yaml.dump_pipeline_yaml(config, tmp_path / "PaddleOCR.yaml", header=["test"])
    text = path.read_text()
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "engine_config:")
    assert lines[at - 3].strip().startswith("#") and "oneDNN" in " ".join(lines[at - 3: at])  # says why
    assert str(tmp_path) not in text  # nothing machine-specific
    raw = pipeline_yaml.load_pipeline_config(path, resolve_dirs=False)
    assert raw == config
    resolved = pipeline_yaml.load_pipeline_config(path)
    assert resolved["SubModules"]["TextDetection"]["model_dir"] == str((tmp_path / "det").resolve())
    assert resolved["SubModules"]["TextLineOrientation"]["model_dir"] is None
    # PaddleX's own reader agrees with ours
    from paddlex.inference import load_pipeline_config

    assert pipeline_yaml._plain(load_pipeline_config(str(path))) == config


def _fake_model_dir(d):
    d.mkdir(parents=True)
    for f in ("inference.yml", "inference.json", "inference.pdiparams"):
        (d / f).write_text("x")


def test_repoint_after_a_move_or_a_copy_keeps_the_file_and_what_points_elsewhere(tmp_path):
    import shutil

    folder = tmp_path / "a" / "my_receipts"
    _fake_model_dir(folder / "det")
    _fake_model_dir(folder / "rec")
    _fake_model_dir(tmp_path / "shared_models" / "textline_orientation")  # outside the export: left alone
    config = pipeline_yaml.build_pipeline_config(
        ModuleRef("PP-OCRv5_mobile_det", str(folder / "det"), engine_config=pipeline_yaml.PADDLE_RUN_MODE),
        ModuleRef("PP-OCRv5_mobile_rec", str(folder / "rec")),
        textline_orientation=ModuleRef("PP-LCNet_x1_0_textline_ori",
                                       str(tmp_path / "shared_models" / "textline_orientation")))
    pipeline_yaml.dump_pipeline_yaml(config, folder / "PaddleOCR.yaml", header=["test"])
    assert pipeline_yaml.stale_model_dirs(folder) == [] and pipeline_yaml.repoint(folder) == []

    copy = tmp_path / "b" / "copy"
    shutil.copytree(folder, copy)  # the original still exists: the copy must not keep using its models
    assert pipeline_yaml.stale_model_dirs(copy) == [(str(folder / "det"), str(copy / "det")),
                                                    (str(folder / "rec"), str(copy / "rec"))]
    before = (copy / "PaddleOCR.yaml").read_text().splitlines()
    assert len(pipeline_yaml.repoint(copy)) == 2 and pipeline_yaml.stale_model_dirs(copy) == []
    after = (copy / "PaddleOCR.yaml").read_text().splitlines()
    changed = [(x, y) for x, y in zip(before, after) if x != y]
    assert len(before) == len(after) and len(changed) == 2 and all("model_dir:" in y for _, y in changed)
    subs = pipeline_yaml.load_pipeline_config(copy / "PaddleOCR.yaml", resolve_dirs=False)["SubModules"]
    assert subs["TextDetection"]["model_dir"] == str(copy / "det")
    assert subs["TextLineOrientation"]["model_dir"] == str(tmp_path / "shared_models" / "textline_orientation")
    assert subs["TextDetection"]["engine_config"] == pipeline_yaml.PADDLE_RUN_MODE

    moved = tmp_path / "c" / "moved with space"
    moved.parent.mkdir()
    shutil.move(folder, moved)  # the old place is gone
    assert len(pipeline_yaml.repoint(moved)) == 2
    from paddlex.inference import load_pipeline_config  # PaddleX reads what was written

    assert load_pipeline_config(str(moved / "PaddleOCR.yaml"))["SubModules"]["TextRecognition"]["model_dir"] == str(
        moved / "rec")

    old = tmp_path / "old_relative"  # an export written with relative model_dir values
    _fake_model_dir(old / "det")
    _fake_model_dir(old / "rec")
    pipeline_yaml.dump_pipeline_yaml(pipeline_yaml.build_pipeline_config(
        ModuleRef("PP-OCRv5_mobile_det", "det"), ModuleRef("PP-OCRv5_mobile_rec", "rec")), old / "PaddleOCR.yaml",
        header=["old"])
    assert [new for _, new in pipeline_yaml.repoint(old)] == [str(old / "det"), str(old / "rec")]


def test_graph_needs_paddle_run_mode_looks_for_interpolation_ops(tmp_path):
    (tmp_path / "inference.json").write_text('{"ops": ["pd_op.conv2d", "pd_op.nearest_interp"]}')
    assert pipeline_yaml.graph_needs_paddle_run_mode(tmp_path)
    (tmp_path / "inference.json").write_text('{"ops": ["pd_op.conv2d", "pd_op.softmax"]}')
    assert not pipeline_yaml.graph_needs_paddle_run_mode(tmp_path)


TRICKY = ["a", "yes", "no", "null", "~", "1", "0.5", " ", ":", "#", "'", '"', "-", "[", "&", "*", "é", "中", "\\"]


def test_rec_inference_yml_keeps_every_dictionary_line_a_string(tmp_path):
    content = rec_export.rec_inference_config("PP-OCRv5_mobile_rec", image_shape=(3, 48, 320), characters=TRICKY)
    path = inference_yml.write_inference_yml(tmp_path, content, {"checkpoint": "x"})
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["PostProcess"]["character_dict"] == TRICKY
    assert data["Global"]["model_name"] == "PP-OCRv5_mobile_rec"
    ops = data["PreProcess"]["transform_ops"]
    assert {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}} in ops  # else PaddleX feeds RGB crops
    assert {"RecResizeImg": {"image_shape": [3, 48, 320]}} in ops
    # PaddleX's decoder built from this file has blank + dictionary + space classes
    from paddlex.inference.models.text_recognition.processors import CTCLabelDecode

    decoder = CTCLabelDecode(character_list=data["PostProcess"]["character_dict"])
    assert len(decoder.character) == len(TRICKY) + 2 and decoder.character[1:-1] == TRICKY
    assert inference_yml.model_name_of(tmp_path) == "PP-OCRv5_mobile_rec"


def test_det_inference_yml_has_db_postprocess_and_normalisation(tmp_path):
    post = {"thresh": 0.25, "box_thresh": 0.5, "max_candidates": 500, "unclip_ratio": 1.8, "score_mode": "slow"}
    content = det_export.det_inference_config(
        "PP-OCRv5_mobile_det", preprocess={"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
        postprocess=post)
    path = inference_yml.write_inference_yml(tmp_path, content)
    text = path.read_text()
    assert "&id" not in text  # no YAML anchors: readable
    data = inference_yml.read_inference_yml(tmp_path)
    assert data["PostProcess"] == {"name": "DBPostProcess", **post}
    norm = next(op["NormalizeImage"] for op in data["PreProcess"]["transform_ops"] if "NormalizeImage" in op)
    assert norm["scale"] == pytest.approx(1 / 255) and norm["order"] == "hwc"


def test_model_folder_without_model_name_is_refused(tmp_path):
    (tmp_path / "inference.yml").write_text("PreProcess: {}\n")
    with pytest.raises(ExportError, match="Global.model_name"):
        inference_yml.model_name_of(tmp_path)


def test_det_settings_take_the_det_models_own_postprocess_defaults(tmp_path):
    """A stock or copied detector gets its own post-processing (PP-OCRv6: 0.2 / 0.45 / 1.4, 3000 candidates), not
    the pipeline YAML's v5 values; the command line still wins."""
    from workbench.export.config import ExportConfig
    from workbench.models import zoo

    base = pipeline_yaml.paddlex_default_ocr_config()["SubModules"]["TextDetection"]
    writer = det_export.DetExportWriter()
    stock_v6 = writer.settings(ExportConfig(det_model_name="PP-OCRv6_small_det"), None, base)
    assert {k: stock_v6.pipeline[k] for k in ("thresh", "box_thresh", "unclip_ratio")} == {
        "thresh": 0.2, "box_thresh": 0.45, "unclip_ratio": 1.4}
    assert stock_v6.model["max_candidates"] == 3000 and stock_v6.pipeline["limit_side_len"] == base["limit_side_len"]
    stock_v5 = writer.settings(ExportConfig(det_model_name="PP-OCRv5_mobile_det"), None, base)
    assert (stock_v5.pipeline["thresh"], stock_v5.pipeline["box_thresh"], stock_v5.model["max_candidates"]) == (
        0.3, 0.6, 1000)
    default = writer.settings(ExportConfig(), None, base)  # PaddleX's default pipeline module, with its own defaults
    assert default.model == {**zoo.det_postprocess(base["model_name"]), "score_mode": "fast"}
    (tmp_path / "det").mkdir()
    (tmp_path / "det" / "inference.yml").write_text("Global:\n  model_name: PP-OCRv6_tiny_det\n", encoding="utf-8")
    copied = writer.settings(ExportConfig(det_model_dir=str(tmp_path / "det"), box_thresh=0.5), None, base)
    assert (copied.pipeline["thresh"], copied.pipeline["box_thresh"], copied.model["box_thresh"]) == (0.2, 0.5, 0.5)
