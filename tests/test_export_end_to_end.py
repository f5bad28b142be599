"""End to end: tiny trained det + rec runs → `wb export` → the real PaddleX pipeline and `paddleocr ocr`, offline.

The tiny models are barely trained (their texts are gibberish), but they are deterministic functions, and on the
ICDAR 2015 probe images the det model finds text regions at the default thresholds (box_thresh 0.6), so the
pipeline crops and recognises several lines per image: the comparison covers det maps, boxes, rec probabilities
and texts. The export runs in a subprocess with ../shared/tools/no_network on PYTHONPATH (so do PaddleX and the
`paddleocr` subprocess it starts), and with no oneDNN-related environment variable: the YAML alone must make the
detection module run in PaddleX's default CPU setup.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workbench.errors import ExportError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def offline_env(shared_dir) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), str(shared_dir / "tools" / "no_network")])
    env.pop("PADDLE_PDX_ENABLE_MKLDNN_BYDEFAULT", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def wb(args, shared_dir, cwd, timeout=900):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=cwd, env=offline_env(shared_dir),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def exported(tiny_det_run, tiny_rec_run, shared_dir, tmp_path_factory):
    """`wb export det=... rec=... out=export/my_receipts`, offline, in a project-like working directory."""
    project = tmp_path_factory.mktemp("project")
    proc = wb(["export", f"det={tiny_det_run}", f"rec={tiny_rec_run}", "out=export/my_receipts"], shared_dir, project)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "[no_network] blocked" not in proc.stderr
    return project / "export" / "my_receipts", proc


def test_export_writes_the_paddlex_layout_and_prints_the_command(exported):
    folder, proc = exported
    for f in ("det/inference.json", "det/inference.pdiparams", "det/inference.yml", "rec/inference.json",
              "rec/inference.pdiparams", "rec/inference.yml", "PaddleOCR.yaml", "README.md", "verification.json",
              "verification.md", "export_info.json"):
        assert (folder / f).is_file(), f
    assert not list(folder.parent.glob(".my_receipts.tmp-*")) and not (folder.parent / "my_receipts.FAILED").exists()
    expected_cmd = ("paddleocr ocr -i some.jpg --paddlex_config export/my_receipts/PaddleOCR.yaml "
                    "--text_detection_model_name PP-OCRv5_mobile_det --text_recognition_model_name PP-OCRv5_mobile_rec")
    assert expected_cmd in proc.stdout  # plus the model folders, so it works from this directory
    readme = (folder / "README.md").read_text()
    assert ("paddleocr ocr -i some.jpg --paddlex_config PaddleOCR.yaml --text_detection_model_name PP-OCRv5_mobile_det "
            "--text_recognition_model_name PP-OCRv5_mobile_rec") in readme
    assert "from paddleocr import PaddleOCR" in readme and "create_pipeline" in readme

    config = yaml.safe_load((folder / "PaddleOCR.yaml").read_text())
    det, rec = config["SubModules"]["TextDetection"], config["SubModules"]["TextRecognition"]
    assert (det["model_name"], det["model_dir"]) == ("PP-OCRv5_mobile_det", "det")
    assert (rec["model_name"], rec["model_dir"]) == ("PP-OCRv5_mobile_rec", "rec")
    assert det["engine_config"] == {"paddle_static": {"run_mode": "paddle"}}
    # the run's evaluation settings (tests/tiny_runs.py: eval defaults) are what the pipeline uses
    assert (det["limit_side_len"], det["limit_type"], det["box_thresh"], det["unclip_ratio"]) == (64, "min", 0.6, 1.5)
    assert config["use_doc_preprocessor"] is False and config["use_textline_orientation"] is False

    rec_yml = yaml.safe_load((folder / "rec" / "inference.yml").read_text(encoding="utf-8"))
    assert len(rec_yml["PostProcess"]["character_dict"]) == 436
    det_yml = yaml.safe_load((folder / "det" / "inference.yml").read_text())
    assert det_yml["PostProcess"]["box_thresh"] == 0.6


def test_paddlex_reproduces_the_workbench(exported):
    folder, _ = exported
    report = json.loads((folder / "verification.json").read_text(encoding="utf-8"))
    assert report["passed"] and report["summary"]["failed"] == 0
    stages = {c["stage"] for c in report["checks"]}
    assert {"files", "module", "pipeline", "cli"} <= stages
    whats = {(c["stage"], c["what"]) for c in report["checks"]}
    for stage in ("module", "pipeline"):
        for what in ("det probability map max abs diff", "rec probabilities max abs diff", "rec text (ours vs PaddleX)",
                     "det input max abs diff", "rec input max abs diff"):
            assert (stage, what) in whats
    # the pipeline found and read text on the ICDAR probes, and the CLI gave the very same texts
    texts = [t for exp in report["expected"].values() for t in exp["rec_texts"]]
    assert len(texts) >= 2 and all(texts)
    cli_checks = [c for c in report["checks"] if c["stage"] == "cli" and c["what"].startswith("texts")]
    assert len(cli_checks) == len(report["expected"]) and all(c["passed"] for c in cli_checks)
    maxes = report["summary"]["max"]
    assert maxes["pipeline: det input max abs diff"] == 0.0  # preprocessing is PaddleX's, exactly
    assert maxes["pipeline: rec input max abs diff"] == 0.0
    assert maxes["pipeline: rec probabilities max abs diff"] < 1e-3
    assert maxes["pipeline: det box vertices max abs diff (px)"] <= 1


def test_moved_folder_still_works(exported, shared_dir, tmp_path):
    folder, _ = exported
    moved = tmp_path / "elsewhere" / "moved_receipts"
    moved.parent.mkdir()
    shutil.move(folder, moved)  # the original location is gone while this test runs
    try:
        _check_moved(moved, shared_dir, tmp_path)
    finally:
        shutil.move(moved, folder)


def _check_moved(moved, shared_dir, tmp_path):
    expected = json.loads((moved / "verification.json").read_text(encoding="utf-8"))["expected"]

    # the README's short command, run inside the moved folder
    save = tmp_path / "out"
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("paddleocr")), "ocr", "-i", "probes/images", "--paddlex_config",
         "PaddleOCR.yaml", "--text_detection_model_name", "PP-OCRv5_mobile_det", "--text_recognition_model_name",
         "PP-OCRv5_mobile_rec", "--save_path", str(save), "--device", "cpu"],
        cwd=moved, env=offline_env(shared_dir), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, exp in expected.items():
        got = json.loads((save / f"{Path(name).stem}_res.json").read_text(encoding="utf-8"))
        assert got["rec_texts"] == exp["rec_texts"]

    # `wb export check=`: the pipeline in-process and the CLI from another directory, against the expectations
    proc = wb(["export", f"check={moved}"], shared_dir, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "behaves as at export time" in proc.stdout and "[no_network] blocked" not in proc.stderr


def test_single_module_export_logged_and_registered_in_mlflow(exported, tiny_det_run, mlflow_server, tmp_path):
    """Only det is fine-tuned; rec is a model folder the user names (here: the rec of the first export)."""
    from mlflow.tracking import MlflowClient

    from workbench.export.config import parse_args
    from workbench.export.run import run_export

    folder, _ = exported
    client = MlflowClient(mlflow_server.uri)
    # the det run as if it had been tracked: the export goes next to it and the run learns about the export
    source_run = client.create_run(client.create_experiment("tiny-det-runs")).info.run_id
    ckpt = tmp_path / "det_ckpt"
    shutil.copytree(tiny_det_run / "checkpoints" / "best", ckpt)
    meta = json.loads((ckpt / "meta.json").read_text())
    (ckpt / "meta.json").write_text(json.dumps({**meta, "mlflow_run_id": source_run}))

    out = tmp_path / "det_only"
    result = run_export(parse_args([
        f"det={ckpt}", f"rec_model_dir={folder / 'rec'}", f"out={out}", "cli=false", "num_probe_images=1",
        f"tracking_uri={mlflow_server.uri}", "register=wb-test-receipts",
    ]))
    assert result.report["passed"]
    config = yaml.safe_load((out / "PaddleOCR.yaml").read_text())
    assert config["SubModules"]["TextRecognition"]["model_dir"] == "rec"
    assert (out / "rec" / "inference.pdiparams").is_file()
    whats = {c["what"] for c in result.report["checks"]}
    assert "det probability map max abs diff" in whats and "rec probabilities max abs diff" not in whats

    run = client.get_run(result.tracking["run_id"])
    assert run.data.tags["wb.kind"] == "export" and run.data.tags["wb.export.verified"] == "true"
    assert run.data.tags["wb.export.det_run"] == source_run and result.tracking["experiment"] == "tiny-det-runs"
    assert client.get_run(source_run).data.tags["wb.exported.det_only"] == run.info.run_id
    assert run.data.metrics["verify/failed"] == 0
    files = {a.path for a in client.list_artifacts(run.info.run_id, "export")}
    assert {"export/PaddleOCR.yaml", "export/verification.json", "export/det", "export/rec"} <= files
    version = client.get_model_version("wb-test-receipts", result.tracking["version"])
    assert version.run_id == run.info.run_id and version.source.endswith("/export")


def test_mismatch_fails_the_export_and_keeps_the_report(exported, tiny_rec_run, tmp_path):
    """Impossible tolerances make PaddleX "disagree": nothing is published, the report says where."""
    from workbench.export.config import parse_args
    from workbench.export.run import run_export

    folder, _ = exported
    out = tmp_path / "strict"
    with pytest.raises(ExportError) as e:
        run_export(parse_args([
            f"rec={tiny_rec_run}", f"det_model_dir={folder / 'det'}", f"out={out}", "cli=false", "num_probe_crops=2",
            "tolerances.rec_prob_atol=0", "tolerances.noise_factor=0",
        ]))
    assert "rec probabilities max abs diff" in str(e.value)
    assert not out.exists()
    failed = tmp_path / "strict.FAILED"
    assert str(failed / "verification.md") in str(e.value)
    assert (failed / "verification.md").read_text().startswith("# Export verification: FAILED")
