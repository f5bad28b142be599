"""`wb export ... textline_ori=... / doc_ori=...`: the orientation classifiers as PaddleX inference models, switched
on in PaddleOCR.yaml, and verified in the real PaddleX pipeline (offline, like tests/test_export_end_to_end.py).

* text lines: the stock det / rec / text-line models (../shared's ONNX files imported, one training step at a
  negligible learning rate) — the probe image and the same image turned by 180° go through the pipeline; the
  orientation module must decide every crop as the workbench does, the recogniser must get every crop turned as
  decided, and on the upside-down probe the module turns the crops upright, so the texts equal the upright ones.
* documents: tiny det / rec runs and a tiny doc_ori run — parity of every page decision, and the detector gets
  each page turned back by its class.
"""

from __future__ import annotations

import json

import pytest
import yaml

from test_export_end_to_end import wb

pytestmark = pytest.mark.slow


def _checks(report: dict, stage: str, what: str) -> list[dict]:
    return [c for c in report["checks"] if c["stage"] == stage and what in c["what"]]


@pytest.fixture(scope="module")
def textline_export(stock_runs, stock_textline_run, shared_dir, tmp_path_factory):
    project = tmp_path_factory.mktemp("project_tl")
    proc = wb(["export", f"det={stock_runs['det']}", f"rec={stock_runs['rec']}", f"textline_ori={stock_textline_run}",
               "out=export/upside_down", "num_probe_images=1", "num_probe_crops=6"], shared_dir, project)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return project / "export" / "upside_down"


def test_textline_module_is_in_the_pipeline_yaml_and_inference_yml(textline_export):
    folder = textline_export
    for f in ("textline_ori/inference.json", "textline_ori/inference.pdiparams", "textline_ori/inference.yml"):
        assert (folder / f).is_file(), f
    config = yaml.safe_load((folder / "PaddleOCR.yaml").read_text())
    tl = config["SubModules"]["TextLineOrientation"]
    assert config["use_textline_orientation"] is True and config["use_doc_preprocessor"] is False
    # one crop per batch: PaddleX 3.7.2 turns every crop of a larger batch by the first crop's class
    assert (tl["model_name"], tl["model_dir"], tl["batch_size"]) == (
        "PP-LCNet_x0_25_textline_ori", str((folder / "textline_ori").resolve()), 1)  # absolute: works from anywhere
    yml = yaml.safe_load((folder / "textline_ori" / "inference.yml").read_text())
    assert yml["PostProcess"]["Topk"] == {"topk": 1, "label_list": ["0_degree", "180_degree"]}
    assert {"ResizeImage": {"size": [192, 48]}} in yml["PreProcess"]["transform_ops"]  # the stock model's input
    readme = (folder / "README.md").read_text()
    assert "on: TextLineOrientation" in readme and f"--paddlex_config {folder.resolve()}/PaddleOCR.yaml" in readme


def test_paddlex_turns_upside_down_crops_as_the_workbench_decides(textline_export):
    report = json.loads((textline_export / "verification.json").read_text())
    assert report["passed"], report["failures"][:5]
    for stage in ("module", "pipeline"):
        classes = _checks(report, stage, "textline_ori class (ours vs PaddleX)")
        assert classes and all(c["passed"] for c in classes)
        assert report["summary"]["max"][f"{stage}: textline_ori input max abs diff"] == 0.0
        assert report["summary"]["max"][f"{stage}: textline_ori probabilities max abs diff"] < 1e-4
    wiring = _checks(report, "pipeline", "the recogniser got each crop turned by its class")
    assert len(wiring) == 2 and all(c["passed"] for c in wiring)  # the probe and the probe turned by 180°
    facts = report["facts"]["orientation"]
    assert facts["textline_ori"]["module: probes turned through every class, decided right"].endswith("of 12")
    (turned,) = facts["turned probes"].values()
    n_turned, _, n_crops = turned["crops turned by 180°"].split()
    # upside down: the module turns most crops, each by its own decision (measured: 2 of 3, the third -- 0.56
    # upright -- reads the same either way), and the texts are the upright probe's
    assert int(n_crops) >= 3 and 2 * int(n_turned) > int(n_crops)
    assert turned["texts as on the upright probe"]
    cli = _checks(report, "cli", "texts identical")
    assert len(cli) == 2 and all(c["passed"] for c in cli)


@pytest.fixture(scope="module")
def doc_export(tiny_det_run, tiny_rec_run, shared_dir, tmp_path_factory):
    from tiny_runs import textline_config, train

    cfg = textline_config(shared_dir, tmp_path_factory.mktemp("tiny_doc") / "run", task="doc_ori")
    cfg.model.name = "doc_ori_tiny"
    cfg.data.train = cfg.data.val = str(shared_dir / "data" / "icdar2015_det" / "label.txt")
    cfg.data.max_train_samples, cfg.data.max_val_samples, cfg.data.batch_size = 8, 4, 8
    doc_run = train(cfg)
    project = tmp_path_factory.mktemp("project_doc")
    proc = wb(["export", f"det={tiny_det_run}", f"rec={tiny_rec_run}", f"doc_ori={doc_run}", "out=export/pages",
               "num_probe_images=1", "cli=false", "serve=false"], shared_dir, project)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return project / "export" / "pages"


def test_doc_orientation_export_is_switched_on_and_verified(doc_export):
    config = yaml.safe_load((doc_export / "PaddleOCR.yaml").read_text())
    doc = config["SubPipelines"]["DocPreprocessor"]
    assert config["use_doc_preprocessor"] is True and config["use_textline_orientation"] is False
    assert doc["use_doc_orientation_classify"] is True and doc["use_doc_unwarping"] is False
    section = doc["SubModules"]["DocOrientationClassify"]
    assert (section["model_name"], section["model_dir"]) == ("PP-LCNet_x1_0_doc_ori", str((doc_export / "doc_ori").resolve()))
    yml = yaml.safe_load((doc_export / "doc_ori" / "inference.yml").read_text())
    assert yml["PostProcess"]["Topk"]["label_list"] == ["0", "90", "180", "270"]
    ops = yml["PreProcess"]["transform_ops"]
    assert {"ResizeImage": {"resize_short": 256}} in ops and {"CropImage": {"size": 224}} in ops
    report = json.loads((doc_export / "verification.json").read_text())
    assert report["passed"], report["failures"][:5]
    pages = _checks(report, "pipeline", "doc_ori class (ours vs PaddleX)")
    assert len(pages) == 4 and all(c["passed"] for c in pages)  # the probe page and its 3 turns
    turned_back = _checks(report, "pipeline", "the detector got the page turned back by its class")
    assert len(turned_back) == 4 and all(c["passed"] for c in turned_back)
    assert _checks(report, "module", "doc_ori probabilities max abs diff")
