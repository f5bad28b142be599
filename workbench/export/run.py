"""``wb export``: trained checkpoints → a verified PaddleOCR general-OCR-pipeline folder, logged to MLflow.

    export(ExportConfig(det=<run>, rec=<run>, out="export/my_receipts"))

Writes ``<out>/<task>/inference.{json,pdiparams,yml}`` (det, rec, and textline_ori / doc_ori when given),
``<out>/PaddleOCR.yaml``, a README with the exact
commands, ``verification.{json,md}`` and ``probes/``. Every export is verified in the real PaddleX before it
is published at ``out``: a failed verification leaves the folder at ``<out>.FAILED`` with the report and raises.
The export is built and verified in a work folder beside ``out`` (the YAML's absolute ``model_dir`` values point
into it), published by renaming it to ``out``, and then re-pointed there (``pipeline_yaml.repoint``, the same
step ``wb export repoint=`` runs after a user moves the folder).
Each module of the pipeline is a registered task (``workbench.tasks.registry``): its export writer says what
differs per task; this module is the same for all.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from workbench.errors import ConfigError, ExportError
from workbench.export.config import DEFAULT_EXPORT_ROOT, ExportConfig

log = logging.getLogger("workbench.export")


@dataclass
class ExportResult:
    folder: Path
    report: dict
    command: list[str]
    seconds: float
    tracking: dict = field(default_factory=dict)


def _tasks():
    """The registered tasks, in pipeline order."""
    from workbench.tasks import registry

    return list(registry.TASKS.values())


def run_export(cfg: ExportConfig) -> ExportResult:
    """Export, verify, publish, log. Raises :class:`ExportError` (nothing published) on any problem."""
    from workbench.export.inference_model import load_export_source

    t0 = time.perf_counter()
    _check_combination(cfg)
    _check_model_names(cfg)
    if cfg.serve:
        from workbench.export.verify.serving import require_serving

        require_serving("the served-pipeline check of `wb export`")
    out = Path(cfg.out or Path(DEFAULT_EXPORT_ROOT) / time.strftime("%Y%m%d-%H%M%S"))
    if out.exists() and not cfg.overwrite:
        raise ExportError(f"{out} exists; choose another out= or pass overwrite=true")
    sources = {}
    for entry in _tasks():
        ref = cfg.fine_tuned(entry.name)
        if ref:
            sources[entry.name] = load_export_source(ref, entry.name, prefer=cfg.checkpoint, weights=cfg.weights,
                                                     dictionary=cfg.dictionary(entry.name),
                                                     tracking_uri=cfg.tracking_uri)
    _refuse_regressions(sources, cfg.allow_regression)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    try:
        result = _build_and_verify(cfg, sources, work, out)
    except BaseException as exc:
        failed = out.parent / f"{out.name}.FAILED"
        if not work.exists():
            raise
        if failed.exists():
            shutil.rmtree(failed)
        os.replace(work, failed)
        try:
            from workbench.export.pipeline_yaml import repoint

            repoint(failed)  # so the failed folder can be run and inspected where it is
        except Exception:  # noqa: BLE001 - the verification failure is the error to report
            pass
        log.error("the unverified export is kept for inspection at %s", failed)
        if isinstance(exc, ExportError):
            raise ExportError(str(exc).replace(str(work), str(failed))) from None
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(work, out)
    _publish_paths(out)
    seconds = time.perf_counter() - t0
    info_path = out / "export_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    info["seconds"] = round(seconds, 2)
    info_path.write_text(json.dumps(info, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    tracking = _log_to_mlflow(cfg, sources, out, result["report"], info)
    return ExportResult(folder=out, report=result["report"], command=result["command"], seconds=seconds,
                        tracking=tracking)


def regression_of(meta: dict) -> Optional[str]:
    """A description when a checkpoint scored worse on val than the weights it was fine-tuned from, else None
    (the trainer records both in the checkpoint's meta: ``start_metric`` and ``metric_value``)."""
    start, tuned, name = meta.get("start_metric"), meta.get("metric_value"), meta.get("select_metric", "metric")
    if start is None or tuned is None:
        return None
    worse = tuned > start if meta.get("select_mode") == "min" else tuned < start
    return f"{name} {tuned:.4f} after fine-tuning < {start:.4f} before" if worse else None


def _refuse_regressions(sources: dict, allowed: bool) -> None:
    for task, source in sources.items():
        problem = regression_of(source.checkpoint.meta)
        if problem is None:
            continue
        if not allowed:
            raise ExportError(f"{task}={source.checkpoint.path}: a regression on val ({problem}); pass "
                              f"allow_regression=true to export it anyway")
        log.warning("%s: exporting a regression on val (%s) because allow_regression=true", task, problem)


def _in_pipeline(cfg: ExportConfig, entry) -> bool:
    """det and rec are always in the pipeline; an optional module (orientation) when the export names it."""
    t = entry.name
    return not entry.export_writer.optional or bool(cfg.fine_tuned(t) or cfg.model_dir(t) or cfg.model_name(t))


def _publish_paths(out: Path) -> None:
    """Point the published YAML's ``model_dir`` values at ``out`` (they pointed into the work folder)."""
    from workbench.export.pipeline_yaml import repoint, stale_model_dirs

    repoint(out)
    if stale_model_dirs(out):
        raise ExportError(f"{out}/PaddleOCR.yaml: model_dir values still point elsewhere after publishing: "
                          f"{stale_model_dirs(out)}")


def repoint_export(folder: str | Path) -> list[tuple[str, str]]:
    """``wb export repoint=<folder>``: after moving or copying an export, point its YAML at the folder's own
    module folders; returns the ``(old, new)`` paths changed."""
    from workbench.export.pipeline_yaml import repoint

    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"repoint={folder}: no such folder")
    return repoint(folder)


