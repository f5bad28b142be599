"""The ``serve`` stage: the export served over HTTP by PaddleX's own serving app, as the pipeline document's main
deployment route describes (``paddlex --serve --pipeline PaddleOCR.yaml``, ``POST /ocr``).

The server is started in a subprocess on a free loopback port, from a directory that is not the export folder
(the YAML's absolute ``model_dir`` values must be all it needs), each probe image is sent as base64 with
``fileType: 1``, and the texts and boxes of ``result.ocrResults[0].prunedResult`` must equal the in-process
pipeline's (which the ``pipeline`` stage checked against the workbench's own predictions). The server is stopped
afterwards, also when something fails.

``paddlex --serve`` needs PaddleX's ``serving`` extra (FastAPI, uvicorn, ...): ``pip install -e ".[serve]"``.
Without it, :func:`missing_serving_packages` names what is missing and ``wb export`` says so in one line.

Part of ``workbench.export.verify`` (see its docstring)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from workbench.errors import ExportError

ENDPOINT = "/ocr"
SERVE_HINT = 'pip install -e ".[serve]" (PaddleX\'s serving extra)'


def missing_serving_packages() -> list[str]:
    """The packages of PaddleX's ``serving`` extra that are not installed (``[]``: ``paddlex --serve`` can run)."""
    try:
        from paddlex.utils.deps import EXTRAS, is_dep_available
    except ImportError:
        return ["paddlex"]
    return [dep for dep in EXTRAS["serving"] if not is_dep_available(dep)]


def require_serving(what: str = "the serving check") -> None:
    """A one-line :class:`ExportError` when ``paddlex --serve`` cannot run here."""
    missing = missing_serving_packages()
    if missing:
        raise ExportError(f"{what} needs PaddleX's serving extra (missing: {', '.join(missing)}): {SERVE_HINT}, "
                          "or pass serve=false")


def serve_command(yaml_path: str, *, host: str = "0.0.0.0", port: int = 8080, device: Optional[str] = None) -> list[str]:
    """The command that serves a pipeline YAML (what the export README prints)."""
    cmd = ["paddlex", "--serve", "--pipeline", yaml_path, "--host", host, "--port", str(port)]
    return cmd + (["--device", device] if device else [])


def _paddlex_executable() -> list[str]:
    script = Path(sys.executable).with_name("paddlex")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "paddlex"]


def _die_with_parent() -> None:
    """In the server process (Linux): get SIGTERM when the process that started it dies, so a killed export
    (a timeout, Ctrl-C twice) never leaves a server behind."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - best effort; stop() is the normal way out
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedPipeline:
    """``paddlex --serve`` on ``yaml_path`` at ``http://127.0.0.1:<free port>`` while the ``with`` block runs."""

    def __init__(self, yaml_path: str | Path, *, device: str = "cpu", env: Optional[dict] = None,
                 start_timeout: float = 600.0):
        self.yaml_path = str(Path(yaml_path).resolve())
        self.device, self.env, self.start_timeout = device, env, start_timeout
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = serve_command(self.yaml_path, host="127.0.0.1", port=self.port, device=device)
        self.proc: Optional[subprocess.Popen] = None
        self._cwd = tempfile.TemporaryDirectory(prefix="wb-serve-")
        self._log_path = Path(self._cwd.name) / "server.log"

    def __enter__(self) -> "ServedPipeline":
        log = open(self._log_path, "wb")
        try:
            self.proc = subprocess.Popen(_paddlex_executable() + self.command[1:], cwd=self._cwd.name, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                output = self.output()
                self.stop()
                raise ExportError(f"`{' '.join(self.command)}` exited with code {self.proc.returncode} before "
                                  f"serving:\n{output[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        output = self.output()
        self.stop()
        raise ExportError(f"`{' '.join(self.command)}` did not answer /health within {self.start_timeout:.0f} s:\n"
                          f"{output[-3000:]}")

    def __exit__(self, *exc) -> None:
        self.stop()

    def output(self) -> str:
        try:
            return self._log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self._cwd.cleanup()

    def ocr(self, image: str | Path, timeout: float = 300.0) -> dict:
        """``POST /ocr`` with the image as base64 (``fileType`` 1: an image); returns the first ``prunedResult``."""
        body = json.dumps({"file": base64.b64encode(Path(image).read_bytes()).decode("ascii"), "fileType": 1,
                           "visualize": False}).encode("utf-8")
        request = urllib.request.Request(self.url + ENDPOINT, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                answer = json.loads(r.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", errors="replace")[:1000]
            raise ExportError(f"POST {ENDPOINT} ({Path(image).name}): HTTP {exc.code}: {detail}") from None
        if answer.get("errorCode") != 0:
            raise ExportError(f"POST {ENDPOINT} ({Path(image).name}): errorCode {answer.get('errorCode')}: "
                              f"{answer.get('errorMsg')}")
        results = answer["result"]["ocrResults"]
        if len(results) != 1:
            raise ExportError(f"POST {ENDPOINT} ({Path(image).name}): {len(results)} results for one image")
        return results[0]["prunedResult"]


def run_served(folder: Path, images: list[Path], device: str, env: Optional[dict] = None) -> tuple[dict, list[str]]:
    """Serve ``folder``'s pipeline YAML, send every image, stop; returns ``({image name: result}, command)``."""
    from workbench.export.pipeline_yaml import PIPELINE_YAML

    with ServedPipeline(Path(folder) / PIPELINE_YAML, device=device, env=env) as server:
        return {p.name: server.ocr(p) for p in images}, server.command
