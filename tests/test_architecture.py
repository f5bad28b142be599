"""The dependency rule of docs/architecture.md, enforced: `lint-imports` checks the contracts in pyproject.toml
(``[tool.importlinter]``: packages depend downwards only; only workbench.tracking imports mlflow). A broken
contract fails with import-linter's own report, which names every import chain that breaks it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def lint_imports(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"import-linter is not installed ({exe}); it is in the [test] extra")
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([str(exe), "--no-cache", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_import_contracts_are_kept():
    proc = lint_imports()
    assert proc.returncode == 0, "import contracts broken (docs/architecture.md, 'Dependency rule'):\n" + \
        proc.stdout[-8000:] + proc.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in proc.stdout


def test_a_broken_contract_is_reported(tmp_path):
    """The check can fail: a contract the code does not keep (the tasks below the engine: they implement the
    engine's Task interface, so they import it) is reported as broken, naming the packages."""
    config = tmp_path / "contracts.toml"
    config.write_text('''
[tool.importlinter]
root_package = "workbench"

[[tool.importlinter.contracts]]
id = "inverted"
name = "tasks below engine (wrong on purpose)"
type = "layers"
layers = ["workbench.engine", "workbench.tasks"]
''')
    proc = lint_imports(str(config))
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout and "workbench.tasks" in proc.stdout and "workbench.engine" in proc.stdout
