"""The stages: ``files`` (inference.yml), ``module`` (``paddlex.create_model`` on each exported folder) and
``pipeline`` (``paddlex.create_pipeline`` on the exported YAML), each compared with the workbench; and the
comparison of any later run with the results recorded at export time.

Part of ``workbench.export.verify`` (see its docstring)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from workbench.errors import ExportError
from workbench.export.verify.ours import (
    DetSteps, StageCheck, TheirDet, TheirRec, Workbench, compare_det, compare_rec_batch, quads,
)
from workbench.export.verify.probes import Probes
from workbench.export.verify.recording import PredictorRecorder, inner_pipeline, record_runner
from workbench.export.verify.report import Report, Tolerances


def _det_postprocess(det_yml: dict, params: Optional[dict] = None):
    from workbench.postprocess.db import DBPostProcess

    pp = dict(det_yml["PostProcess"])
    p = dict(params or {})
    return DBPostProcess(
        thresh=float(p.get("thresh", pp["thresh"])), box_thresh=float(p.get("box_thresh", pp["box_thresh"])),
        max_candidates=int(pp.get("max_candidates", 1000)),
        unclip_ratio=float(p.get("unclip_ratio", pp["unclip_ratio"])), score_mode=pp.get("score_mode", "fast"),
    )


def verify_files(report: Report, folder: Path, wb: Workbench) -> None:
    """inference.yml says what the workbench trained: the model name, and what the task's export writer checks
    (rec: the dictionary line for line, the input shape)."""
    from workbench.export.inference_yml import read_inference_yml

    for task, source in wb.sources.items():
        yml = read_inference_yml(folder / task)
        name = (yml.get("Global") or {}).get("model_name")
        report.add("files", f"{task}/inference.yml", "Global.model_name", name, source.paddlex_name,
                   name == source.paddlex_name)
        for check in source.writer.file_checks(yml, source):
            report.add("files", f"{task}/inference.yml", check.what, check.value, check.limit, check.passed)


def verify_modules(check: StageCheck, folder: Path, probes: Probes, device: str,
                   engine_configs: Optional[dict] = None) -> None:
    """``paddlex.create_model`` on each exported folder vs the workbench (``check.stage`` is ``module``);
    ``engine_configs``: PaddleX engine settings by task."""
    from paddlex import create_model

    from workbench.data.images import read_image
    from workbench.data.preprocess import DetResize
    from workbench.export.inference_yml import read_inference_yml

    wb, engine_configs = check.wb, engine_configs or {}
    if wb.rec_source is not None:
        model = create_model(wb.rec_source.paddlex_name, model_dir=str(folder / "rec"), device=device)
        runner = record_runner(model)
        for path in probes.crops:
            before = len(runner.calls)
            (result,) = list(model.predict(str(path)))
            (their_x,), (their_probs,) = runner.calls[before]
            compare_rec_batch(check, [path.name], wb.rec_input([read_image(path)]),
                              TheirRec(their_x, their_probs, [result["rec_text"]], [result["rec_score"]]))
    if wb.det_source is not None:
        det_dir = folder / "det"
        kwargs = {"engine_config": engine_configs["det"]} if engine_configs.get("det") else {}
        model = create_model(wb.det_source.paddlex_name, model_dir=str(det_dir), device=device, **kwargs)
        runner = record_runner(model)
        # PaddleX's standalone default resize for the PP-OCR det names, the inference.yml's post-process
        steps = DetSteps(DetResize.paddlex_module(), _det_postprocess(read_inference_yml(det_dir)))
        for path in probes.images:
            before = len(runner.calls)
            (result,) = list(model.predict(str(path)))
            (their_x,), (their_map,) = runner.calls[before]
            compare_det(check, path.name, read_image(path), steps,
                        TheirDet(their_x, their_map, result["dt_polys"], result["dt_scores"]))


def run_pipeline(folder: Path, images: list[Path], device: str, record: bool = False):
    """``paddlex.create_pipeline`` on the exported YAML (relative model dirs resolved against the folder)."""
    from paddlex import create_pipeline

    from workbench.export.pipeline_yaml import PIPELINE_YAML, load_pipeline_config

    config = load_pipeline_config(folder / PIPELINE_YAML)
    pipeline = create_pipeline(config=config, device=device)
    recorders = None
    if record:
        inner = inner_pipeline(pipeline)
        det_runner, rec_runner = record_runner(inner.text_det_model), record_runner(inner.text_rec_model)
        det_pred, rec_pred = PredictorRecorder(inner.text_det_model), PredictorRecorder(inner.text_rec_model)
        inner.text_det_model, inner.text_rec_model = det_pred, rec_pred
        recorders = (inner, det_runner, rec_runner, det_pred, rec_pred)
    results = []
    for path in images:
        (res,) = list(pipeline.predict(str(path)))
        results.append(res)
    return config, results, recorders


def _result_summary(res) -> dict:
    return {
        "rec_texts": [str(t) for t in res["rec_texts"]],
        "rec_scores": [float(s) for s in res["rec_scores"]],
        "dt_polys": quads(res["dt_polys"]).astype(int).tolist(),
    }


def verify_pipeline(check: StageCheck, folder: Path, probes: Probes, device: str) -> dict:
    """``paddlex.create_pipeline(PaddleOCR.yaml)`` on the probe images vs the workbench (``check.stage`` is
    ``pipeline``); returns the pipeline's results per image (the ``expected`` of later rechecks)."""
    from workbench.data.images import read_image
    from workbench.data.preprocess import DetResize
    from workbench.export.inference_yml import read_inference_yml

    wb = check.wb
    config, results, (inner, det_runner, rec_runner, det_pred, rec_pred) = run_pipeline(
        folder, probes.images, device, record=True)
    det_cfg = config["SubModules"]["TextDetection"]
    expected = {p.name: _result_summary(r) for p, r in zip(probes.images, results)}

    if wb.det_source is not None:
        resize = DetResize(limit_side_len=int(det_cfg["limit_side_len"]), limit_type=det_cfg["limit_type"],
                           max_side_limit=int(det_cfg["max_side_limit"]))
        steps = DetSteps(resize, _det_postprocess(read_inference_yml(folder / "det"), det_cfg))
        if len(det_runner.calls) != len(probes.images) or len(det_pred.calls) != len(probes.images):
            raise ExportError(f"verification: expected one detection call per probe image, got {len(det_runner.calls)}")
        for path, (_, det_results), ((their_x,), (their_map,)) in zip(probes.images, det_pred.calls, det_runner.calls):
            (det_res,) = det_results
            compare_det(check, path.name, read_image(path), steps,
                        TheirDet(their_x, their_map, det_res["dt_polys"], det_res["dt_scores"]))

    n_crops = sum(len(crops) for crops, _ in rec_pred.calls)
    check.add("all probes", "text lines recognised by the pipeline", n_crops, "> 0", n_crops > 0,
              "" if n_crops else "no boxes found: give probe_images= with visible text, or check box_thresh")
    if wb.rec_source is not None and n_crops:
        batch_size = int(getattr(inner.text_rec_model, "batch_sampler").batch_size)
        calls = iter(rec_runner.calls)
        for k, (crops, rec_results) in enumerate(rec_pred.calls):
            for start in range(0, len(crops), batch_size):
                chunk = crops[start: start + batch_size]
                results = rec_results[start: start + batch_size]
                try:
                    (their_x,), (their_probs,) = next(calls)
                except StopIteration:
                    raise ExportError("verification: fewer recognition batches than crops") from None
                items = [f"call{k}/crop{start + i}" for i in range(len(chunk))]
                compare_rec_batch(check, items, wb.rec_input(chunk),
                                  TheirRec(their_x, their_probs, [r["rec_text"] for r in results],
                                           [r["rec_score"] for r in results]))
    return expected


def compare_with_expected(report: Report, stage: str, expected: dict, results: dict, tol: Tolerances) -> None:
    """Texts identical and boxes equal (≤ ``box_px``) per probe image."""
    for name, exp in expected.items():
        got = results.get(name)
        if got is None:
            report.add(stage, name, "result present", False, True, False, "no result for this probe")
            continue
        got = _result_summary(got)
        same = list(got["rec_texts"]) == list(exp["rec_texts"])
        detail = "" if same else f"expected {exp['rec_texts']!r}, got {list(got['rec_texts'])!r}"
        report.add(stage, name, "texts identical to the pipeline's", f"{len(got['rec_texts'])} texts",
                   f"{len(exp['rec_texts'])} texts", same, detail)
        a, b = quads(got["dt_polys"]), quads(exp["dt_polys"])
        if len(a) != len(b):
            report.add(stage, name, "box count", len(a), len(b), False)
        elif len(a):
            d = float(np.abs(a - b).max())
            report.add(stage, name, "box vertices max abs diff (px)", d, tol.box_px, d <= tol.box_px)
