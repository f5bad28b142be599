"""`wb export`: trained checkpoints → a verified PaddleOCR general-OCR-pipeline folder.

    wb export det=<run id | run dir | checkpoint> rec=<run id | run dir | checkpoint> out=export/my_receipts
    wb export det=runs/det/... rec_model_dir=path/to/a/rec/inference/model        # one module fine-tuned
    wb export rec=runs/rec/... det_model_name=PP-OCRv5_mobile_det                    # stock det (downloaded)
    wb export det=... rec=... box_thresh=0.5 probe_images=[a.jpg,b.jpg] register=receipts-ocr
    wb export check=export/my_receipts                                               # re-verify a moved copy

Writes ``<out>/{det,rec}/inference.{json,pdiparams,yml}``, ``<out>/PaddleOCR.yaml``, a README with the exact
commands, ``verification.{json,md}`` and ``probes/``. Every export is verified in the real PaddleX before it
is published at ``out``: a failed verification leaves the folder at ``<out>.FAILED`` with the report and exits
non-zero. Arguments are ``key=value`` (OmegaConf dotlist, typed by :class:`ExportConfig`; a typo is an error).
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
from workbench.export.verify import Tolerances

log = logging.getLogger("workbench.export")

DEFAULT_EXPORT_ROOT = "export"


@dataclass
class ExportConfig:
    det: Optional[str] = None  # run id / run dir / checkpoint dir of the fine-tuned detection model
    rec: Optional[str] = None  # ... of the fine-tuned recognition model
    out: Optional[str] = None  # export folder (default: export/<timestamp>)
    checkpoint: str = "best"  # which checkpoint of a run: best | latest
    weights: str = "auto"  # auto (EMA weights when the checkpoint has them) | model | ema
    rec_dict: Optional[str] = None  # only for a rec checkpoint without dict.txt
    # The module that is not exported: a PaddleX inference-model folder (copied in) or a stock model name.
    det_model_dir: Optional[str] = None
    rec_model_dir: Optional[str] = None
    det_model_name: Optional[str] = None
    rec_model_name: Optional[str] = None
    # Optional extra pipeline steps; off unless their model folders are given.
    textline_orientation_model_dir: Optional[str] = None
    doc_orientation_model_dir: Optional[str] = None
    doc_unwarping_model_dir: Optional[str] = None
    # Detection limits and thresholds (default: the det run's evaluation settings, else PaddleX's pipeline limits
    # and the det model's own post-processing defaults, models.zoo.det_postprocess).
    limit_side_len: Optional[int] = None
    limit_type: Optional[str] = None
    max_side_limit: Optional[int] = None
    thresh: Optional[float] = None
    box_thresh: Optional[float] = None
    unclip_ratio: Optional[float] = None
    max_candidates: Optional[int] = None
    rec_score_thresh: Optional[float] = None  # default: the rec run's eval.rec.score_thresh
    rec_batch_size: Optional[int] = None
    # Verification
    probe_images: list = field(default_factory=list)  # default: the det run's first validation images
    num_probe_images: int = 2
    num_probe_crops: int = 8
    cli: bool = True  # also run `paddleocr ocr` in a subprocess
    device: str = "cpu"
    tolerances: Tolerances = field(default_factory=Tolerances)
    overwrite: bool = False
    # MLflow: auto = when a source run was tracked or tracking_uri is given
    tracking: str = "auto"  # auto | on | off
    tracking_uri: Optional[str] = None
    experiment: Optional[str] = None  # default: the source run's experiment, else "wb-export"
    register: Optional[str] = None  # register the bundle as a new version of this MLflow model
    check: Optional[str] = None  # re-verify an existing export folder instead of exporting


@dataclass
class ExportResult:
    folder: Path
    report: dict
    command: list[str]
    seconds: float
    tracking: dict = field(default_factory=dict)


def parse_args(argv: list[str]) -> ExportConfig:
    from workbench.config.compose import parse_key_values

    cfg = parse_key_values(ExportConfig, argv, "wb export", "det=<run> rec=<run> out=export/x")
    if cfg.tracking not in ("auto", "on", "off"):
        raise ConfigError(f"tracking={cfg.tracking!r}: choose auto, on or off")
    return cfg


# ----------------------------------------------------------------------------------------------- the export


def run_export(cfg: ExportConfig) -> ExportResult:
    """Export, verify, publish, log. Raises :class:`ExportError` (nothing published) on any problem."""
    from workbench.export.inference_model import load_export_source

    t0 = time.perf_counter()
    _check_combination(cfg)
    out = Path(cfg.out or Path(DEFAULT_EXPORT_ROOT) / time.strftime("%Y%m%d-%H%M%S"))
    if out.exists() and not cfg.overwrite:
        raise ExportError(f"{out} exists; choose another out= or pass overwrite=true")
    sources = {}
    for task in ("det", "rec"):
        ref = getattr(cfg, task)
        if ref:
            sources[task] = load_export_source(ref, task, prefer=cfg.checkpoint, weights=cfg.weights,
                                               dictionary=cfg.rec_dict if task == "rec" else None,
                                               tracking_uri=cfg.tracking_uri)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    try:
        result = _build_and_verify(cfg, sources, work, out.name)
    except BaseException as exc:
        failed = out.parent / f"{out.name}.FAILED"
        if not work.exists():
            raise
        if failed.exists():
            shutil.rmtree(failed)
        os.replace(work, failed)
        log.error("the unverified export is kept for inspection at %s", failed)
        if isinstance(exc, ExportError):
            raise ExportError(str(exc).replace(str(work), str(failed))) from None
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(work, out)
    seconds = time.perf_counter() - t0
    info_path = out / "export_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    info["seconds"] = round(seconds, 2)
    info_path.write_text(json.dumps(info, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    tracking = _log_to_mlflow(cfg, sources, out, result["report"], info)
    return ExportResult(folder=out, report=result["report"], command=result["command"], seconds=seconds,
                        tracking=tracking)


def _check_combination(cfg: ExportConfig) -> None:
    if not cfg.det and not cfg.rec:
        raise ConfigError("wb export needs det=<run|checkpoint> and/or rec=<run|checkpoint>")
    for task in ("det", "rec"):
        given = [k for k in (task, f"{task}_model_dir", f"{task}_model_name") if getattr(cfg, k)]
        if getattr(cfg, task) and len(given) > 1:
            raise ConfigError(f"{task}= exports a fine-tuned model; do not also give {given[1:]}")
        if getattr(cfg, f"{task}_model_dir") and getattr(cfg, f"{task}_model_name"):
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


def _det_model_name(cfg: ExportConfig, source, base_det: dict) -> str:
    """The detection module's model name: the exported run's, the copied folder's, or the stock one."""
    if source is not None:
        return source.model_name
    if cfg.det_model_dir:
        from workbench.export.inference_yml import model_name_of

        return model_name_of(cfg.det_model_dir)
    return cfg.det_model_name or base_det["model_name"]


