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

from workbench.errors import ExportError, WorkbenchError
from workbench.export import pipeline_yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def offline_env(shared_dir) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), str(shared_dir / "tools" / "no_network")])
    env.pop("PADDLE_PDX_ENABLE_MKLDNN_BYDEFAULT", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def wb(args, shared_dir, cwd, timeout=1800):
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
    assert expected_cmd in proc.stdout  # the YAML's model folders are absolute: nothing more is needed
    readme = (folder / "README.md").read_text()
    where = folder.resolve()
    assert (f"paddleocr ocr -i some.jpg --paddlex_config {where}/PaddleOCR.yaml --text_detection_model_name "
            "PP-OCRv5_mobile_det --text_recognition_model_name PP-OCRv5_mobile_rec") in readme
    assert "from paddleocr import PaddleOCR" in readme and "create_pipeline" in readme
    assert f"paddlex --serve --pipeline {where}/PaddleOCR.yaml --host 0.0.0.0 --port 8080" in readme
    assert "curl -s -X POST http://localhost:8080/ocr" in readme
    assert ".tmp-" not in readme + (folder / "PaddleOCR.yaml").read_text()  # the work folder is named nowhere

    config = yaml.safe_load((folder / "PaddleOCR.yaml").read_text())
    det, rec = config["SubModules"]["TextDetection"], config["SubModules"]["TextRecognition"]
    assert (det["model_name"], det["model_dir"]) == ("PP-OCRv5_mobile_det", str(where / "det"))
    assert (rec["model_name"], rec["model_dir"]) == ("PP-OCRv5_mobile_rec", str(where / "rec"))
    # the det graph upsamples without nearest_interp: PaddleX's default oneDNN mode ran it in the verification
    assert "engine_config" not in det and not pipeline_yaml.graph_needs_paddle_run_mode(where / "det")
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
    assert {"files", "module", "pipeline", "cli", "serve"} <= stages
    whats = {(c["stage"], c["what"]) for c in report["checks"]}
    for stage in ("module", "pipeline"):
        for what in ("det probability map max abs diff", "rec probabilities max abs diff", "rec text (ours vs PaddleX)",
                     "det input max abs diff", "rec input max abs diff"):
            assert (stage, what) in whats
    # the pipeline found and read text on the ICDAR probes, and the CLI gave the very same texts
    texts = [t for exp in report["expected"].values() for t in exp["rec_texts"]]
    assert len(texts) >= 2 and all(texts)
    for stage in ("cli", "serve"):  # `paddleocr ocr` and `POST /ocr` of `paddlex --serve`, both from elsewhere
        checks = [c for c in report["checks"] if c["stage"] == stage and c["what"].startswith("texts")]
        assert len(checks) == len(report["expected"]) and all(c["passed"] for c in checks), stage
    assert report["facts"]["serve_command"].startswith("paddlex --serve --pipeline <export folder>/PaddleOCR.yaml")
    maxes = report["summary"]["max"]
    assert maxes["pipeline: det input max abs diff"] == 0.0  # preprocessing is PaddleX's, exactly
    assert maxes["pipeline: rec input max abs diff"] == 0.0
    assert maxes["pipeline: rec probabilities max abs diff"] < 1e-3
    assert maxes["pipeline: det box vertices max abs diff (px)"] <= 1


def test_the_readme_curl_example_reads_the_served_pipeline(exported, shared_dir):
    """The README's `curl` lines, run by bash against `paddlex --serve` of the export, print the pipeline's texts."""
    from workbench.export.readme import curl_example
    from workbench.export.verify.serving import ServedPipeline

    folder, _ = exported
    expected = json.loads((folder / "verification.json").read_text(encoding="utf-8"))["expected"]
    name = next(iter(expected))
    assert shutil.which("curl") and shutil.which("base64"), "the README's example needs curl and base64"
    with ServedPipeline(folder / "PaddleOCR.yaml", env=offline_env(shared_dir)) as server:
        script = "\n".join(curl_example(server.url, str(folder / "probes" / "images" / name)))
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == repr(expected[name]["rec_texts"])


def test_moved_folder_is_repointed_and_still_works(exported, shared_dir, tmp_path):
    folder, _ = exported
    moved = tmp_path / "elsewhere" / "moved_receipts"
    moved.parent.mkdir()
    shutil.move(folder, moved)  # the original location is gone while this test runs
    try:
        _check_moved(moved, shared_dir, tmp_path)
    finally:
        shutil.move(moved, folder)
        assert wb(["export", f"repoint={folder}"], shared_dir, tmp_path).returncode == 0


def _check_moved(moved, shared_dir, tmp_path):
    expected = json.loads((moved / "verification.json").read_text(encoding="utf-8"))["expected"]

    # before re-pointing: the YAML names the old place; `check=` says what to run, in one line
    proc = wb(["export", f"check={moved}", "cli=false", "serve=false"], shared_dir, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"wb export repoint={moved}" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

    proc = wb(["export", f"repoint={moved}"], shared_dir, tmp_path)
    assert proc.returncode == 0 and f"{moved}/det" in proc.stdout, proc.stderr[-3000:]

    # the README's command, from a directory that is neither the folder nor its parent: the YAML is all it needs
    save, cwd = tmp_path / "out", tmp_path / "somewhere_else"
    cwd.mkdir()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("paddleocr")), "ocr", "-i", str(moved / "probes" / "images"),
         "--paddlex_config", str(moved / "PaddleOCR.yaml"), "--text_detection_model_name", "PP-OCRv5_mobile_det",
         "--text_recognition_model_name", "PP-OCRv5_mobile_rec", "--save_path", str(save), "--device", "cpu"],
        cwd=cwd, env=offline_env(shared_dir), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, exp in expected.items():
        got = json.loads((save / f"{Path(name).stem}_res.json").read_text(encoding="utf-8"))
        assert got["rec_texts"] == exp["rec_texts"]

    # `wb export check=`: the pipeline in-process, the CLI and the served pipeline from another directory
    proc = wb(["export", f"check={moved}"], shared_dir, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "behaves as at export time" in proc.stdout and "[no_network] blocked" not in proc.stderr
    assert "| serve |" in proc.stdout


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
        f"det={ckpt}", f"rec_model_dir={folder / 'rec'}", f"out={out}", "cli=false", "serve=false",
        "num_probe_images=1",
        f"tracking_uri={mlflow_server.uri}", "register=wb-test-receipts",
    ]))
    assert result.report["passed"]
    config = yaml.safe_load((out / "PaddleOCR.yaml").read_text())
    assert config["SubModules"]["TextRecognition"]["model_dir"] == str(out.resolve() / "rec")
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
    # the version says where it came from: the det training run and checkpoint, the report, what rec is
    t = version.tags
    assert t["wb.det_run"] == source_run and t["wb.det_checkpoint"] == str(ckpt.resolve())
    assert (t["wb.det_module"], t["wb.rec_module"], t["wb.rec_model"]) == ("fine-tuned", "folder", "PP-OCRv5_mobile_rec")
    assert t["wb.export_run"] == run.info.run_id and t["wb.verified"] == "true"
    assert t["wb.verification"] == f"runs:/{run.info.run_id}/export/verification.md"
    assert "export/verification.md" in {a.path for a in client.list_artifacts(run.info.run_id, "export")}


