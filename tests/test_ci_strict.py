"""The suite cannot pass by skipping: under CI=true a skip (in a test, a fixture or at import) is a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SKIPPING = '''
import pytest
from ci_strict import require

def test_needs_missing_data(tmp_path):
    require(tmp_path / "no_such_folder", "real data")

def test_needs_missing_package():
    require("no_such_package_xyz")

def test_plain_skip():
    pytest.skip("no reason to run")

def test_runs():
    assert require("json").dumps(1) == "1"
'''

IMPORT_SKIP = '''
import pytest
mod = pytest.importorskip("no_such_package_xyz")

def test_x():
    pass
'''


def _pytest(folder: Path, ci: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "ci_strict", "-p", "no:cacheprovider",
                           "--rootdir", str(folder), str(folder)], capture_output=True, text=True, env=env,
                          cwd=folder, timeout=120)


def test_skips_fail_under_ci_and_stay_skips_locally(tmp_path):
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    local = _pytest(tmp_path, ci=False)
    assert local.returncode == 0 and "1 passed, 3 skipped" in local.stdout, local.stdout[-2000:]
    ci = _pytest(tmp_path, ci=True)
    assert ci.returncode == 1 and "3 failed, 1 passed" in ci.stdout, ci.stdout[-3000:]
    assert "CI=true" in ci.stdout and "no_such_folder not found (real data)" in ci.stdout


def test_a_module_skipped_at_import_fails_under_ci(tmp_path):
    (tmp_path / "test_import_skip.py").write_text(IMPORT_SKIP)
    local = _pytest(tmp_path, ci=False)
    assert local.returncode in (0, 5) and "1 skipped" in local.stdout, local.stdout[-2000:]  # 5: nothing ran
    ci = _pytest(tmp_path, ci=True)
    assert ci.returncode != 0 and "skipped at collection" in ci.stdout, ci.stdout[-3000:]