def _det_settings(cfg: ExportConfig, source, base_det: dict) -> tuple[dict, dict]:
    """(pipeline YAML TextDetection params, inference.yml PostProcess): resize limits from PaddleX's pipeline
    defaults, post-processing from the det model's defaults (``zoo.det_postprocess``); both replaced by the run's
    evaluation settings, then by cfg."""
    import yaml

    from workbench.models import zoo

    pipeline = {k: base_det[k] for k in ("limit_side_len", "limit_type", "max_side_limit") if k in base_det}
    post = {**zoo.det_postprocess(_det_model_name(cfg, source, base_det)), "score_mode": "fast"}
    if source is not None:
        meta = source.checkpoint.meta
        pipeline.update(meta.get("resize") or {})
        post.update({k: v for k, v in (meta.get("postprocess") or {}).items() if v is not None})
        eval_det = ((yaml.safe_load(source.checkpoint.config_yaml or "") or {}).get("eval") or {}).get("det") or {}
        post["score_mode"] = eval_det.get("score_mode", "fast")
        if eval_det.get("box_type", "quad") != "quad":
            raise ExportError(f"{source.path}: trained/evaluated with box_type={eval_det['box_type']!r}; the general "
                              "OCR pipeline crops 4-point boxes (box_type quad)")
    for k in ("limit_side_len", "limit_type", "max_side_limit"):
        if getattr(cfg, k) is not None:
            pipeline[k] = getattr(cfg, k)
    for k in ("thresh", "box_thresh", "unclip_ratio", "max_candidates"):
        if getattr(cfg, k) is not None:
            post[k] = getattr(cfg, k)
    if pipeline.get("limit_type") not in ("min", "max", "resize_long"):
        raise ConfigError(f"limit_type={pipeline.get('limit_type')!r}: choose min, max or resize_long")
    pipeline.update({k: post[k] for k in ("thresh", "box_thresh", "unclip_ratio")})
    return pipeline, post