def test_registered_versions_are_sources_everywhere(exported, shared_dir, mlflow_server, tmp_path):
    """Two tracked rec fine-tunes, each exported with register=: `models:/<name>/<version>` and `@alias` then name
    them in `wb eval`, `wb export`, `wb compare` and `wb analyze` (one resolver: workbench.weights.refs)."""
    import workbench
    from tiny_runs import rec_config, train
    from workbench.analysis.pipeline import LoadOptions, load_pipeline
    from workbench.errors import WeightsError
    from workbench.export.config import parse_args
    from workbench.export.pipeline_yaml import stale_model_dirs
    from workbench.export.registered import registered_export
    from workbench.export.run import run_export
    from workbench.export.verify import recheck
    from workbench.weights import refs

    folder, _ = exported
    uri, name = mlflow_server.uri, "wb-registry-e2e"
    runs = []
    for i, epochs in enumerate((1, 2)):
        cfg = rec_config(shared_dir, tmp_path / f"run{i}", trainer__epochs=epochs)
        cfg.tracking.enabled, cfg.tracking.tracking_uri, cfg.tracking.experiment = True, uri, "registry-e2e"
        runs.append(train(cfg))
    for i, run_dir in enumerate(runs):
        result = run_export(parse_args([
            f"rec={run_dir}", f"det_model_dir={folder / 'det'}", f"out={tmp_path / f'export{i}'}", "cli=false",
            "serve=false", "num_probe_crops=2", f"register={name}", *(["alias=candidate"] if i else [])]))
        assert result.tracking["version"] == str(i + 1)
    run_ids = [json.loads((r / "mlflow_run.json").read_text())["run_id"] for r in runs]

    # the resolver: a version (or an alias) → the checkpoint it was exported from (the exact checkpoint version
    # `best` pointed at), and its training run
    w = refs.resolve(f"models:/{name}/1", tracking_uri=uri, task="rec")
    assert w.kind is refs.RefKind.REGISTERED and w.checkpoint_dir == (runs[0] / "checkpoints" / "best").resolve()
    assert w.run_id == run_ids[0] and w.model_name == "rec_tiny" and w.weights_file.is_file()
    assert refs.resolve(f"models:/{name}@candidate", tracking_uri=uri).checkpoint_dir == (
        runs[1] / "checkpoints" / "best").resolve()
    with pytest.raises(WeightsError, match="model folder copied in at export"):
        refs.resolve(f"models:/{name}/1", tracking_uri=uri, task="det")
    with pytest.raises(WorkbenchError, match=f"has versions 1, 2 and aliases @candidate"):
        refs.resolve(f"models:/{name}/7", tracking_uri=uri, task="rec")

    # wb eval: the registered rec evaluates as its best checkpoint did in training
    cfg = rec_config(shared_dir, tmp_path / "eval")
    cfg.checkpoint, cfg.tracking.tracking_uri = f"models:/{name}/1", uri
    ev = workbench.evaluate(cfg)
    best = json.loads((runs[0] / "checkpoints" / "best" / "state.json").read_text())["best_metric"]
    assert ev["metrics"]["acc"] == pytest.approx(best, abs=1e-9)

    # wb compare: two registered versions → their training runs' evaluations, sample by sample
    c = workbench.compare(f"models:/{name}/1", f"models:/{name}@candidate", tracking_uri=uri, out=tmp_path / "cmp")
    assert c.a.ref == f"models:/{name}/1" and c.b.ref == f"models:/{name}@candidate"
    assert c.a.records and c.b.records and {r["name"] for r in c.metrics} >= {"acc"}

    # wb export from a registered version: the same weights again, verified
    again = run_export(parse_args([f"rec=models:/{name}@candidate", f"det_model_dir={folder / 'det'}",
                                   f"out={tmp_path / 'again'}", "cli=false", "serve=false", "num_probe_crops=2",
                                   f"tracking_uri={uri}", "tracking=off"]))
    assert again.report["passed"]
    info = json.loads((tmp_path / "again" / "export_info.json").read_text())
    assert info["exported"]["rec"]["checkpoint"] == str((runs[1] / "checkpoints" / "best").resolve())

    # wb analyze pipeline=models:/...: the registered pipeline itself, downloaded and re-pointed
    local = registered_export(f"models:/{name}/1", uri)
    assert stale_model_dirs(local) == [] and (local / "rec" / "inference.pdiparams").is_file()
    assert recheck(local, cli=False, serve=False).passed  # the download behaves as the export did
    runner = load_pipeline(None, None, pipeline=f"models:/{name}/1", options=LoadOptions(tracking_uri=uri))
    assert runner.config["SubModules"]["TextRecognition"]["model_dir"] == str(local / "rec")


def test_mismatch_fails_the_export_and_keeps_the_report(exported, tiny_rec_run, tmp_path):
    """Impossible tolerances make PaddleX "disagree": nothing is published, the report says where."""
    from workbench.export.config import parse_args
    from workbench.export.run import run_export

    folder, _ = exported
    out = tmp_path / "strict"
    with pytest.raises(ExportError) as e:
        run_export(parse_args([
            f"rec={tiny_rec_run}", f"det_model_dir={folder / 'det'}", f"out={out}", "cli=false", "serve=false",
            "num_probe_crops=2",
            "tolerances.rec_prob_atol=0", "tolerances.noise_factor=0",
        ]))
    assert "rec probabilities max abs diff" in str(e.value)
    assert not out.exists()
    failed = tmp_path / "strict.FAILED"
    assert str(failed / "verification.md") in str(e.value)
    assert (failed / "verification.md").read_text().startswith("# Export verification: FAILED")
