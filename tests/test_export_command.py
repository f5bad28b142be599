"""`wb export` arguments: typed key=value, combinations that cannot work are refused before anything is written."""

from __future__ import annotations

import pytest

from workbench.export.config import parse_args
from workbench.export.run import run_export
from workbench.errors import ConfigError, ExportError


def test_command_line_is_typed(tmp_path):
    cfg = parse_args(["det=a", "box_thresh=0.5", "probe_images=[x.jpg,y.jpg]", "tolerances.det_map_atol=0.01"])
    assert cfg.box_thresh == 0.5 and cfg.probe_images == ["x.jpg", "y.jpg"] and cfg.tolerances.det_map_atol == 0.01
    assert parse_args(["tracking=off"]).tracking == "off" and parse_args(["tracking=on"]).tracking == "on"
    with pytest.raises(ConfigError, match="box_tresh"):
        parse_args(["box_tresh=0.5"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_args(["det", "run1"])
    with pytest.raises(ConfigError, match="needs det=.* and/or rec="):
        run_export(parse_args([f"out={tmp_path / 'x'}"]))
    with pytest.raises(ConfigError, match="not both"):
        run_export(parse_args(["rec=a", "det_model_dir=d", "det_model_name=PP-OCRv5_mobile_det"]))


def test_existing_output_is_not_overwritten_unless_asked(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(ExportError, match="exists"):
        run_export(parse_args(["det=somewhere", f"out={tmp_path / 'taken'}"]))


def test_mlflow_metric_keys_are_plain():
    from workbench.export.run import _metric_key

    assert _metric_key("pipeline: det box vertices max abs diff (px)") == "pipeline_det_box_vertices_max_abs_diff_px"


def _wb(args, cwd):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _last_line(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()[-1]


def test_a_model_name_paddlex_does_not_know_is_one_line(tmp_path):
    """PP-OCRv9 does not exist in the installed PaddleX: said before anything is built, with the closest names."""
    proc = _wb(["export", "rec=nowhere", "det_model_name=PP-OCRv9_mobile_det", f"out={tmp_path / 'x'}"], tmp_path)
    line = _last_line(proc)
    assert proc.returncode == 2 and line.startswith("wb export: error: det_model_name: the installed PaddleX 3.")
    assert "no model named 'PP-OCRv9_mobile_det'" in line and "PP-OCRv5_mobile_det" in line
    folder = tmp_path / "rec_folder"  # a model folder whose inference.yml names an unknown model
    folder.mkdir()
    (folder / "inference.yml").write_text("Global:\n  model_name: PP-OCRv9_server_rec\n")
    proc = _wb(["export", "det=nowhere", f"rec_model_dir={folder}", f"out={tmp_path / 'y'}"], tmp_path)
    line = _last_line(proc)
    assert proc.returncode == 2 and f"rec_model_dir={folder}" in line and "PP-OCRv9_server_rec" in line
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_missing_serving_extra_is_one_line(tmp_path, monkeypatch):
    """Without PaddleX's serving extra `wb export` stops before any work, naming the extra and the way out."""
    from workbench.export.verify import serving

    assert serving.missing_serving_packages() == []  # the test environment has `.[serve]` (.ci/run installs it)
    monkeypatch.setattr(serving, "missing_serving_packages", lambda: ["fastapi", "uvicorn"])
    with pytest.raises(ExportError) as e:
        run_export(parse_args(["rec=nowhere", f"out={tmp_path / 'x'}"]))
    text = str(e.value)
    assert "\n" not in text and "serving extra (missing: fastapi, uvicorn)" in text
    assert 'pip install -e ".[serve]"' in text and "serve=false" in text and not (tmp_path / "x").exists()
    with pytest.raises(ExportError, match="nowhere"):  # serve=false: the export goes on (here: to the bad ref)
        run_export(parse_args(["rec=nowhere", f"out={tmp_path / 'x'}", "serve=false"]))


def test_yaml_words_stay_words_for_text_keys():
    """YAML reads ``off`` as a boolean; ``wb export tracking=off`` (a text key) must still mean "off"."""
    from workbench.export.config import parse_args

    assert parse_args(["det=a", "tracking=off"]).tracking == "off"
    assert parse_args(["det=a", "tracking=on"]).tracking == "on"
    assert parse_args(["det=a", "cli=false"]).cli is False  # boolean keys still read booleans
