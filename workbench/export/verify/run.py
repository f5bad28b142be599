"""The entry points: :func:`verify_export` (every stage, at export) and :func:`recheck` (a moved or copied
folder, against what was recorded at export).

Part of ``workbench.export.verify`` (see its docstring)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional

from workbench.errors import ExportError
from workbench.reports.progress import Progress
from workbench.export.verify.ours import StageCheck, Workbench
from workbench.export.verify.paddleocr_cli import run_cli
from workbench.export.verify.probes import PROBES_DIR, Probes
from workbench.export.verify.report import REPORT_JSON, Report, Tolerances
from workbench.export.verify.stages import (
    compare_with_expected, run_pipeline, verify_files, verify_modules, verify_pipeline,
)

log = logging.getLogger("workbench.export")


def verify_export(folder: str | Path, sources: dict, *, probes: Probes, tolerances: Optional[Tolerances] = None,
                  device: str = "cpu", cli: bool = True, serve: bool = True,
                  engine_configs: Optional[dict] = None) -> Report:
    """Run every stage on an export folder; writes the report into it and returns it (does not raise).
    ``sources``: the exported modules by task; ``engine_configs``: PaddleX engine settings by task (the ones
    the pipeline YAML gives the module); ``cli`` / ``serve``: run the ``paddleocr`` CLI / the served pipeline."""
    import paddle

    folder = Path(folder)
    tol = tolerances or Tolerances()
    report = Report(tolerances=tol)
    paddle.set_device(device)
    timings = {}
    stages = ["files", "modules", "pipeline"] + (["CLI"] if cli else []) + (["serve"] if serve else [])
    bar = Progress(len(stages), f"verify export ({', '.join(stages)})", "stage", log).__enter__()
    t = time.perf_counter()
    wb = Workbench(sources)
    verify_files(report, folder, wb)
    timings["load"] = time.perf_counter() - t
    bar.update()
    try:
        t = time.perf_counter()
        verify_modules(StageCheck(report, "module", wb, tol), folder, probes, device, engine_configs)
        timings["module"] = time.perf_counter() - t
        bar.update()
        t = time.perf_counter()
        report.expected = verify_pipeline(StageCheck(report, "pipeline", wb, tol), folder, probes, device)
        timings["pipeline"] = time.perf_counter() - t
        bar.update()
        _outside_stages(report, folder, probes.images, report.expected, device, cli, serve, timings, bar)
    except Exception as exc:  # PaddleX refusing the folder is exactly what verification must catch, loudly
        text = str(exc) if isinstance(exc, ExportError) else f"{type(exc).__name__}: {exc}"
        report.add("run", "PaddleX", "ran to completion", False, True, False,
                   text.splitlines()[0][:300] + _stock_hint(folder))
        report.facts["error"] = text
    report.facts.update(_versions(), device=device, seconds={k: round(v, 2) for k, v in timings.items()},
                        probes={"images": [p.name for p in probes.images], "crops": [p.name for p in probes.crops]})
    bar.__exit__(None, None, None)
    report.write(folder)
    return report


def _outside_stages(report: Report, folder: Path, images: list[Path], expected: dict, device: str, cli: bool,
                    serve: bool, timings: dict, bar: Optional[Progress] = None) -> None:
    """The ``cli`` and ``serve`` stages: PaddleX's own front ends, started from another directory, must give the
    pipeline's results (``bar``: advanced after each)."""
    from workbench.export.verify.paddleocr_cli import subprocess_env
    from workbench.export.verify.serving import run_served

    where = str(Path(folder).resolve())
    if cli:
        t = time.perf_counter()
        results, cmd, _ = run_cli(folder, images, device)
        report.facts["cli_command"] = " ".join(cmd).replace(where, "<export folder>")
        compare_with_expected(report, "cli", expected, results, report.tolerances)
        timings["cli"] = time.perf_counter() - t
        if bar is not None:
            bar.update()
    if serve:
        t = time.perf_counter()
        results, cmd = run_served(folder, images, device, env=subprocess_env())
        report.facts["serve_command"] = " ".join(cmd).replace(where, "<export folder>")
        compare_with_expected(report, "serve", expected, results, report.tolerances)
        timings["serve"] = time.perf_counter() - t
        if bar is not None:
            bar.update()


def _stock_hint(folder: Path) -> str:
    """Stock modules (``model_dir: null``) are downloaded by PaddleX: say so when a run failed."""
    from workbench.export.pipeline_yaml import PIPELINE_YAML, enabled_sections, load_pipeline_config, module_section

    try:
        config = load_pipeline_config(folder / PIPELINE_YAML, resolve_dirs=False)
        sections = {key: module_section(config, key) for key in enabled_sections(config)}
    except Exception:
        return ""
    stock = [f"{key} {sec['model_name']}" for key, sec in sections.items() if not sec.get("model_dir")]
    if not stock:
        return ""
    return (f" (stock model(s) {', '.join(stock)} have model_dir null: PaddleX downloads them; offline, give "
            "<module>_model_dir= with a local model folder)")


def recheck(folder: str | Path, *, device: str = "cpu", cli: bool = True, serve: bool = True) -> Report:
    """Re-run the pipeline (the CLI, the served pipeline) of an export folder — moved, copied, on another machine
    — on its own probes and compare with the results recorded at export time. Needs no checkpoint and no
    workbench model. A folder whose YAML still points at the place it was moved or copied from is a one-line
    error naming ``wb export repoint=``."""
    from workbench.export.pipeline_yaml import stale_model_dirs

    folder = Path(folder)
    if not (folder / REPORT_JSON).is_file():
        raise ExportError(f"{folder}: no {REPORT_JSON} (not a folder written by `wb export`)")
    stale = stale_model_dirs(folder)
    if stale:
        old, new = stale[0]
        raise ExportError(f"{folder}/PaddleOCR.yaml points at {old}, not at {new} (the folder was moved or copied): "
                          f"run `wb export repoint={folder}` first")
    data = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
    tol = Tolerances(**data.get("tolerances", {}))
    expected = data.get("expected") or {}
    if not expected:
        raise ExportError(f"{folder / REPORT_JSON}: no expected results recorded")
    images = [folder / PROBES_DIR / "images" / name for name in expected]
    report = Report(tolerances=tol, facts={"recheck_of": str(folder.resolve()), **_versions()})
    _, results, _ = run_pipeline(folder, images, device)
    compare_with_expected(report, "pipeline", expected, {p.name: r for p, r in zip(images, results)}, tol)
    _outside_stages(report, folder, images, expected, device, cli, serve, {})
    return report


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("paddlepaddle", "paddlex", "paddleocr"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out
