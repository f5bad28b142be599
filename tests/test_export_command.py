"""`wb export` arguments: typed key=value, combinations that cannot work are refused before anything is written."""

from __future__ import annotations

import pytest

from workbench.export.config import parse_args
from workbench.export.run import run_export
from workbench.errors import ConfigError, ExportError


def test_command_line_is_typed(tmp_path):
    cfg = parse_args(["det=a", "box_thresh=0.5", "probe_images=[x.jpg,y.jpg]", "tolerances.det_map_atol=0.01"])
    assert cfg.box_thresh == 0.5 and cfg.probe_images == ["x.jpg", "y.jpg"] and cfg.tolerances.det_map_atol == 0.01
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


def test_yaml_words_stay_words_for_text_keys():
    """YAML reads ``off`` as a boolean; ``wb export tracking=off`` (a text key) must still mean "off"."""
    from workbench.export.config import parse_args

    assert parse_args(["det=a", "tracking=off"]).tracking == "off"
    assert parse_args(["det=a", "tracking=on"]).tracking == "on"
    assert parse_args(["det=a", "cli=false"]).cli is False  # boolean keys still read booleans
