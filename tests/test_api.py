"""The Python API: reachable from `import workbench`, which stays cheap; settings typed like the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import workbench
from workbench import api
from workbench.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_import_workbench_loads_no_heavy_package():
    code = ("import sys, workbench; heavy = [m for m in ('paddle', 'mlflow', 'hydra', 'omegaconf', 'cv2', 'numpy') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": ""}).stdout.strip()
    assert out == "[]"


def test_the_api_is_reachable_from_the_package():
    for name in api.__all__:
        assert getattr(workbench, name) is getattr(api, name)
    assert set(api.__all__) <= set(dir(workbench))
    with pytest.raises(AttributeError):
        workbench.no_such_function  # noqa: B018


def test_keyword_settings_are_typed(tmp_path):
    with pytest.raises(ConfigError, match="box_tresh"):
        workbench.export_pipeline(det="somewhere", box_tresh=0.5)
    with pytest.raises(ConfigError, match="dett"):
        workbench.analyze_pipeline(data="x.txt", dett="stock")


def test_compose_gives_the_typed_recipe():
    cfg = workbench.compose(["recipe=det_finetune", "trainer.epochs=3"])
    assert cfg.task == "det" and cfg.trainer.epochs == 3 and cfg.eval.select_metric == "hmean"
    with pytest.raises(ConfigError):
        workbench.compose(["recipe=det_finetune", "trainer.epochz=3"])