def _check_model_names(cfg: ExportConfig) -> None:
    """Model names and folders the user gives must be names the installed PaddleX has registered."""
    from workbench.export.inference_yml import model_name_of
    from workbench.paddlex_files import require_registered_model

    for task in [e.name for e in _tasks()]:
        if cfg.model_name(task):
            require_registered_model(cfg.model_name(task), f"{task}_model_name", ExportError)
        if cfg.model_dir(task) and Path(cfg.model_dir(task)).is_dir():
            require_registered_model(model_name_of(Path(cfg.model_dir(task))),
                                     f"{task}_model_dir={cfg.model_dir(task)} (inference.yml Global.model_name)",
                                     ExportError)


def _check_combination(cfg: ExportConfig) -> None:
    entries = _tasks()
    names = [e.name for e in entries]
    if not any(cfg.fine_tuned(t) for t in names):
        # the pipeline's own modules first, the optional ones (orientation) after
        ordered = sorted(entries, key=lambda e: e.export_writer.optional)
        raise ConfigError("wb export needs " + " and/or ".join(f"{e.name}=<run|checkpoint>" for e in ordered))
    for task in names:
        given = [k for k in (task, f"{task}_model_dir", f"{task}_model_name") if getattr(cfg, k, None)]
        if cfg.fine_tuned(task) and len(given) > 1:
            raise ConfigError(f"{task}= exports a fine-tuned model; do not also give {given[1:]}")
        if cfg.model_dir(task) and cfg.model_name(task):
            raise ConfigError(f"give {task}_model_dir= or {task}_model_name=, not both (the folder names its model)")


def _copy_model_dir(src: str, dst: Path, expect_name: Optional[str] = None) -> str:
    """Copy a user's PaddleX model folder into the export; returns its Global.model_name."""
    from workbench.export.inference_yml import model_name_of

    src_path = Path(src)
    if not src_path.is_dir():
        raise ExportError(f"model folder not found: {src}")
    name = model_name_of(src_path)
    if expect_name and expect_name != name:
        raise ExportError(f"{src}/inference.yml says {name}, expected {expect_name}")
    shutil.copytree(src_path, dst)
    return name


def _module(cfg: ExportConfig, entry, source, work: Path, base_section: dict) -> tuple:
    """One pipeline module into ``work/<task>``: exported (``source``), copied (``<task>_model_dir``) or stock.
    Returns (ModuleRef, files written, note)."""
    from workbench.export import inference_model, inference_yml, pipeline_yaml

    task, writer = entry.name, entry.export_writer
    settings = writer.settings(cfg, source, base_section)
    files, note = None, None
    if source is not None:
        files = inference_model.save_inference_model(source, work / task)
        content = writer.inference_config(source, settings.model)
        inference_yml.write_inference_yml(work / task, content, source.describe(), notes=writer.yml_notes)
        ref = pipeline_yaml.ModuleRef(source.paddlex_name, str((work / task).resolve()))
    elif cfg.model_dir(task):
        model_name = _copy_model_dir(cfg.model_dir(task), work / task)
        ref = pipeline_yaml.ModuleRef(model_name, str((work / task).resolve()))
        note = f"{task}: copied from `{cfg.model_dir(task)}` ({model_name})"
    else:
        stock = cfg.model_name(task) or base_section["model_name"]
        ref = pipeline_yaml.ModuleRef(stock, None)
        note = f"{task}: stock PaddleX model {stock} (model_dir null: PaddleX downloads it)"
    ref.params = settings.pipeline
    if ref.model_dir and pipeline_yaml.graph_needs_paddle_run_mode(work / task):
        ref.engine_config = pipeline_yaml.PADDLE_RUN_MODE
    return ref, files, note


