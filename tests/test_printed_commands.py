"""Commands `wb` prints work when pasted: the baseline evaluation `wb weights import` prints, run exactly as
printed (only the `data.val=...` placeholder filled in), offline, with an empty weights cache: it can only work by
reading the model name and the dictionary written beside the imported weights."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import cli

PROJECT_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def printed_command(printed: str, prefix: str) -> list[str]:
    (line,) = [ln.strip() for ln in printed.splitlines() if ln.strip().startswith(prefix)]
    return shlex.split(line[len(prefix):].strip())


def small_rec_set(data_dir: Path, out: Path, n: int = 8) -> Path:
    """The first ``n`` SROIE line crops (upper-case labels) as a label file of their own."""
    src = data_dir / "sroie_rec"
    lines = (src / "label.txt").read_text(encoding="utf-8").splitlines()[:n]
    for line in lines:
        rel = line.split("\t", 1)[0]
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, out / rel)
    (out / "label.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / "label.txt"


def test_the_baseline_command_printed_by_weights_import_runs(stock, data_dir, shared_dir, tmp_path, monkeypatch,
                                                             capsys):
    monkeypatch.setenv("WB_CACHE_DIR", str(tmp_path / "import_cache"))
    weights = tmp_path / "weights" / "v5_rec.pdparams"
    assert cli.main(["weights", "import", str(stock / "PP-OCRv5_mobile_rec.onnx"), "--model", "PP-OCRv5_mobile_rec",
                     "--dict", str(stock / "ppocrv5_dict.txt"), "--out", str(weights), "--calib-count", "4",
                     "--probe-count", "2"]) == 0
    argv = printed_command(capsys.readouterr().out, "baseline:")
    assert argv[:2] == ["wb", "eval"] and "data.val=..." in argv, argv
    val = small_rec_set(data_dir, tmp_path / "val")
    argv = [f"data.val={val}" if a == "data.val=..." else a for a in argv]

    work = tmp_path / "project"
    work.mkdir()
    env = dict(os.environ)
    env.update(PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), str(shared_dir / "tools" / "no_network")]),
               WB_OFFLINE="1", WB_CACHE_DIR=str(tmp_path / "empty_cache"),  # no official dictionary to fall back on
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", *argv[1:]], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "[no_network] blocked" not in proc.stderr
    (metrics_file,) = work.glob("runs/rec/eval_*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    # the stock model reads the upper-case SROIE lines well when case is ignored
    assert metrics["acc_honest_nocase"] >= 0.5, metrics
    summary = json.loads((metrics_file.parent / "report" / "summary.json").read_text())
    assert summary["info"]["weights"] == str(weights)
    assert "PP-OCRv5_mobile_rec on" in proc.stdout
