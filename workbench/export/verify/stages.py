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
    DetSteps, StageCheck, TheirCls, TheirDet, TheirRec, Workbench, compare_cls_batch, compare_det, compare_rec_batch,
    quads,
)
from workbench.export.verify.probes import Probes
from workbench.export.verify.recording import PredictorRecorder, inner_pipeline, record_runner
from workbench.export.verify.report import Report, Tolerances
from workbench.paddlex_files import classifier_class_id


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
    for task in wb.classifiers():
        verify_classifier_module(check, folder / task, task, probes.upright.get(task, []), device)


def _classes(task: str):
    from workbench.tasks import registry

    return registry.get(task).task.classes


def verify_classifier_module(check: StageCheck, model_dir: Path, task: str, images: list[Path], device: str) -> None:
    """An orientation module on its own (``paddlex.create_model``): every upright probe turned through every
    class's angle, PaddleX's input / probabilities / class against ours. How often the module decides the angle
    it was given is recorded in the report's facts (a model's accuracy, not an export property)."""
    from paddlex import create_model

    from workbench.data.images import read_image
    from workbench.data.orientation import turn_clockwise

    source = check.wb.sources[task]
    classes = _classes(task)
    model = create_model(source.paddlex_name, model_dir=str(model_dir), device=device)
    runner = record_runner(model)
    right = total = 0
    for path in images:
        image = read_image(path)
        for angle in classes.angles:
            sample = turn_clockwise(image, angle)
            before = len(runner.calls)
            (result,) = list(model.predict(sample))
            (their_x,), (their_probs,) = runner.calls[before]
            their_id = classifier_class_id(result, 0)
            compare_cls_batch(check, task, [f"{path.name} turned {angle}°"], [sample],
                              TheirCls(their_x, their_probs, [their_id]))
            right += their_id == classes.index_of(angle)
            total += 1
    facts = check.report.facts.setdefault("orientation", {}).setdefault(task, {})
    facts["module: probes turned through every class, decided right"] = f"{right} of {total}"


#: the pipeline's orientation sub-modules: section → (pipeline attribute of the sub-pipeline, of the model)
_ORIENTATION_MODELS = {
    "TextLineOrientation": (None, "textline_orientation_model"),
    "DocOrientationClassify": ("doc_preprocessor_pipeline", "doc_ori_classify_model"),
}