def _rec_settings(cfg: ExportConfig, source, base_rec: dict) -> dict:
    import yaml

    params = {k: base_rec[k] for k in ("batch_size", "score_thresh") if k in base_rec}
    if source is not None:
        eval_rec = ((yaml.safe_load(source.checkpoint.config_yaml or "") or {}).get("eval") or {}).get("rec") or {}
        if "score_thresh" in eval_rec:
            params["score_thresh"] = float(eval_rec["score_thresh"])
    if cfg.rec_score_thresh is not None:
        params["score_thresh"] = cfg.rec_score_thresh
    if cfg.rec_batch_size is not None:
        params["batch_size"] = cfg.rec_batch_size
    return params


def _build_and_verify(cfg: ExportConfig, sources: dict, work: Path, name: str) -> dict:
    from workbench.export import inference_model, inference_yml, pipeline_yaml, readme, verify

    base = pipeline_yaml.paddlex_default_ocr_config()
    timings, files = {}, {}
    det_source, rec_source = sources.get("det"), sources.get("rec")

    # --- the two modules -----------------------------------------------------------------------------------
    det_params, det_post = _det_settings(cfg, det_source, base["SubModules"]["TextDetection"])
    rec_params = _rec_settings(cfg, rec_source, base["SubModules"]["TextRecognition"])
    refs, notes = {}, []
    for task, source in (("det", det_source), ("rec", rec_source)):
        t = time.perf_counter()
        if source is not None:
            files[task] = inference_model.save_inference_model(source, work / task)
            if task == "det":
                from workbench.models import zoo

                preprocess = dict(zoo.get_spec(source.model_name).preprocess)
                content = inference_yml.det_inference_config(source.paddlex_name, preprocess=preprocess,
                                                             postprocess=det_post)
            else:
                content = inference_yml.rec_inference_config(source.paddlex_name, image_shape=source.image_shape,
                                                             characters=source.charset.characters)
            inference_yml.write_inference_yml(work / task, content, source.describe())
            refs[task] = pipeline_yaml.ModuleRef(source.paddlex_name, task)
        elif getattr(cfg, f"{task}_model_dir"):
            model_name = _copy_model_dir(getattr(cfg, f"{task}_model_dir"), work / task)
            refs[task] = pipeline_yaml.ModuleRef(model_name, task)
            notes.append(f"{task}: copied from `{getattr(cfg, f'{task}_model_dir')}` ({model_name})")
        else:
            section = "TextDetection" if task == "det" else "TextRecognition"
            stock = getattr(cfg, f"{task}_model_name") or base["SubModules"][section]["model_name"]
            refs[task] = pipeline_yaml.ModuleRef(stock, None)
            notes.append(f"{task}: stock PaddleX model {stock} (model_dir null: PaddleX downloads it)")
        timings[f"{task}_export"] = round(time.perf_counter() - t, 2)
    refs["det"].params, refs["rec"].params = det_params, rec_params
    det_engine = None
    if refs["det"].model_dir and pipeline_yaml.graph_needs_paddle_run_mode(work / "det"):
        det_engine = refs["det"].engine_config = pipeline_yaml.PADDLE_RUN_MODE

    extras = {}
    for key, cfg_key in (("textline_orientation", "textline_orientation_model_dir"),
                         ("doc_orientation", "doc_orientation_model_dir"),
                         ("doc_unwarping", "doc_unwarping_model_dir")):
        src = getattr(cfg, cfg_key)
        if src:
            extras[key] = pipeline_yaml.ModuleRef(_copy_model_dir(src, work / key), key)
    config = pipeline_yaml.build_pipeline_config(refs["det"], refs["rec"], base=base, **extras)
    pipeline_yaml.dump_pipeline_yaml(config, work / pipeline_yaml.PIPELINE_YAML, header=[
        f"PaddleX OCR pipeline config written by `wb export` ({name}), from paddlex's default OCR config.",
        "model_dir paths are relative to this folder. PaddleX resolves them against the working directory:",
        "run from inside this folder, or pass --text_detection_model_dir / --text_recognition_model_dir.",
        "paddleocr needs --text_detection_model_name and --text_recognition_model_name (see README.md).",
    ])

    # --- verification -----------------------------------------------------------------------------------------
    t = time.perf_counter()
    probes = verify.select_probes(
        det_source.checkpoint if det_source else None, rec_source.checkpoint if rec_source else None,
        probe_images=cfg.probe_images, num_images=cfg.num_probe_images, num_crops=cfg.num_probe_crops)
    probes = verify.copy_probes(probes, work)
    report = verify.verify_export(work, det_source=det_source, rec_source=rec_source, probes=probes,
                                  tolerances=cfg.tolerances, device=cfg.device, cli=cfg.cli,
                                  det_engine_config=det_engine)
    timings["verify"] = round(time.perf_counter() - t, 2)
    report_dict = report.to_dict()
    modules = {t: {"name": refs[t].model_name, "dir": refs[t].model_dir} for t in ("det", "rec")}
    exported = {t: s.describe() for t, s in sources.items()}
    readme.write_readme(work, name=name, config=config, modules=modules, report=report_dict, exported=exported,
                        other_notes=notes)
    info = {"name": name, "exported": exported, "modules": modules, "files": files, "notes": notes,
            "pipeline": {"TextDetection": det_params, "TextRecognition": rec_params},
            "verification_passed": report.passed, "timings": timings,
            "config": {k: v for k, v in asdict(cfg).items() if v not in (None, [], {})}}
    (work / "export_info.json").write_text(json.dumps(info, indent=1, ensure_ascii=False, default=str),
                                           encoding="utf-8")
    report.raise_if_failed(work)
    command = verify.paddleocr_command(config, yaml_path=pipeline_yaml.PIPELINE_YAML, image="some.jpg")  # inside
    return {"report": report_dict, "command": command, "config": config}


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
        if cfg.register:
            raise ExportError(f"MLflow at {out['tracking_uri']}: {type(exc).__name__}: {exc}") from None
        log.warning("the export is verified and complete, but logging it to MLflow at %s failed: %s: %s",
                    out["tracking_uri"], type(exc).__name__, exc)
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    if cfg.register:
        try:
            version = mlf.register_model_version(
                cfg.register, out["run_id"], "export", tracking_uri=uri,
                description=f"wb export {folder.name}: " + ", ".join(
                    f"{t} {m['name']}" for t, m in info["modules"].items()),
                tags={"wb.export.verified": str(report["passed"]).lower()})
        except Exception as exc:
            raise ExportError(f"export {folder} is complete and logged to run {out['run_id']}, but registering "
                              f"model {cfg.register!r} failed: {type(exc).__name__}: {exc}") from None
        out.update(registered_model=cfg.register, version=version)
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