def _build_and_verify(cfg: ExportConfig, sources: dict, work: Path, out: Path) -> dict:
    """Write and verify the export in ``work``; ``out``: where it will be published (named in the README)."""
    from workbench.export import pipeline_yaml, readme, verify

    name = out.name
    base = pipeline_yaml.paddlex_default_ocr_config()
    timings, files, notes, refs, sections = {}, {}, [], {}, {}
    for entry in _tasks():
        if not _in_pipeline(cfg, entry):
            continue
        t = time.perf_counter()
        ref, written, note = _module(cfg, entry, sources.get(entry.name), work,
                                     pipeline_yaml.module_section(base, entry.pipeline_module))
        refs[entry.name], sections[entry.pipeline_module] = ref, ref
        if written is not None:
            files[entry.name] = written
        if note:
            notes.append(note)
        timings[f"{entry.name}_export"] = round(time.perf_counter() - t, 2)

    if cfg.doc_unwarping_model_dir:  # UVDoc: not a task (no training upstream), only copied in
        sections["DocUnwarping"] = pipeline_yaml.ModuleRef(
            _copy_model_dir(cfg.doc_unwarping_model_dir, work / "doc_unwarping"),
            str((work / "doc_unwarping").resolve()))
        notes.append(f"document unwarping: copied from `{cfg.doc_unwarping_model_dir}`")
    config = pipeline_yaml.build_pipeline_config_from(sections, base=base)
    pipeline_yaml.dump_pipeline_yaml(config, work / pipeline_yaml.PIPELINE_YAML, header=[
        f"PaddleX OCR pipeline config written by `wb export` ({name}), from paddlex's default OCR config.",
        "model_dir paths are absolute, so this file works from any working directory (PaddleX resolves a",
        "relative model_dir against the working directory, not this file). After moving or copying the folder,",
        "run `wb export repoint=<folder>` (or replace the old folder path in the model_dir lines).",
        "paddleocr needs --text_detection_model_name and --text_recognition_model_name (see README.md).",
    ])

    # --- verification -----------------------------------------------------------------------------------------
    t = time.perf_counter()
    det_source, rec_source = sources.get("det"), sources.get("rec")
    oriented = {t: s.checkpoint for t, s in sources.items() if s.writer.optional}
    probes = verify.select_probes(
        det_source.checkpoint if det_source else None, rec_source.checkpoint if rec_source else None,
        probe_images=cfg.probe_images, num_images=cfg.num_probe_images, num_crops=cfg.num_probe_crops,
        oriented=oriented)
    # the orientation modules must turn the probe images back: they are verified on them turned too
    turns = {a for t in oriented for a in registry_classes(t).angles}
    probes = verify.copy_probes(probes, work, turns=turns)
    report = verify.verify_export(work, sources, probes=probes, tolerances=cfg.tolerances, device=cfg.device,
                                  cli=cfg.cli, serve=cfg.serve,
                                  engine_configs={t: r.engine_config for t, r in refs.items()})
    timings["verify"] = round(time.perf_counter() - t, 2)
    report_dict = report.to_dict()
    modules = {t: {"name": r.model_name, "dir": Path(r.model_dir).name if r.model_dir else None}
               for t, r in refs.items()}
    exported = {t: s.describe() for t, s in sources.items()}
    readme.write_readme(work, name=name, published=out.resolve(), config=config, modules=modules,
                        report=report_dict, exported=exported, other_notes=notes)
    info = {"name": name, "exported": exported, "modules": modules, "files": files, "notes": notes,
            "pipeline": {section: ref.params for section, ref in sections.items()},
            "verification_passed": report.passed, "timings": timings,
            "config": {k: v for k, v in asdict(cfg).items() if v not in (None, [], {})}}
    (work / "export_info.json").write_text(json.dumps(info, indent=1, ensure_ascii=False, default=str),
                                           encoding="utf-8")
    report.raise_if_failed(work)
    command = verify.paddleocr_command(config, yaml_path=str(out.resolve() / pipeline_yaml.PIPELINE_YAML),
                                       image="some.jpg")
    return {"report": report_dict, "command": command, "config": config}


