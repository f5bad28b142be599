"""The ``cli`` stage: the ``paddleocr ocr`` command an export's README prints, run in a subprocess from another
directory.

Part of ``workbench.export.verify`` (see its docstring)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from workbench.errors import ExportError


def paddleocr_command(config: dict, *, yaml_path: str, image: str, det_dir: Optional[str] = None,
                      rec_dir: Optional[str] = None, model_dirs: Optional[dict] = None,
                      extra: Iterable[str] = ()) -> list[str]:
    """The ``paddleocr ocr`` command for a pipeline YAML: the model-name flags are required, or paddleocr
    replaces the YAML's models with its PP-OCRv6 defaults (#15707). ``model_dirs``: section → folder for the
    ``--<module>_model_dir`` flags (``det_dir`` / ``rec_dir``: the detection / recognition ones)."""
    from workbench.export.pipeline_yaml import PADDLEOCR_PREFIX, module_names

    names = module_names(config)
    cmd = ["paddleocr", "ocr", "-i", image, "--paddlex_config", yaml_path,
           "--text_detection_model_name", names["det"], "--text_recognition_model_name", names["rec"]]
    dirs = dict(model_dirs or {})
    if det_dir:
        dirs["TextDetection"] = det_dir
    if rec_dir:
        dirs["TextRecognition"] = rec_dir
    for section in PADDLEOCR_PREFIX:  # paddleocr's own order: detection and recognition first
        if dirs.get(section):
            cmd += [f"--{PADDLEOCR_PREFIX[section]}_model_dir", dirs[section]]
    return cmd + list(extra)


def _paddleocr_executable() -> list[str]:
    script = Path(sys.executable).with_name("paddleocr")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "paddleocr"]


def subprocess_env() -> dict:
    """Environment for PaddleX subprocesses: a local font so drawing results never downloads one."""
    env = dict(os.environ)
    if not env.get("PADDLE_PDX_LOCAL_FONT_FILE_PATH"):
        font = local_font()
        if font:
            env["PADDLE_PDX_LOCAL_FONT_FILE_PATH"] = font
    return env


def local_font() -> Optional[str]:
    try:
        import matplotlib

        f = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return str(f) if f.is_file() else None
    except ImportError:
        return None


def run_cli(folder: Path, images: list[Path], device: str, *, timeout: float = 600) -> tuple[dict, list[str], str]:
    """``paddleocr ocr`` on the probe images as the README says, run from a directory that is not the export
    folder, with only ``--paddlex_config <folder>/PaddleOCR.yaml`` and the model-name flags: the YAML's absolute
    ``model_dir`` values must be all it needs. Returns ``{image name: result}``, the command and its output."""
    from workbench.export.pipeline_yaml import PIPELINE_YAML, load_pipeline_config

    folder = folder.resolve()
    config = load_pipeline_config(folder / PIPELINE_YAML, resolve_dirs=False)
    images_dir = images[0].parent
    if any(p.parent != images_dir for p in images):
        raise ExportError("verification: the CLI probe images must share one folder")
    with tempfile.TemporaryDirectory(prefix="wb-cli-") as save:
        cwd = Path(save) / "elsewhere"
        cwd.mkdir()
        cmd = paddleocr_command(config, yaml_path=str(folder / PIPELINE_YAML), image=str(images_dir.resolve()),
                                extra=["--save_path", str(Path(save) / "out"), "--device", device])
        proc = subprocess.run(_paddleocr_executable() + cmd[1:], cwd=cwd, env=subprocess_env(),
                              capture_output=True, text=True, timeout=timeout)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise ExportError(f"`{' '.join(cmd)}` (in {cwd}) failed with exit code {proc.returncode}:\n"
                              f"{output[-3000:]}")
        results = {}
        for path in images:
            f = Path(save) / "out" / f"{path.stem}_res.json"
            if not f.is_file():
                raise ExportError(f"`paddleocr ocr` wrote no {f.name}; its output:\n{output[-3000:]}")
            data = json.loads(f.read_text(encoding="utf-8"))
            results[path.name] = data.get("res", data)
    return results, cmd, output