# ----------------------------------------------------------------------------------------------- CLI


def _printable_command(result: ExportResult) -> str:
    """The ``paddleocr`` command for the user's current directory (folders given explicitly)."""
    from workbench.export.pipeline_yaml import PIPELINE_YAML, load_pipeline_config
    from workbench.export.readme import _cmd
    from workbench.export.verify import paddleocr_command

    folder = result.folder
    try:
        rel = folder.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        rel = folder.resolve()
    config = load_pipeline_config(folder / PIPELINE_YAML, resolve_dirs=False)
    subs = config["SubModules"]
    det_dir, rec_dir = subs["TextDetection"].get("model_dir"), subs["TextRecognition"].get("model_dir")
    return _cmd(paddleocr_command(
        config, yaml_path=str(rel / PIPELINE_YAML), image="some.jpg",
        det_dir=str(rel / det_dir) if det_dir else None, rec_dir=str(rel / rec_dir) if rec_dir else None))


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help", "help") for a in argv):
        from omegaconf import OmegaConf

        print(__doc__)
        print("keys and defaults:\n" + OmegaConf.to_yaml(OmegaConf.structured(ExportConfig)))
        return 0
    cfg = parse_args(argv)
    if cfg.check:
        from workbench.export.verify import recheck

        report = recheck(cfg.check, device=cfg.device, cli=cfg.cli)
        print(report.to_markdown())
        report.raise_if_failed()
        print(f"{cfg.check}: behaves as at export time")
        return 0
    result = run_export(cfg)
    maxes = result.report["summary"]["max"]
    print(f"\nexport verified and written to {result.folder} in {result.seconds:.1f} s "
          f"({result.report['summary']['checks']} checks passed):")
    for k, v in sorted(maxes.items()):
        print(f"  {k:<55} {v:.3g}")
    if result.tracking.get("run_id"):
        print(f"MLflow: run {result.tracking['run_id']} ({result.tracking['tracking_uri']})"
              + (f", model {result.tracking['registered_model']} version {result.tracking['version']}"
                 if result.tracking.get("version") else ""))
    print("\nrun it:\n  " + _printable_command(result))
    print(f"(inside {result.folder} the short form works: see {result.folder / 'README.md'})")
    return 0