def _record_orientation(inner, config: dict) -> dict:
    """Recorders of the orientation modules the pipeline runs: section → (holder, runner, predictor recorder)."""
    from workbench.export.pipeline_yaml import enabled_sections

    out = {}
    for section in enabled_sections(config):
        if section not in _ORIENTATION_MODELS:
            continue
        sub, attr = _ORIENTATION_MODELS[section]
        holder = inner if sub is None else getattr(getattr(inner, sub), "_pipeline", getattr(inner, sub))
        model = getattr(holder, attr, None)
        if model is None:
            raise ExportError(f"PaddleX's OCR pipeline has no {attr}: this paddlex version is not supported by the "
                              "verification")
        runner, pred = record_runner(model), PredictorRecorder(model)
        setattr(holder, attr, pred)
        out[section] = (model, runner, pred)
    return out


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
        recorders = (inner, det_runner, rec_runner, det_pred, rec_pred, _record_orientation(inner, config))
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
    config, page_results, (inner, det_runner, rec_runner, det_pred, rec_pred, oriented) = run_pipeline(
        folder, probes.images, device, record=True)
    det_cfg = config["SubModules"]["TextDetection"]
    expected = {p.name: _result_summary(r) for p, r in zip(probes.images, page_results)}
    pages_turned = "DocOrientationClassify" in oriented  # detection then runs on the page turned upright

    if wb.det_source is not None:
        resize = DetResize(limit_side_len=int(det_cfg["limit_side_len"]), limit_type=det_cfg["limit_type"],
                           max_side_limit=int(det_cfg["max_side_limit"]))
        steps = DetSteps(resize, _det_postprocess(read_inference_yml(folder / "det"), det_cfg))
        if len(det_runner.calls) != len(probes.images) or len(det_pred.calls) != len(probes.images):
            raise ExportError(f"verification: expected one detection call per probe image, got {len(det_runner.calls)}")
        for path, (det_images, det_results), ((their_x,), (their_map,)) in zip(probes.images, det_pred.calls,
                                                                                 det_runner.calls):
            (det_res,) = det_results
            page = det_images[0] if pages_turned else read_image(path)
            compare_det(check, path.name, page, steps,
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
    if "TextLineOrientation" in oriented:
        _verify_textline_in_pipeline(check, oriented["TextLineOrientation"], rec_pred)
    if "DocOrientationClassify" in oriented:
        _verify_pages_in_pipeline(check, oriented["DocOrientationClassify"], det_pred)
    _turned_probe_facts(check, probes, page_results)
    return expected


def _task_of(section: str) -> Optional[str]:
    from workbench.tasks import registry

    return next((e.name for e in registry.TASKS.values() if e.pipeline_module == section), None)


def _batch_size(model) -> int:
    return int(getattr(model, "batch_sampler").batch_size)


def _class_ids(results: list, batch_size: int) -> list[int]:
    """Each image's own class from one classifier call's results (batches of ``batch_size``, in order)."""
    return [classifier_class_id(r, i % batch_size) for i, r in enumerate(results)]


def _parity(check: StageCheck, task: str, model, runner, calls: list, label: str) -> None:
    """Our classifier against PaddleX's on every image the pipeline gave it (batch by batch, as it ran)."""
    if task not in check.wb.sources:
        return  # a copied / stock module: nothing of ours to compare with
    batch_size = _batch_size(model)
    batches = iter(runner.calls)
    for k, (images, results) in enumerate(calls):
        ids = _class_ids(results, batch_size)
        for start in range(0, len(images), batch_size):
            try:
                (their_x,), (their_probs,) = next(batches)
            except StopIteration:
                raise ExportError(f"verification: fewer {task} batches than {label}s") from None
            chunk = images[start: start + batch_size]
            compare_cls_batch(check, task, [f"call{k}/{label}{start + i}" for i in range(len(chunk))], chunk,
                              TheirCls(their_x, their_probs, ids[start: start + batch_size]))


def _verify_textline_in_pipeline(check: StageCheck, recorded, rec_pred) -> None:
    """Each crop's class equals ours, and the recogniser got every crop turned by its class (PaddleX's own
    rotation, in its aspect-ratio order): a crop the module calls upside down is read upright."""
    from workbench.data.orientation import pipeline_turn

    model, runner, pred = recorded
    task = _task_of("TextLineOrientation")
    _parity(check, task, model, runner, pred.calls, "crop")
    angles = _classes(task).angles
    if len(pred.calls) != len(rec_pred.calls):
        check.add("all probes", f"{task}: one recognition call per orientation call", len(rec_pred.calls),
                  len(pred.calls), False)
        return
    batch_size = _batch_size(model)
    for k, ((crops, results), (rec_inputs, _)) in enumerate(zip(pred.calls, rec_pred.calls)):
        ids = _class_ids(results, batch_size)  # each crop's own class: what the pipeline must turn it by
        turned = [pipeline_turn(c, angles[i]) for c, i in zip(crops, ids)]
        order = sorted(range(len(turned)), key=lambda i: turned[i].shape[1] / float(turned[i].shape[0]))
        same = len(rec_inputs) == len(turned) and all(np.array_equal(a, turned[i]) for a, i in zip(rec_inputs, order))
        check.add(f"call{k}", f"{task}: the recogniser got each crop turned by its class",
                  f"{sum(1 for i in ids if angles[i])} of {len(ids)} turned", "as decided", same)


def _verify_pages_in_pipeline(check: StageCheck, recorded, det_pred) -> None:
    """Each page's class equals ours, and the detector got the page turned back by its class."""
    from workbench.data.orientation import pipeline_turn

    model, runner, pred = recorded
    task = _task_of("DocOrientationClassify")
    _parity(check, task, model, runner, pred.calls, "page")
    angles = _classes(task).angles
    batch_size = _batch_size(model)
    pages = [(image, cls) for images, results in pred.calls
             for image, cls in zip(images, _class_ids(results, batch_size))]
    det_inputs = [image for images, _ in det_pred.calls for image in images]
    for k, ((page, cls), det_input) in enumerate(zip(pages, det_inputs)):
        same = np.array_equal(pipeline_turn(page, angles[cls]), det_input)
        check.add(f"page{k}", f"{task}: the detector got the page turned back by its class", f"{angles[cls]}°",
                  "as decided", same)


def _turned_probe_facts(check: StageCheck, probes: Probes, results: list) -> None:
    """What became of the probe images given turned: which way the pipeline turned them back and whether it read
    the same texts as on the upright image (facts: they measure the models, not the export)."""
    if not probes.turned:
        return
    by_name = {p.name: r for p, r in zip(probes.images, results)}
    out = {}
    for name, (upright, angle) in probes.turned.items():
        res, ref = by_name.get(name), by_name.get(upright)
        if res is None or ref is None:
            continue
        lines = [int(a) for a in res.get("textline_orientation_angles", [])]
        doc = (res.get("doc_preprocessor_res") or {}).get("angle") if res.get("doc_preprocessor_res") else None
        out[name] = {"upright probe": upright, "turned clockwise by": angle,
                     "page turned back by": doc, "crops turned by 180°": f"{sum(a == 1 for a in lines)} of "
                                                                        f"{len(lines)}" if lines else None,
                     "texts as on the upright probe": sorted(map(str, res["rec_texts"])) ==
                     sorted(map(str, ref["rec_texts"]))}
    check.report.facts.setdefault("orientation", {})["turned probes"] = out


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
