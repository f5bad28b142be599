"""Which samples an export is verified on: the run's validation set as recorded in its config.yaml -- for a demo
run (no data.train / data.val) the generated demo validation set."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import yaml

from workbench.export.verify import validation_files


def _ckpt(data: dict):
    return SimpleNamespace(config_yaml=yaml.safe_dump({"data": data}), path=Path("ckpt"))


def test_the_recorded_validation_files(tmp_path):
    val = tmp_path / "val.txt"
    val.write_text("a.png\tA\n")
    assert validation_files(_ckpt({"train": "t.txt", "val": str(val), "root": None})) == ([val], None)
    assert validation_files(_ckpt({"train": "t.txt", "val": [str(val), str(tmp_path / "gone.txt")]}))[0] == [val]


def test_a_demo_run_is_verified_on_its_demo_validation_set(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "val.txt").write_text("a.png\tA\n")
    files, _ = validation_files(_ckpt({"train": None, "val": None, "demo": {"dir": str(tmp_path / "demo")}}))
    assert files == [tmp_path / "demo" / "val.txt"]
    # with the user's own training data and no val there is nothing to fall back on
    assert validation_files(_ckpt({"train": "t.txt", "val": None, "demo": {"dir": str(tmp_path / "demo")}}))[0] == []


def test_recorded_validation_files_not_found_from_here_are_named(tmp_path, monkeypatch):
    """A run trained elsewhere records a relative data.val; exporting it from another directory names the file
    and the directory it was looked for from, instead of saying nothing was recorded."""
    import pytest

    from workbench.errors import ExportError
    from workbench.export.verify.probes import select_probes

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExportError, match=r"not found from .*: data/receipts/val\.txt -- run wb export from"):
        select_probes(rec_checkpoint=_ckpt({"train": "t.txt", "val": "data/receipts/val.txt"}))
    with pytest.raises(ExportError, match="no validation crops recorded"):
        select_probes(rec_checkpoint=_ckpt({"train": "t.txt", "val": None}))
