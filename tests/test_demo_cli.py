"""`wb train recipe=...` with no data: the built-in demo set, the demo model and the demo values, through the real
command line (a few samples and one epoch here; `benchmarks/demo_learning.py` measures that the demo learns)."""

from __future__ import annotations

import subprocess
import sys

import yaml


def _train(tmp_path, recipe: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "workbench.cli", "train", f"recipe={recipe}", "tracking=off",
            f"data.demo.dir={tmp_path / 'demo'}", "data.num_workers=0", "trainer.progress_bar=false",
            f"hydra.run.dir={run}", *extra]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    config = yaml.safe_load((run / "checkpoints" / "latest" / "config.yaml").read_text())
    return r, config


def test_rec_demo_trains_the_demo_model_with_the_demo_values(tmp_path):
    r, cfg = _train(tmp_path, "rec_finetune", "data.demo.n_train=24", "data.demo.n_val=8", "trainer.epochs=1")
    log = r.stdout + r.stderr
    assert "training rec_demo_cnn from scratch" in log
    assert "No ccache found" not in log  # `import paddle`'s warning on machines without ccache: dropped by the CLI
    assert cfg["model"]["name"] == "rec_demo_cnn"
    assert cfg["data"]["image_shape"] == [3, 48, 160] and cfg["data"]["batch_size"] == 16
    assert cfg["data"]["augment"]["concat_p"] == 0.0
    # the command line's epochs win over the demo's
    assert cfg["trainer"]["epochs"] == 1 and "trainer.epochs" in log
    assert (tmp_path / "run" / "checkpoints" / "best" / "model.pdparams").is_file()


def test_det_demo_trains_the_demo_model_with_the_demo_values(tmp_path):
    r, cfg = _train(tmp_path, "det_finetune", "data.demo.n_train=4", "data.demo.n_val=2", "trainer.epochs=1",
                    "data.batch_size=2")
    assert cfg["model"]["name"] == "det_tiny"
    assert cfg["data"]["augment"]["crop_size"] == [320, 320]
    assert cfg["data"]["batch_size"] == 2  # given on the command line
    assert cfg["trainer"]["epochs"] == 1
