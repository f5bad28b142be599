"""``wb analyze pipeline``: run the whole OCR pipeline on labeled images and attribute every error to a module.

    wb analyze pipeline data=/my/det_labels.txt det=<run|path|export dir|stock|stock-v6> rec=<...> out=reports/receipts
        [textline_ori=<run|path|stock>] [case_insensitive=true] [ignore_space=true] [limit=N] [score_thresh=0.5] ...

``data`` is a det-format label file with transcriptions. ``det`` / ``rec``: ``stock`` (the official PP-OCRv5 mobile
weights; the default), ``stock-v6`` (PP-OCRv6 medium, paddleocr 3.7's default), ``stock-v6-small`` /
``stock-v6-tiny`` (each task's shortcuts: ``TaskEntry.stock_models``), an official model name, an MLflow run id, a
run / checkpoint directory or a ``.pdparams`` file (our models, run in process exactly as the PaddleX pipeline runs
them; a file written by ``wb weights import`` names its model itself), a registered version
(``models:/<name>/<version>`` or ``@<alias>``: the module's checkpoint it was exported from), two exported inference
model folders, or one exported pipeline folder (``PaddleOCR.yaml``; also ``pipeline=<folder>``, or
``pipeline=models:/<name>/<version>`` for a registered version's exported folder), run by the real PaddleX pipeline.
``textline_ori``: a text-line orientation model in the pipeline (same kinds of reference; none by default): its
decisions are then what the ``orientation`` outcome measures (a crop it turned upside down, or one it left upside
down), and the crops it gets wrong go to ``next_training_set/textline_ori`` (a class list).

Prints the outcome counts and the verdict (which module to fine-tune first), and writes into ``out``:
``report.html``, ``attribution.jsonl/csv``, ``images.jsonl``, ``summary.json`` and ``next_training_set/`` (the
failing crops as a rec label file, the failing images as a det label file, the wrongly oriented crops as a
text-line orientation class list). Every key of :class:`AnalyzeConfig`
can be given as ``key=value``.

:func:`run_analysis` does the work (``workbench.analyze_pipeline`` in the Python API), :func:`format_verdict`
says it in words; ``workbench/commands/analyze.py`` only parses and prints.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from workbench.errors import ConfigError

log = logging.getLogger("workbench.analyze")


@dataclass
class AnalyzeConfig:
    """``wb analyze pipeline`` options (``key=value`` on the command line)."""

    data: str = "???"  # det label file (image<TAB>[{"transcription", "points"}, ...])
    det: Optional[str] = None  # null = stock
    rec: Optional[str] = None  # null = stock
    textline_ori: Optional[str] = None  # a text-line orientation model in the pipeline (null = none; stock = PaddleX's)
    pipeline: Optional[str] = None  # an exported pipeline folder / PaddleOCR.yaml / models:/<name>/<version>
    out: Optional[str] = None  # null = reports/pipeline_<data folder name>
    root: Optional[str] = None  # image paths are relative to this folder (null = the label file's folder)
    limit: Optional[int] = None  # analyse the first N images only
    # text comparison
    case_insensitive: bool = False
    ignore_space: bool = False
    # pipeline settings (null = the pipeline YAML's limits and the det model's own post-processing defaults)
    score_thresh: Optional[float] = None  # text_rec_score_thresh
    det_thresh: Optional[float] = None
    box_thresh: Optional[float] = None
    unclip_ratio: Optional[float] = None
    limit_side_len: Optional[int] = None
    limit_type: Optional[str] = None
    max_side_limit: Optional[int] = None
    rec_batch_size: Optional[int] = None
    # our models: the dictionary of a bare .pdparams rec model / the zoo names of bare .pdparams files
    rec_dict: Optional[str] = None
    det_model: Optional[str] = None
    rec_model: Optional[str] = None
    textline_ori_model: Optional[str] = None
    device: str = "cpu"  # cpu | gpu | gpu:N | auto
    paddlex_run_mode: Optional[str] = None  # PaddleX runner: paddle | mkldnn | ... (null = PaddleX's default)
    tracking_uri: Optional[str] = None
    # matching rules (see workbench.analysis.attribution)
    iou: float = 0.5
    merge_cover: float = 0.5
    split_cover: float = 0.5
    loose_cover: float = 0.5
    # report
    max_cases: int = 40
    examples_per_outcome: int = 12
    next_training_set: bool = True


def parse_args(argv: list[str]) -> AnalyzeConfig:
    from workbench.config.compose import parse_key_values

    return parse_key_values(AnalyzeConfig, argv, "wb analyze pipeline", "data=<det label file> det=stock rec=stock",
                            required={"data": "data=<det label file>"})


# --- the analysis -----------------------------------------------------------------------------------------------
def run_analysis(cfg: AnalyzeConfig, runner=None) -> dict:
    """Analyse ``cfg.data`` with ``runner`` (default: :func:`~workbench.analysis.pipeline.load_pipeline` of the
    config); writes the outputs and returns ``{"verdict", "summary", "files", "out_dir", "images", "gts"}``."""
    from workbench.analysis.attribution import MatchRules, TextCompare, verdict
    from workbench.analysis.next_training_set import NextTrainingSet
    from workbench.analysis.pipeline import LoadOptions, analyze_image, load_pipeline
    from workbench.analysis.pipeline_report import (
        PageOptions, RunFacts, gt_rows, summarize_timings, write_pipeline_report,
    )
    from workbench.data.images import read_image
    from workbench.data.labels import read_det_labels
    from workbench.errors import DataError

    data = Path(cfg.data)
    if not data.is_file():
        raise ConfigError(f"data={cfg.data}: no such label file")
    samples, findings = read_det_labels(data, root=cfg.root)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        log.warning("%d label problem(s) in %s exclude their lines, e.g. %s", len(errors), data, errors[0])
    if not samples:
        raise ConfigError(f"data={cfg.data}: no usable det sample" + (f" (first problem: {errors[0]})" if errors
                                                                     else ""))
    if cfg.limit:
        samples = samples[: cfg.limit]
    out_dir = Path(cfg.out or Path("reports") / f"pipeline_{data.resolve().parent.name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if runner is None:
        runner = load_pipeline(
            cfg.det, cfg.rec, pipeline=cfg.pipeline, textline_ori=cfg.textline_ori,
            options=LoadOptions(rec_dict=cfg.rec_dict, det_model=cfg.det_model, rec_model=cfg.rec_model,
                                textline_ori_model=cfg.textline_ori_model, device=cfg.device,
                                paddlex_run_mode=cfg.paddlex_run_mode, tracking_uri=cfg.tracking_uri),
            settings=dict(score_thresh=cfg.score_thresh, thresh=cfg.det_thresh, box_thresh=cfg.box_thresh,
                          unclip_ratio=cfg.unclip_ratio, limit_side_len=cfg.limit_side_len,
                          limit_type=cfg.limit_type, max_side_limit=cfg.max_side_limit,
                          rec_batch_size=cfg.rec_batch_size))
    compare = TextCompare(case_insensitive=cfg.case_insensitive, ignore_space=cfg.ignore_space)
    rules = MatchRules(iou=cfg.iou, merge_cover=cfg.merge_cover, split_cover=cfg.split_cover,
                       loose_cover=cfg.loose_cover)

    image_rows, gts, skipped = [], [], []
    next_set = NextTrainingSet(out_dir / "next_training_set") if cfg.next_training_set else None
    progress = _progress(len(samples))
    t_start = time.perf_counter()
    try:
        for k, sample in enumerate(samples):
            t0 = time.perf_counter()
            try:
                image = read_image(sample.image_path, sample=sample)
            except DataError as exc:
                log.warning("skipped: %s", exc)
                skipped.append({"where": sample.where, "problem": str(exc).splitlines()[0]})
                continue
            t_read = time.perf_counter() - t0
            texts = list(sample.texts)
            result = analyze_image(runner, image, sample.polys, texts, sample.ignore_tags, compare=compare,
                                   rules=rules)
            att, page = result.attribution, result.page
            outcomes = [o.to_dict() for o in att.gts]
            row = _image_row(sample, image, page, att, runner.settings.score_thresh,
                             {"read": t_read, **result.timings})
            image_rows.append(row)
            gts += gt_rows(row, outcomes)
            if next_set is not None:
                t1 = time.perf_counter()
                next_set.add(sample, outcomes=outcomes, pred_status=att.pred_status, gt_crops=result.gt_crops,
                             box_crops=result.box_crops)
                row["timings"]["next_training_set"] = time.perf_counter() - t1
            progress(k + 1, row)
    finally:
        next_info = next_set.close() if next_set is not None else None
    wall = time.perf_counter() - t_start
    timings = summarize_timings(image_rows, wall)
    false_positives = [f"{r['image']}:box{j}" for r in image_rows for j in r["false_positives"]]
    oriented = bool(getattr(runner, "orientation_model", False))
    v = verdict(gts, false_positives, score_thresh=runner.settings.score_thresh, compare=compare,
                orientation_model=oriented)
    orientation = orientation_summary(image_rows, gts) if oriented else None
    info = {"data": str(data), **runner.describe(),
            **({"text-line orientation decisions": orientation["line"]} if orientation else {}),
            "text comparison": f"case-insensitive={cfg.case_insensitive}, ignore spaces={cfg.ignore_space}",
            "matching": ", ".join(f"{k}={v_}" for k, v_ in asdict(rules).items()),
            "images skipped (unreadable)": len(skipped), "label lines excluded (errors)": len(errors)}
    t_report = time.perf_counter()
    files = write_pipeline_report(
        image_rows, gts, v, out_dir,
        facts=RunFacts(info=info, settings=asdict(runner.settings), timings=timings, next_set=next_info or {}),
        page=PageOptions(title=f"OCR pipeline on {data.parent.name}/{data.name}: error attribution",
                         max_cases=cfg.max_cases, examples_per_outcome=cfg.examples_per_outcome))
    report_s = time.perf_counter() - t_report
    return {"verdict": v, "timings": timings, "report_s": report_s, "files": files, "out_dir": out_dir,
            "images": image_rows, "gts": gts, "next_training_set": next_info, "skipped": skipped,
            "describe": runner.describe(), "settings": asdict(runner.settings), "orientation": orientation}


def orientation_summary(image_rows: list[dict], gts: list[dict]) -> dict:
    """What the text-line orientation model did: crops classified and turned, and the orientation errors it made
    (a right crop turned upside down / an upside-down crop kept), measured by the readings (attribution)."""
    from workbench.analysis.attribution import ORIENTATION

    angles = [a for r in image_rows for a in (r.get("pred_angles") or []) if a is not None and a >= 0]
    errors = [g for g in gts if g["outcome"] == ORIENTATION and g.get("pred_rotated_correct")]
    wrong_turns = sum(g.get("pred_angle") == 1 for g in errors)
    missed_turns = sum(g.get("pred_angle") == 0 for g in errors)
    out = {"crops": len(angles), "turned": sum(a == 1 for a in angles), "wrong_turns": wrong_turns,
           "missed_turns": missed_turns}
    out["line"] = (f"{out['crops']} crops classified, {out['turned']} turned by 180°; orientation errors of matched "
                   f"texts: {wrong_turns} turned upside down, {missed_turns} left upside down")
    return out


def _image_row(sample, image, page, att, score_thresh: float, timings: dict) -> dict:
    from workbench.reports.records import short_key

    h, w = image.shape[:2]
    row = {"image_path": str(sample.image_path), "label_file": sample.file, "line": sample.line}
    row["image"] = short_key(row)
    counts = att.counts()
    n_care = len(att.gts)
    fps = att.false_positives
    row.update({
        "width": w, "height": h,
        "gt_polys": [p.tolist() for p in sample.polys], "gt_texts": list(sample.texts),
        "gt_ignore": [bool(x) for x in sample.ignore_tags],
        "pred_polys": [p.tolist() for p in page.polys], "pred_texts": page.texts, "pred_scores": page.scores,
        "pred_det_scores": page.det_scores, "pred_angles": page.angles,
        "pred_kept": [s >= score_thresh for s in page.scores], "pred_status": att.pred_status,
        "pred_gt": att.pred_gt, "false_positives": fps, "n_care": n_care, "n_correct": counts.get("correct", 0),
        "n_errors": n_care - counts.get("correct", 0) + len(fps), "counts": dict(counts), "timings": timings,
    })
    return row


def _progress(total: int):
    """Progress with an ETA: a bar on a terminal, a log line about every 10 % otherwise."""
    from workbench.reports.progress import Progress

    bar = Progress(total, "analyse", "img", log).__enter__()

    def update(done, row):
        bar.update(1)
        if done == total:
            bar.__exit__(None, None, None)

    return update


# --- printing ---------------------------------------------------------------------------------------------------
def format_verdict(result: dict) -> str:
    from workbench.analysis.attribution import MODULE_OF, OUTCOMES

    v = result["verdict"]
    t = result["timings"]
    lines = [f"\nEnd-to-end attribution: {t['images']} images, {v.total} texts "
             f"({result['describe'].get('runner')})", f"  {'outcome':<17}{'texts':>7}{'share':>8}  module"]
    for o in OUTCOMES:
        n = v.by_outcome.get(o, 0)
        share = f"{100 * n / v.total:.1f}%" if v.total else "–"
        lines.append(f"  {o:<17}{n:>7}{share:>8}  {MODULE_OF.get(o, '')}")
    lines.append(f"  {'false positives':<17}{v.false_positives:>7}{'':>8}  {MODULE_OF['missed']} (kept readings of "
                 "boxes that match no text)")
    lines.append(f"\nVerdict: {v.headline}")
    lines += [f"  Note: {n}" for n in v.notes]
    if v.modules:
        lines.append(f"  {'module':<24}{'errors':>7}{'gone if perfect':>17}  examples")
        for m in v.modules:
            lines.append(f"  {m.module:<24}{m.errors:>7}{m.fixable:>17}  {', '.join(m.examples[:3])}")
        lines += [f"  - {a}" for a in v.advice]
        lines.append("  (gone if perfect: for detection, the lost texts whose GT box is read right + the false "
                     "positives)")
    report = next((str(f) for f in result["files"] if str(f).endswith("report.html")), "")
    lines.append(f"\nReport: {report}")
    if result.get("orientation"):
        lines.append(f"Text-line orientation: {result['orientation']['line']}")
    n = result.get("next_training_set")
    if n:
        lines.append(f"Next training set: {n['rec_samples']} rec crops ({n['rec_label_file']}), "
                     f"{n['det_images']} det images ({n['det_label_file']}), {n['textline_ori_samples']} "
                     f"text-line orientation crops ({n['textline_ori_label_file']})")
    share = t["inference_share"]
    lines.append(f"Time: {t['per_image_s']:.2f} s/image over {t['images']} images, model inference "
                 f"{t['inference_s'] / max(t['images'], 1):.2f} s/image ({100 * share:.0f}%); "
                 f"report {result['report_s']:.1f} s")
    if result.get("skipped"):
        lines.append(f"Skipped {len(result['skipped'])} unreadable image(s), e.g. {result['skipped'][0]['where']}")
    return "\n".join(lines)
