"""PP-OCRv6 end to end, offline: the stock tiny det / rec ONNX models imported, fine-tuned for two steps on ICDAR
2015 samples, exported with `wb export` and verified in the real PaddleX pipeline and the `paddleocr` CLI under the
registered PaddleX names (PP-OCRv6_tiny_det / _rec); the exported files carry the v6 post-processing defaults;
`wb analyze pipeline` runs the same v6 pair in process and the exported folder through PaddleX.

Tiny sizes, two optimizer steps each, but real weights: the detector finds the ICDAR text and the recogniser reads
it, so boxes, crops and texts are compared on real content. About 70 s on 2 CPU cores (marked slow).
"""

from __future__ import annotations

import json

import paddle
import pytest
import yaml

from test_export_end_to_end import wb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def v6_runs(stock, shared_dir, tmp_path_factory):
    """Imported stock v6 tiny weights (+ import records) and two-step fine-tuning runs from them."""
    import cv2

    from tiny_runs import det_config, rec_config, train
    from workbench.weights import importers as imp

    root = tmp_path_factory.mktemp("v6")
    data = shared_dir / "data"
    out = {}
    for task, calib_folder, lines in (("det", "icdar2015_det", range(100, 104)), ("rec", "icdar2015_rec", range(200, 232))):
        rows = (data / calib_folder / "label.txt").read_text(encoding="utf-8").splitlines()
        images = [cv2.imread(str(data / calib_folder / rows[i].split("\t")[0])) for i in lines]
        result = imp.import_inference_model(stock / f"PP-OCRv6_tiny_{task}.onnx",
                                            calibration=imp.preprocess_images(task, images))
        weights = root / f"{task}.pdparams"
        paddle.save(result.state_dict(), str(weights))
        record = {"weights": str(weights), **result.report.to_dict()}
        weights.with_name(f"{task}.import.json").write_text(json.dumps(record, default=str), encoding="utf-8")
        out[f"{task}_weights"] = weights
    dictionary = stock / "ppocrv6_tiny_dict.txt"
    rc = rec_config(shared_dir, root / "rec_run", model__name="PP-OCRv6_tiny_rec", model__pretrained=str(
        out["rec_weights"]), model__character_dict=str(dictionary), trainer__max_steps=2, trainer__epochs=1,
                    optim__lr=1e-5)
    rc.data.max_train_samples, rc.data.batch_size = 16, 8
    dc = det_config(shared_dir, root / "det_run", model__name="PP-OCRv6_tiny_det", model__pretrained=str(
        out["det_weights"]), trainer__max_steps=2, optim__lr=1e-5)
    out["rec_run"], out["det_run"], out["dictionary"] = train(rc), train(dc), dictionary
    return out


@pytest.fixture(scope="module")
def exported_v6(v6_runs, shared_dir, tmp_path_factory):
    project = tmp_path_factory.mktemp("project_v6")
    proc = wb(["export", f"det={v6_runs['det_run']}", f"rec={v6_runs['rec_run']}", "out=export/v6"], shared_dir,
              project)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "[no_network] blocked" not in proc.stderr
    return project / "export" / "v6", proc


def test_v6_export_carries_the_v6_names_and_defaults(exported_v6):
    folder, proc = exported_v6
    assert ("--text_detection_model_name PP-OCRv6_tiny_det --text_recognition_model_name PP-OCRv6_tiny_rec"
            in proc.stdout)
    config = yaml.safe_load((folder / "PaddleOCR.yaml").read_text(encoding="utf-8"))
    det, rec = config["SubModules"]["TextDetection"], config["SubModules"]["TextRecognition"]
    assert (det["model_name"], rec["model_name"]) == ("PP-OCRv6_tiny_det", "PP-OCRv6_tiny_rec")
    # PP-OCRv6 tiny's own post-processing (its stock inference.yml), not PaddleX's pipeline YAML 0.3 / 0.6 / 1.5
    assert (det["thresh"], det["box_thresh"], det["unclip_ratio"]) == (0.2, 0.4, 1.4)
    det_yml = yaml.safe_load((folder / "det" / "inference.yml").read_text(encoding="utf-8"))
    assert det_yml["Global"]["model_name"] == "PP-OCRv6_tiny_det"
    post = det_yml["PostProcess"]
    assert (post["thresh"], post["box_thresh"], post["unclip_ratio"], post["max_candidates"]) == (0.2, 0.4, 1.4, 3000)
    rec_yml = yaml.safe_load((folder / "rec" / "inference.yml").read_text(encoding="utf-8"))
    assert rec_yml["Global"]["model_name"] == "PP-OCRv6_tiny_rec"
    assert len(rec_yml["PostProcess"]["character_dict"]) == 6904


def test_v6_export_is_verified_by_paddlex_and_the_cli(exported_v6):
    folder, _ = exported_v6
    report = json.loads((folder / "verification.json").read_text(encoding="utf-8"))
    assert report["passed"] and report["summary"]["failed"] == 0
    assert {"files", "module", "pipeline", "cli"} <= {c["stage"] for c in report["checks"]}
    texts = [t for exp in report["expected"].values() for t in exp["rec_texts"]]
    assert len(texts) >= 3 and sum(t.isalpha() and len(t) > 2 for t in texts) >= 2, texts  # real words read
    cli = [c for c in report["checks"] if c["stage"] == "cli" and c["what"].startswith("texts")]
    assert cli and all(c["passed"] for c in cli)
    assert report["summary"]["max"]["pipeline: rec probabilities max abs diff"] < 1e-3


def test_analyze_pipeline_runs_v6_pairs(v6_runs, exported_v6, shared_dir, tmp_path):
    """In process (imported weights name their model; v6 defaults apply) and the exported folder through PaddleX:
    the same images, the same readings."""
    from workbench.analysis.pipeline import LoadOptions, load_pipeline
    from workbench.analysis.run import AnalyzeConfig, run_analysis

    data = shared_dir / "data" / "icdar2015_det" / "label.txt"
    ours = load_pipeline(str(v6_runs["det_weights"]), str(v6_runs["rec_weights"]),
                         options=LoadOptions(rec_dict=str(v6_runs["dictionary"])))
    assert (ours.det.name, ours.rec.name) == ("PP-OCRv6_tiny_det", "PP-OCRv6_tiny_rec")
    s = ours.settings
    assert (s.thresh, s.box_thresh, s.unclip_ratio, s.max_candidates) == (0.2, 0.4, 1.4, 3000)
    result = run_analysis(AnalyzeConfig(data=str(data), limit=2, out=str(tmp_path / "ours")), runner=ours)
    assert result["settings"]["box_thresh"] == 0.4 and sum(len(r["pred_texts"]) for r in result["images"]) >= 3

    folder, _ = exported_v6
    via_paddlex = run_analysis(AnalyzeConfig(data=str(data), limit=2, pipeline=str(folder),
                                             out=str(tmp_path / "paddlex")))
    ours_ft = load_pipeline(str(v6_runs["det_run"]), str(v6_runs["rec_run"]))
    mine = run_analysis(AnalyzeConfig(data=str(data), limit=2, out=str(tmp_path / "ft")), runner=ours_ft)
    assert via_paddlex["settings"]["box_thresh"] == mine["settings"]["box_thresh"] == 0.4
    read = lambda r: [sorted(row["pred_texts"]) for row in r["images"]]  # noqa: E731
    assert len(mine["images"]) == 2 and read(mine) == read(via_paddlex)
    assert sum(len(texts) for texts in read(mine)) >= 3