def registry_classes(task: str):
    """The orientation classes of a task (``workbench.data.orientation.OrientationClasses``)."""
    from workbench.tasks import registry

    return registry.get(task).task.classes


# ----------------------------------------------------------------------------------------------- MLflow


def _log_to_mlflow(cfg: ExportConfig, sources: dict, folder: Path, report: dict, info: dict) -> dict:
    """Log the bundle to its own run (next to the source runs), tag the source runs, optionally register it.
    A tracking failure after a verified export is a warning (the folder is valid), except a failed register=."""
    from workbench.tracking import mlflow as mlf

    run_ids = {t: s.checkpoint.meta.get("mlflow_run_id") for t, s in sources.items()
               if s.checkpoint.meta.get("mlflow_run_id")}
    enabled = cfg.tracking == "on" or (cfg.tracking == "auto" and (run_ids or cfg.tracking_uri or cfg.register))
    if not enabled:
        return {}
    uri = cfg.tracking_uri or _source_tracking_uri(sources)
    out = {"tracking_uri": mlf.resolve_tracking_uri(uri)}
    try:
        experiment = cfg.experiment
        if experiment is None and run_ids:
            experiment = mlf.experiment_of(next(iter(run_ids.values())), uri)
        experiment = experiment or "wb-export"
        tags = {"wb.kind": "export", "wb.export.folder": str(folder.resolve()),
                "wb.export.verified": str(report["passed"]).lower(),
                **{f"wb.export.{t}_run": rid for t, rid in run_ids.items()}}
        run_id = mlf.create_run(experiment, f"export {folder.name}", tags, uri)
        params = {f"{t}.{k}": v for t, d in info["exported"].items() for k, v in d.items()}
        params.update({f"pipeline.{sec}.{k}": v for sec, d in info["pipeline"].items() for k, v in d.items()})
        params.update({f"module.{t}": m["name"] for t, m in info["modules"].items()})
        metrics = {"verify/checks": report["summary"]["checks"], "verify/failed": report["summary"]["failed"],
                   "export/seconds": info.get("seconds", 0)}
        metrics.update({"verify/max/" + _metric_key(k): v for k, v in report["summary"]["max"].items()})
        mlf.log_run_bundle(run_id, folder=folder, artifact_path="export", params=params, metrics=metrics, tags={},
                           tracking_uri=uri)
        for t, rid in run_ids.items():
            mlf.set_tags(rid, {f"wb.exported.{folder.name}": run_id}, uri)
        out.update(run_id=run_id, experiment=experiment, source_runs=run_ids)
    except Exception as exc:
        from workbench.tracking.hints import failure_text

        text = failure_text(exc, out["tracking_uri"])
        if cfg.register:
            raise ExportError(f"export {folder} is verified and complete, but not registered: {text}") from None
        log.warning("the export is verified and complete, but logging it to MLflow failed: %s", text)
        out["error"] = text
        return out
    if cfg.register:
        from workbench.tracking import registry

        try:
            version = registry.register_version(
                cfg.register, out["run_id"], tracking_uri=uri, alias=cfg.alias,
                description=f"wb export {folder.name}: " + ", ".join(
                    f"{t} {m['name']}" for t, m in info["modules"].items()),
                tags=registry.version_tags(export_run=out["run_id"], folder=folder, verified=report["passed"],
                                           modules=info["modules"], exported=info["exported"]))
        except Exception as exc:
            raise ExportError(f"export {folder} is complete and logged to run {out['run_id']}, but registering "
                              f"model {cfg.register!r} failed: {str(exc).splitlines()[0]}") from None
        out.update(registered_model=cfg.register, version=version, alias=cfg.alias)
    return out


def _metric_key(text: str) -> str:
    """``"pipeline: det box vertices max abs diff (px)"`` → ``pipeline_det_box_vertices_max_abs_diff_px``."""
    return "_".join("".join(c if c.isalnum() else " " for c in text).split())


def _source_tracking_uri(sources: dict) -> Optional[str]:
    import yaml

    for s in sources.values():
        tracking = (yaml.safe_load(s.checkpoint.config_yaml or "") or {}).get("tracking") or {}
        if tracking.get("tracking_uri"):
            return tracking["tracking_uri"]
    return None
