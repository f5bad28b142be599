"""Compare two evaluations of the same module: metrics side by side and what changed sample by sample.

A side is an MLflow run id, a run directory (``report/records.jsonl`` + ``metrics.json`` or the latest
checkpoint's ``state.json``), or a report directory (``records.jsonl`` + ``summary.json``), see :func:`load_side`.

Samples are matched by ``label_file:line`` (falling back to the label file's name, then the image path, when the
two runs saw the data under other paths). What changed depends on what a record is (:func:`record_kind`), not on
the task's name: for per-sample *texts* (recognition) and *classes* (the orientation classifiers) a sample is
*fixed* when it is wrong in A and right in B and *regressed* the other way round ("right" for texts as the
selected metric defines it: ``acc`` → upstream's comparison, ``acc_honest_nocase`` → caseless, else the honest
exact match); for per-image *boxes* (detection), GT boxes *found* (missed in A, matched in B) and *lost* (matched
in A, missed in B), and per-image hmean changes.

The point of it is the guardrail: fine-tuning on private data can make a model worse on what it already did well;
:attr:`Comparison.regressed_on_metric` says so, and the CLI prints it loudly.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from workbench.reports import html as H
from workbench.reports.records import KEY_SCHEMES, display_path, read_jsonl, short_key
from workbench.errors import WorkbenchError

#: metric deltas smaller than this are "unchanged" (float noise of re-evaluations)
TOLERANCE = 1e-9


# --- loading one side ------------------------------------------------------------------------------------------
@dataclass
class Side:
    """One evaluation: where it came from, its task, metrics and per-sample records."""

    ref: str  # what the user gave
    source: str  # "mlflow run" | "run dir" | "report dir"
    name: str  # short name for file names
    task: str
    metrics: dict[str, float]
    records: list[dict] = field(default_factory=list)
    select_metric: Optional[str] = None
    records_from: Optional[str] = None  # where the records were read (a path or an artifact URI)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        n = f"{len(self.records)} records" if self.records else "no per-sample records"
        return f"{self.ref} ({self.source}, {self.task}, {n})"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WorkbenchError(f"{path}: not valid JSON ({exc})") from exc


def _numbers(d: dict) -> dict[str, float]:
    return {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and not k.startswith("_")}


def infer_task(records: Sequence[dict]) -> Optional[str]:
    """The task from the record columns (``det``, ``rec``, or the classifier task whose classes the labels are),
    ``None`` when there are none."""
    if not records:
        return None
    row = records[0]
    if "matches" in row or "gt_polys" in row:
        return "det"
    if "gt" in row and "pred" in row:
        return "rec"
    if "gt_label" in row:
        from workbench.tasks import registry

        labels = {str(r.get("gt_label")) for r in records}
        for entry in registry.TASKS.values():
            names = getattr(getattr(entry.task, "classes", None), "names", None)
            if names and labels <= set(names):
                return entry.name
    return None


#: what one record is: a text read (``edit_distance``), a class decided (``gt_label``), or an image's boxes
RECORD_KINDS = ("text", "class", "boxes")


def record_kind(records: Sequence[dict]) -> str:
    row = records[0] if records else {}
    if "edit_distance" in row:
        return "text"
    if "gt_label" in row:
        return "class"
    return "boxes"


def _slug(text: str, n: int) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:n] or "x"


def _report_files(report_dir: Path) -> tuple[list[dict], dict]:
    records_file, summary_file = report_dir / "records.jsonl", report_dir / "summary.json"
    records = read_jsonl(records_file) if records_file.is_file() else []
    summary = _read_json(summary_file) if summary_file.is_file() else {}
    return records, summary


def _load_dir(path: Path) -> Side:
    if (path / "records.jsonl").is_file():  # a report directory
        records, summary = _report_files(path)
        name = path.parent.name if path.name == "report" else path.name
        task = summary.get("task") or infer_task(records)
        metrics = _numbers(summary.get("metrics", {}))
        side = Side(str(path), "report dir", _slug(name, 20), task or "?", metrics, records,
                    records_from=str(path / "records.jsonl"))
        if path.name == "report" and not metrics:  # report/ of a run dir without a summary: use the run's metrics
            side.metrics = _run_dir_metrics(path.parent)[0]
        return side
    records, summary = _report_files(path / "report")
    metrics, meta = _run_dir_metrics(path)
    if not metrics:
        metrics = _numbers(summary.get("metrics", {}))
    if not metrics and not records:
        raise WorkbenchError(f"{path}: neither a report directory (records.jsonl) nor a run directory "
                             "(report/records.jsonl, metrics.json or checkpoints/latest/state.json)")
    task = summary.get("task") or meta.get("task") or infer_task(records) or "?"
    side = Side(str(path), "run dir", _slug(path.name, 20), task, metrics, records, meta.get("select_metric"),
                records_from=str(path / "report" / "records.jsonl") if records else None)
    if not records:
        side.notes.append(f"{path}: no report/records.jsonl — metrics only")
    return side


def _run_dir_metrics(run_dir: Path) -> tuple[dict[str, float], dict]:
    """Metrics of a run directory (``metrics.json``, else the latest checkpoint's ``last_metrics``) and the
    checkpoint meta (task, select_metric) when there is one."""
    meta: dict = {}
    for name in ("latest", "best"):
        meta_file = run_dir / "checkpoints" / name / "meta.json"
        if meta_file.is_file():
            meta = _read_json(meta_file)
            break
    if (run_dir / "metrics.json").is_file():
        return _numbers(_read_json(run_dir / "metrics.json")), meta
    state = run_dir / "checkpoints" / "latest" / "state.json"
    if state.is_file():
        return _numbers(_read_json(state).get("last_metrics", {})), meta
    return {}, meta


def _load_mlflow(run_id: str, tracking_uri: Optional[str], workdir: Path) -> Side:
    from workbench.tracking import mlflow as tracking

    from workbench.tracking.hints import mlflow_call

    with mlflow_call(tracking.resolve_tracking_uri(tracking_uri), f"MLflow run {run_id}"):
        run = tracking.run_summary(run_id, tracking_uri)
    metrics = {k[len("eval/"):]: v for k, v in run["metrics"].items() if k.startswith("eval/")}
    records, summary, records_from, notes = [], {}, None, []
    artifacts = set(tracking.list_artifacts(run_id, "report", tracking_uri))
    if "report/records.jsonl" in artifacts:
        dst = workdir / run_id
        dst.mkdir(parents=True, exist_ok=True)
        records = read_jsonl(tracking.download_artifacts(run_id, "report/records.jsonl", dst, tracking_uri))
        if "report/summary.json" in artifacts:
            summary = _read_json(tracking.download_artifacts(run_id, "report/summary.json", dst, tracking_uri))
        records_from = f"mlflow run {run_id}: report/records.jsonl"
    else:
        local = tracking.run_dir_of(run_id, tracking_uri)
        if local is not None and (local / "report" / "records.jsonl").is_file():
            records, summary = _report_files(local / "report")
            records_from = str(local / "report" / "records.jsonl")
        else:
            notes.append(f"MLflow run {run_id}: no report/records.jsonl artifact — metrics only")
    if not metrics:
        metrics = _numbers(summary.get("metrics", {}))
    task = run["tags"].get("wb.task") or summary.get("task") or infer_task(records) or "?"
    select = run["params"].get("eval.select_metric")
    return Side(run_id, "mlflow run", run_id[:8], task, metrics, records, select, records_from, notes)


def load_side(ref: str, tracking_uri: Optional[str] = None, workdir: Optional[Path] = None,
              task: Optional[str] = None) -> Side:
    """An MLflow run id, a run directory, a report directory or a registered version (``models:/<name>/<version>``
    or ``@<alias>``: the training run of its fine-tuned ``task`` module, which may be omitted when it has one) →
    :class:`Side` (what ``ref`` is: ``workbench.weights.refs.classify``)."""
    from workbench.weights.refs import RefKind, classify

    path = Path(ref)
    kind = classify(ref)
    if kind is RefKind.REGISTERED:
        from workbench.weights.refs import resolve

        w = resolve(ref, tracking_uri=tracking_uri, task=task, fetch=False)
        if not w.run_id:
            raise WorkbenchError(f"{ref}: its {task or w.task} module has no training run to compare (a stock or "
                                 "untracked model): compare a `wb eval` run of it instead")
        side = _load_mlflow(w.run_id, tracking_uri, workdir or Path(tempfile.mkdtemp(prefix="wb-compare-")))
        side.ref, side.source, side.name = ref, f"registered version (run {w.run_id})", _slug(ref[len("models:/"):], 20)
    elif path.is_dir():
        side = _load_dir(path)
    elif kind is RefKind.RUN_ID:
        side = _load_mlflow(ref, tracking_uri, workdir or Path(tempfile.mkdtemp(prefix="wb-compare-")))
    else:
        raise WorkbenchError(f"{ref!r} is neither a directory, an MLflow run id (32 hex digits) nor a registered "
                             "version (models:/<name>/<version>)")
    if task and side.task != task:
        raise WorkbenchError(f"{ref}: a {side.task} evaluation, not {task}")
    inferred = infer_task(side.records)
    if inferred and side.task != inferred:
        raise WorkbenchError(f"{ref}: labelled a {side.task} evaluation but its records are {inferred} records")
    from workbench.tasks import registry

    if side.task not in registry.TASKS:
        raise WorkbenchError(f"{ref}: cannot tell which task it evaluates (no summary.json, wb.task tag or records)")
    return side


# --- metrics ---------------------------------------------------------------------------------------------------
def higher_is_better(name: str) -> Optional[bool]:
    """``True`` / ``False`` for quality metrics, ``None`` for counts and settings (no better or worse)."""
    base = name.rsplit("/", 1)[-1]
    if base == "n" or base.startswith("n_") or base in ("best_score_threshold",) or base.startswith("_"):
        return None
    if "loss" in base or base.startswith(("cer", "wer")) or base.endswith(("_cer", "_wer")):
        return False
    return True


def format_delta(delta: float | None, a: Any = None, b: Any = None) -> str:
    if delta is None:
        return ""
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        return f"{int(delta):+d}"
    return f"{delta:+.4f}"


def metric_rows(a: dict, b: dict) -> list[dict]:
    """One row per metric of either side: values, delta and whether B is better / worse / the same."""
    names = list(a) + [k for k in b if k not in a]
    out = []
    for name in names:
        va, vb = a.get(name), b.get(name)
        delta = None if va is None or vb is None else vb - va
        direction = higher_is_better(name)
        verdict = None
        if delta is not None and direction is not None:
            if abs(delta) <= TOLERANCE:
                verdict = "same"
            else:
                verdict = "better" if (delta > 0) == direction else "worse"
        out.append({"name": name, "a": va, "b": vb, "delta": delta, "verdict": verdict})
    return out


def correctness_column(metric: str) -> str:
    """The record column that says "right" in the sense of the rec metric ``metric``."""
    if metric in ("acc", "norm_edit_dis"):
        return "correct"
    if metric.endswith("nocase"):
        return "correct_nocase"
    return "correct_honest"


# --- matching samples ------------------------------------------------------------------------------------------
def match_samples(a: Sequence[dict], b: Sequence[dict]) -> tuple[str, dict[str, dict], dict[str, dict]]:
    """(key scheme, key → row of A, key → row of B) with the scheme that pairs up the most samples.

    Schemes, most specific first: ``label_file:line``, ``label_name:line``, ``image_path``, ``image_name``, ``id``;
    a scheme that gives two rows of one side the same key is not used.
    """
    best = ("none", {}, {}, -1)
    for scheme, key_of in KEY_SCHEMES.items():
        ka = [key_of(r) for r in a]
        kb = [key_of(r) for r in b]
        if any(k is None for k in ka + kb) or len(set(ka)) != len(ka) or len(set(kb)) != len(kb):
            continue
        common = len(set(ka) & set(kb))
        if common > best[3]:
            best = (scheme, dict(zip(ka, a)), dict(zip(kb, b)), common)
        if common == min(len(ka), len(kb)):  # every sample of the smaller side paired: no better scheme
            break
    if best[3] < 0:
        raise WorkbenchError("the records have no column that identifies a sample (label_file+line, image path, id)")
    return best[0], best[1], best[2]


# --- the comparison --------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    a: Side
    b: Side
    task: str
    metric: str
    metrics: list[dict]
    key_scheme: str
    counts: dict[str, int]
    fixed: list[dict]  # rec: samples; det: GT boxes found
    regressed: list[dict]  # rec: samples; det: GT boxes lost
    images: list[dict] = field(default_factory=list)  # det: per-image hmean changes, worst first
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # what run_compare wrote
    kind: str = "text"  # what a record is (record_kind): text | class | boxes

    @property
    def per_sample(self) -> bool:
        """Samples are fixed / regressed (texts, classes); else GT boxes are found / lost (detection)."""
        return self.kind != "boxes"

    @property
    def metric_row(self) -> dict:
        return next(r for r in self.metrics if r["name"] == self.metric)

    @property
    def regressed_on_metric(self) -> bool:
        return self.metric_row["verdict"] == "worse"

    def to_json(self) -> dict:
        def side(s: Side) -> dict:
            return {"ref": s.ref, "source": s.source, "task": s.task, "n_records": len(s.records),
                    "records_from": s.records_from, "select_metric": s.select_metric, "metrics": s.metrics}

        row = self.metric_row
        return {
            "task": self.task, "a": side(self.a), "b": side(self.b),
            "metric": self.metric, "metric_a": row["a"], "metric_b": row["b"], "metric_delta": row["delta"],
            "regressed_on_metric": self.regressed_on_metric,
            "metrics": self.metrics, "key_scheme": self.key_scheme, "counts": self.counts,
            "fixed" if self.per_sample else "boxes_found": self.fixed,
            "regressed" if self.per_sample else "boxes_lost": self.regressed,
            "images": self.images, "warnings": self.warnings,
        }


def _rec_changes(a: dict[str, dict], b: dict[str, dict], column: str) -> tuple[dict, list, list]:
    counts = dict.fromkeys(("both_right", "both_wrong", "both_wrong_changed", "closer", "further", "fixed",
                            "regressed"), 0)
    fixed, regressed = [], []
    for key in a.keys() & b.keys():
        ra, rb = a[key], b[key]
        ok_a, ok_b = bool(ra.get(column)), bool(rb.get(column))
        if ok_a and ok_b:
            counts["both_right"] += 1
            continue
        if not ok_a and not ok_b:
            counts["both_wrong"] += 1
            if ra["pred"] != rb["pred"]:
                counts["both_wrong_changed"] += 1
                counts["closer" if rb["edit_distance"] < ra["edit_distance"] else "further"] += (
                    rb["edit_distance"] != ra["edit_distance"])
            continue
        item = {"key": key, "gt": ra["gt"], "pred_a": ra["pred"], "pred_b": rb["pred"], "score_a": ra.get("score"),
                "score_b": rb.get("score"), "edit_distance_a": ra["edit_distance"],
                "edit_distance_b": rb["edit_distance"], "image_path": rb.get("image_path") or ra.get("image_path"),
                "label_file": rb.get("label_file"), "line": rb.get("line"), "width": rb.get("width"),
                "height": rb.get("height")}
        (fixed if ok_b else regressed).append(item)
    counts["fixed"], counts["regressed"] = len(fixed), len(regressed)
    # most striking first: regressions where B is furthest off, fixes where A was furthest off
    regressed.sort(key=lambda r: (-r["edit_distance_b"], r["key"]))
    fixed.sort(key=lambda r: (-r["edit_distance_a"], r["key"]))
    return counts, fixed, regressed


def _class_changes(a: dict[str, dict], b: dict[str, dict]) -> tuple[dict, list, list]:
    """Classifier records: right / wrong by ``correct``; a changed wrong prediction is a class that changed."""
    counts = dict.fromkeys(("both_right", "both_wrong", "both_wrong_changed", "fixed", "regressed"), 0)
    fixed, regressed = [], []
    for key in a.keys() & b.keys():
        ra, rb = a[key], b[key]
        ok_a, ok_b = bool(ra.get("correct")), bool(rb.get("correct"))
        if ok_a == ok_b:
            counts["both_right" if ok_a else "both_wrong"] += 1
            counts["both_wrong_changed"] += (not ok_a) and ra.get("pred_label") != rb.get("pred_label")
            continue
        item = {"key": key, "gt": ra.get("gt_label"), "pred_a": ra.get("pred_label"), "pred_b": rb.get("pred_label"),
                "score_a": ra.get("score"), "score_b": rb.get("score"), "angle": rb.get("angle", 0),
                "image_path": rb.get("image_path") or ra.get("image_path"), "label_file": rb.get("label_file"),
                "line": rb.get("line")}
        (fixed if ok_b else regressed).append(item)
    counts["fixed"], counts["regressed"] = len(fixed), len(regressed)
    # most striking first: the most confident wrong decisions
    regressed.sort(key=lambda r: (-(r["score_b"] or 0), r["key"]))
    fixed.sort(key=lambda r: (-(r["score_a"] or 0), r["key"]))
    return counts, fixed, regressed


def _det_changes(a: dict[str, dict], b: dict[str, dict]) -> tuple[dict, list, list, list, list[str]]:
    counts = dict.fromkeys(("images_better", "images_worse", "images_same", "boxes_found", "boxes_lost",
                            "false_positives_added", "false_positives_removed"), 0)
    found, lost, images, warnings = [], [], [], []
    mismatched = []
    for key in sorted(a.keys() & b.keys()):
        ra, rb = a[key], b[key]
        delta = rb["hmean"] - ra["hmean"]
        counts["images_better" if delta > TOLERANCE else "images_worse" if delta < -TOLERANCE else "images_same"] += 1
        fp_delta = len(rb["false_positives"]) - len(ra["false_positives"])
        counts["false_positives_added" if fp_delta > 0 else "false_positives_removed"] += abs(fp_delta)
        item = {"key": key, "hmean_a": ra["hmean"], "hmean_b": rb["hmean"], "delta": delta,
                "missed_a": len(ra["missed_gt"]), "missed_b": len(rb["missed_gt"]),
                "false_positives_a": len(ra["false_positives"]), "false_positives_b": len(rb["false_positives"]),
                "found": [], "lost": []}
        if ra.get("n_gt") != rb.get("n_gt") or ra.get("gt_texts") != rb.get("gt_texts"):
            mismatched.append(key)  # other GT: box indices do not correspond
        else:
            matched_a = {g for g, _, _ in ra["matches"]}
            matched_b = {g for g, _, _ in rb["matches"]}
            texts = rb.get("gt_texts") or []
            for g in sorted(matched_b - matched_a):
                item["found"].append(g)
                found.append({"key": key, "index": g, "text": texts[g] if g < len(texts) else None})
            for g in sorted(matched_a - matched_b):
                item["lost"].append(g)
                lost.append({"key": key, "index": g, "text": texts[g] if g < len(texts) else None})
        images.append(item)
    counts["boxes_found"], counts["boxes_lost"] = len(found), len(lost)
    if mismatched:
        warnings.append(f"{len(mismatched)} images have different GT in A and B (e.g. {mismatched[0]}); "
                        "their boxes are not compared")
    images.sort(key=lambda r: (r["delta"], -len(r["lost"]), r["key"]))
    return counts, found, lost, images, warnings


def compare(a: Side, b: Side, metric: Optional[str] = None) -> Comparison:
    if a.task != b.task:
        raise WorkbenchError(f"A is a {a.task} evaluation ({a.ref}) but B is a {b.task} evaluation ({b.ref}); "
                             "compare two evaluations of the same module")
    task = a.task
    from workbench.tasks import registry

    metric = metric or a.select_metric or b.select_metric or registry.get(task).select_metric
    rows = metric_rows(a.metrics, b.metrics)
    available = sorted(set(a.metrics) & set(b.metrics))
    if metric not in available:
        raise WorkbenchError(f"metric {metric!r} is not in both A and B; available: {', '.join(available) or 'none'}")
    warnings = list(a.notes) + list(b.notes)
    counts: dict[str, int] = {"n_a": len(a.records), "n_b": len(b.records)}
    fixed: list = []
    regressed: list = []
    images: list = []
    scheme = "none"
    kind = record_kind(a.records or b.records)
    if a.records and b.records:
        scheme, ka, kb = match_samples(a.records, b.records)
        common = ka.keys() & kb.keys()
        counts.update(common=len(common), only_a=len(ka.keys() - kb.keys()), only_b=len(kb.keys() - ka.keys()))
        if counts["only_a"] or counts["only_b"]:
            warnings.append(f"A and B were evaluated on different samples ({counts['only_a']} only in A, "
                            f"{counts['only_b']} only in B): metric deltas are not like for like")
        if kind == "text":
            c, fixed, regressed = _rec_changes(ka, kb, correctness_column(metric))
            counts.update(c)
        elif kind == "class":
            c, fixed, regressed = _class_changes(ka, kb)
            counts.update(c)
        else:
            c, fixed, regressed, images, w = _det_changes(ka, kb)
            counts.update(c)
            warnings += w
    return Comparison(a, b, task, metric, rows, scheme, counts, fixed, regressed, images, warnings, kind=kind)


# --- terminal --------------------------------------------------------------------------------------------------
_ANSI = {"better": "\033[32m", "worse": "\033[31m", "bold": "\033[1m", "warn": "\033[1;33m", "end": "\033[0m"}


def format_text(c: Comparison, colour: bool = False, max_items: int = 10) -> str:
    """The comparison for a terminal: ANSI colours and arrows when ``colour``, plain words otherwise."""

    def paint(text: str, style: str) -> str:
        return f"{_ANSI[style]}{text}{_ANSI['end']}" if colour and style in _ANSI else text

    lines = [f"A: {c.a.describe()}", f"B: {c.b.describe()}", ""]
    width = max(len(r["name"]) for r in c.metrics) + 2
    lines.append(f"{'metric':<{width}} {'A':>12} {'B':>12} {'B − A':>12}")
    for r in c.metrics:
        d = format_delta(r["delta"], r["a"], r["b"])
        if r["verdict"] in ("better", "worse"):
            d = paint(f"{'▲' if r['delta'] > 0 else '▼'} {d}", r["verdict"]) if colour else f"{d} ({r['verdict']})"
        name = f"{r['name']} *" if r["name"] == c.metric else r["name"]
        lines.append(f"{name:<{width}} {H.fmt(r['a']):>12} {H.fmt(r['b']):>12} {d:>12}")
    lines.append(f"(* selected metric: {c.metric})")
    cnt = c.counts
    if c.key_scheme != "none":
        lines.append("")
        lines.append(f"samples matched by {c.key_scheme}: {cnt['common']} in both, {cnt['only_a']} only in A, "
                     f"{cnt['only_b']} only in B")
        if c.per_sample:
            lines.append(f"  fixed (wrong in A, right in B): {cnt['fixed']}   regressed (right in A, wrong in B): "
                         f"{cnt['regressed']}   both wrong: {cnt['both_wrong']} ({cnt['both_wrong_changed']} "
                         f"{'read' if c.kind == 'text' else 'classified'} differently)")
            for title, items, pred_key in (("regressed", c.regressed, "pred_b"), ("fixed", c.fixed, "pred_b")):
                for it in items[:max_items]:
                    lines.append(f"  {title:<9} {it['key']}: {it['gt']!r}  A {it['pred_a']!r} → B {it[pred_key]!r}")
        else:
            lines.append(f"  GT boxes found by B: {cnt['boxes_found']}   lost by B: {cnt['boxes_lost']}   "
                         f"false positives added: {cnt['false_positives_added']}, removed: "
                         f"{cnt['false_positives_removed']}")
            lines.append(f"  images better: {cnt['images_better']}, worse: {cnt['images_worse']}, "
                         f"same: {cnt['images_same']}")
            for it in [i for i in c.images if i["delta"] < -TOLERANCE][:max_items]:
                lines.append(f"  worse     {it['key']}: hmean {it['hmean_a']:.3f} → {it['hmean_b']:.3f}"
                             f" (lost boxes {it['lost']})")
    for w in c.warnings:
        lines.append(paint(f"note: {w}", "warn"))
    row = c.metric_row
    if c.regressed_on_metric:
        lines.append("")
        lines.append(paint(f"WARNING: B is worse than A on {c.metric}: {H.fmt(row['a'])} → {H.fmt(row['b'])} "
                           f"({row['delta']:+.4f})", "warn"))
    return "\n".join(lines)


# --- HTML ------------------------------------------------------------------------------------------------------
def _metrics_table(c: Comparison) -> H.Markup:
    body, classes = [], []
    for r in c.metrics:
        d = format_delta(r["delta"], r["a"], r["b"])
        arrow = ""
        if r["verdict"] in ("better", "worse"):
            arrow = "▲ " if r["delta"] > 0 else "▼ "
        kind = {"better": "ok", "worse": "bad"}.get(r["verdict"] or "", "")
        delta = H.Markup(f'<span class="badge {kind}">{H.esc(arrow + d)}</span>') if kind else H.esc(d)
        body.append((r["name"], r["a"], r["b"], delta))
        classes.append("sel" if r["name"] == c.metric else "")
    return H.table(["metric", "A", "B", "B − A"], body, row_classes=classes)


def _counts(c: Comparison) -> H.Markup:
    n = c.counts
    if c.key_scheme == "none":
        return H.Markup('<p class="note">No per-sample records on both sides: metrics only.</p>')
    matched = ("matched samples", n["common"], f"by {c.key_scheme}; {n['only_a']} only in A, {n['only_b']} only in B")
    if c.per_sample:
        wrong_detail = (f"{n['both_wrong_changed']} read differently: {n['closer']} closer to the GT, {n['further']} "
                        "further") if c.kind == "text" else f"{n['both_wrong_changed']} classified differently"
        items = [
            ("regressed", n["regressed"], "right in A, wrong in B"),
            ("fixed", n["fixed"], "wrong in A, right in B"),
            ("both right", n["both_right"], ""),
            ("both wrong", n["both_wrong"], wrong_detail),
            matched,
        ]
    else:
        items = [
            ("GT boxes lost", n["boxes_lost"], "matched in A, missed in B"),
            ("GT boxes found", n["boxes_found"], "missed in A, matched in B"),
            ("images worse", n["images_worse"], "lower per-image hmean"),
            ("images better", n["images_better"], f"{n['images_same']} unchanged"),
            ("false positives", H.Markup(f"+{n['false_positives_added']} / −{n['false_positives_removed']}"),
             "added / removed, summed per image"),
            matched,
        ]
    return H.cards(items)


def _rec_card(item: dict, kind: str) -> H.Markup:
    image = H.read_image(item.get("image_path"))
    pic = (H.img(H.data_uri(H.fit(image, 400, 72, upscale=3.0), quality=88), alt=item["gt"]) if image is not None
           else H.missing_picture(f"image not readable: {item.get('image_path')}"))
    row = {"label_file": item.get("label_file"), "line": item.get("line"), "image_path": item.get("image_path")}
    where = " · ".join(x for x in (short_key(row) if item.get("label_file") else item["key"],
                                   display_path(row)) if x)
    return H.Markup(
        f'<div class="case {kind}" data-case-id="{H.esc(item["key"])}"><div class="top"><b>{kind}</b>'
        f'<span>score A {H.fmt(item["score_a"], 3)} · B {H.fmt(item["score_b"], 3)} · edit distance '
        f'A {item["edit_distance_a"]} → B {item["edit_distance_b"]}</span></div><div class="pic">{pic}</div>'
        f'{H.diff(item["gt"], item["pred_a"], ("GT", "A"))}{H.diff(item["gt"], item["pred_b"], ("GT", "B"))}'
        f'<div class="path">{H.esc(where)}</div></div>')


def _class_card(item: dict, kind: str) -> H.Markup:
    import numpy as np

    image = H.read_image(item.get("image_path"))
    if image is None:
        pic = H.missing_picture(f"image not readable: {item.get('image_path')}")
    else:  # as the model saw it: turned clockwise by the labelled angle
        shown = np.ascontiguousarray(np.rot90(image, (-int(item.get("angle") or 0) // 90) % 4))
        pic = H.img(H.data_uri(H.fit(shown, 400, 160, upscale=2.0), quality=85), alt=str(item["gt"]))
    row = {"label_file": item.get("label_file"), "line": item.get("line"), "image_path": item.get("image_path")}
    where = " · ".join(x for x in (short_key(row) if item.get("label_file") else item["key"],
                                   display_path(row)) if x)
    return H.Markup(
        f'<div class="case {kind}" data-case-id="{H.esc(item["key"])}"><div class="top"><b>{kind}</b>'
        f'<span>labelled <b>{H.esc(item["gt"])}</b> · A {H.esc(item["pred_a"])} ({H.fmt(item["score_a"], 3)}) → '
        f'B {H.esc(item["pred_b"])} ({H.fmt(item["score_b"], 3)})</span></div><div class="pic">{pic}</div>'
        f'<div class="path">{H.esc(where)}</div></div>')


def _det_card(item: dict, ra: dict, rb: dict, kind: str) -> H.Markup:
    from workbench.reports.det_report import draw

    image = H.read_image(rb.get("image_path") or ra.get("image_path"))
    if image is None:
        pics = H.missing_picture(f"image not readable: {rb.get('image_path')}")
    else:
        pics = "".join(f'<div><div class="path">{side}</div>{H.img(H.data_uri(draw(image, r, 620, 620), quality=80))}'
                       f"</div>" for side, r in (("A", ra), ("B", rb)))
        pics = H.Markup(f'<div class="grid2" style="grid-template-columns:1fr 1fr;gap:6px">{pics}</div>')
    texts = rb.get("gt_texts") or []

    def names(idx):
        shown = ", ".join(f"#{g} “{texts[g] if g < len(texts) else ''}”" for g in idx[:10])
        return shown + (" …" if len(idx) > 10 else "")

    meta = ""
    if item["lost"]:
        meta += f'<div class="meta">{H.badge("lost", "bad")}{H.esc(names(item["lost"]))}</div>'
    if item["found"]:
        meta += f'<div class="meta">{H.badge("found", "ok")}{H.esc(names(item["found"]))}</div>'
    return H.Markup(
        f'<div class="case {kind}" data-case-id="{H.esc(item["key"])}"><div class="top"><b>{kind}</b><span>hmean '
        f'{item["hmean_a"]:.3f} → <b>{item["hmean_b"]:.3f}</b> · '
        f'missed {item["missed_a"]} → {item["missed_b"]} · '
        f'false positives {item["false_positives_a"]} → {item["false_positives_b"]}</span></div>'
        f'<div class="pic">{pics}</div>{meta}<div class="path">{H.esc(short_key(rb))}</div></div>')


def write_html(c: Comparison, path: Path, max_cases: int = 100) -> Path:
    row = c.metric_row
    if c.regressed_on_metric:
        verdict = H.banner(f"B is worse than A on {c.metric}: {H.fmt(row['a'])} → {H.fmt(row['b'])} "
                           f"({row['delta']:+.4f})", "warn")
    else:
        word = {"better": "better than", "same": "as good as"}.get(row["verdict"] or "", "compared with")
        verdict = H.banner(f"B is {word} A on {c.metric}: {H.fmt(row['a'])} → {H.fmt(row['b'])}"
                           + (f" ({row['delta']:+.4f})" if row["delta"] is not None else ""), "ok")
    sides = H.kv_table({"A": c.a.describe(), "B": c.b.describe(), "samples matched by": c.key_scheme})
    body = [verdict] + [H.banner(w, "warn") for w in c.warnings]
    body.append(H.section("metrics", "Metrics", H.Markup(sides + _metrics_table(c)),
                          "▲/▼: B higher / lower than A, green when that is better. Counts have no colour."))
    body.append(H.section("counts", "Samples", _counts(c)))
    if c.per_sample:
        card = _rec_card if c.kind == "text" else _class_card
        cards = [card(it, "regressed") for it in c.regressed[:max_cases]]
        cards += [card(it, "fixed") for it in c.fixed[:max_cases]]
        changes = H.Markup('<div class="cases">' + "".join(cards) + "</div>")
        note = (f"Regressed first ({len(c.regressed)}: right in A, wrong in B), then fixed ({len(c.fixed)}); "
                f"at most {max_cases} of each shown. 'Right' as {c.metric} counts it.")
    else:
        from workbench.reports.det_report import COLOURS, _hex

        ka, kb = {}, {}
        if c.a.records and c.b.records:
            _, ka, kb = match_samples(c.a.records, c.b.records)
        worse = [it for it in c.images if it["delta"] < -TOLERANCE or it["lost"]]
        better = [it for it in reversed(c.images) if (it["delta"] > TOLERANCE or it["found"]) and it not in worse]
        cards = [_det_card(it, ka[it["key"]], kb[it["key"]], "regressed") for it in worse[:max_cases]]
        cards += [_det_card(it, ka[it["key"]], kb[it["key"]], "fixed") for it in better[:max_cases]]
        legend = H.legend([(_hex(v), k) for k, v in COLOURS.items()])
        changes = H.Markup(legend + '<div class="cases single">' + "".join(cards) + "</div>")
        note = (f"Images where B is worse or lost GT boxes first ({len(worse)}), then those where B is better "
                f"({len(better)}); at most {max_cases} of each shown. {c.counts.get('boxes_lost', 0)} GT boxes "
                f"lost, {c.counts.get('boxes_found', 0)} found.")
    body.append(H.section("changes", "What changed", changes, note))
    title = f"Compare {c.task}: {c.a.name} → {c.b.name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return H.write_page(path, title, H.Markup("".join(body)),
                        subtitle=f"A = {c.a.ref} · B = {c.b.ref} · selected metric {c.metric}",
                        nav=[("metrics", "Metrics"), ("counts", "Samples"), ("changes", "What changed")])


def default_out_dir(a: Side, b: Side) -> Path:
    return Path("reports") / f"compare_{a.name[:8]}_{b.name[:8]}"


def run_compare(a: str, b: str, *, metric: Optional[str] = None, out_dir: Optional[Path] = None,
                tracking_uri: Optional[str] = None, max_cases: int = 100, task: Optional[str] = None) -> Comparison:
    """``wb compare A B``: load both sides (MLflow artifacts into a temporary folder), compare them and write
    ``compare.json`` / ``compare.html`` into ``out_dir`` (default :func:`default_out_dir`); the written files
    are the result's ``files``."""
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per small file is noise here
    with tempfile.TemporaryDirectory(prefix="wb-compare-") as tmp:
        task = task or _common_registered_task(a, b, tracking_uri)
        side_a = load_side(a, tracking_uri, Path(tmp) / "a", task=task)
        side_b = load_side(b, tracking_uri, Path(tmp) / "b", task=task)
        result = compare(side_a, side_b, metric)
        result.files = write_outputs(result, out_dir or default_out_dir(side_a, side_b), max_cases)
    return result


def _common_registered_task(a: str, b: str, tracking_uri: Optional[str]) -> Optional[str]:
    """For two registered versions: the module both fine-tuned, when that is exactly one (else None: each side
    decides, or says to name it with ``--task``)."""
    from workbench.tracking.registry import PREFIX, get_version

    refs = [r for r in (a, b) if r.startswith(PREFIX)]
    if not refs:
        return None
    tuned = [set(get_version(r, tracking_uri).fine_tuned()) for r in refs]
    common = set.intersection(*tuned)
    if len(common) > 1:
        raise WorkbenchError(f"{' and '.join(refs)} both fine-tuned {' and '.join(sorted(common))}: say which "
                             "module to compare with --task")
    return next(iter(common)) if len(common) == 1 else None


def write_outputs(c: Comparison, out_dir: Path, max_cases: int = 100) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_file = out_dir / "compare.json"
    json_file.write_text(json.dumps(c.to_json(), indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    return [json_file, write_html(c, out_dir / "compare.html", max_cases)]
