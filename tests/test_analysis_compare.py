"""`wb compare` on report dirs, run dirs and real MLflow runs: planted fixes and regressions come out exactly."""

from __future__ import annotations

import html
import json
import re

import pytest

from analysis_samples import care_indices, det_rows, det_samples, perfect_predictions, rec_rows, rec_samples
from workbench.analysis.compare import compare, format_text, load_side
from workbench.cli import main as wb_main
from workbench.errors import WorkbenchError
from workbench.reports.det_report import write_det_report
from workbench.reports.rec_report import write_rec_report


def main(argv):  # `wb compare ...`
    return wb_main(["compare", *argv])


FIXED = {3, 7}  # wrong in A, right in B
REGRESSED = {5, 11, 14, 17}  # right in A, wrong in B (17 by case only)
BOTH_WRONG = 9


def wrong(text: str) -> str:
    return text + "~"


def case_ids(page: str) -> list[str]:
    return [html.unescape(k) for k in re.findall(r'data-case-id="([^"]*)"', page)]


@pytest.fixture(scope="module")
def rec_pair(data_dir, tmp_path_factory):
    samples = rec_samples(data_dir, 20)
    gts = [s["gt"] for s in samples]
    assert gts[17] == "SELANGOR"
    preds_a = {i: wrong(gts[i]) for i in FIXED} | {BOTH_WRONG: wrong(gts[BOTH_WRONG])}
    preds_b = {i: wrong(gts[i]) for i in REGRESSED - {17}} | {17: gts[17].lower(), BOTH_WRONG: gts[BOTH_WRONG] + "~~"}
    root = tmp_path_factory.mktemp("rec_pair")
    rows_a, metrics_a = rec_rows(samples, preds_a)
    rows_b, metrics_b = rec_rows(samples, preds_b)
    write_rec_report(rows_a, metrics_a, root / "a", title="A")
    write_rec_report(rows_b, metrics_b, root / "b", title="B")
    keys = {i: f"{s['label_file']}:{s['line']}" for i, s in enumerate(samples)}
    return root, keys, (rows_a, metrics_a), (rows_b, metrics_b)


def read_outputs(out):
    return json.loads((out / "compare.json").read_text()), (out / "compare.html").read_text(encoding="utf-8")


def test_rec_report_dirs_fixed_and_regressed(rec_pair, tmp_path, capsys):
    root, keys, _, _ = rec_pair
    assert main([str(root / "a"), str(root / "b"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "WARNING: B is worse than A on acc" in printed
    assert "\033[" not in printed  # not a terminal: no colour codes
    data, page = read_outputs(tmp_path / "out")
    assert data["task"] == "rec" and data["metric"] == "acc" and data["regressed_on_metric"] is True
    assert {f["key"] for f in data["fixed"]} == {keys[i] for i in FIXED}
    assert {r["key"] for r in data["regressed"]} == {keys[i] for i in REGRESSED}
    counts = data["counts"]
    assert counts["both_wrong"] == 1 and counts["both_wrong_changed"] == 1 and counts["further"] == 1
    assert counts["both_right"] == 20 - len(FIXED) - len(REGRESSED) - 1 and counts["only_a"] == counts["only_b"] == 0
    assert data["metric_delta"] == pytest.approx((len(FIXED) - len(REGRESSED)) / 20, abs=1e-4)

    ids = case_ids(page)  # regressed pictured first, then fixed
    assert set(ids[: len(REGRESSED)]) == {keys[i] for i in REGRESSED}
    assert set(ids[len(REGRESSED):]) == {keys[i] for i in FIXED}
    assert "B is worse than A on acc" in page
    assert not re.search(r'(?:src|href)\s*=\s*["\']?(?:https?:)?//|@import', page)


def test_selected_metric_defines_right_and_wrong(rec_pair, tmp_path, capsys):
    root, keys, _, _ = rec_pair
    assert main([str(root / "a"), str(root / "b"), "--metric", "acc_honest_nocase", "--out", str(tmp_path)]) == 0
    data, _ = read_outputs(tmp_path)
    assert {r["key"] for r in data["regressed"]} == {keys[i] for i in REGRESSED - {17}}  # case-only is fine here
    assert data["metric"] == "acc_honest_nocase"
    with pytest.raises(WorkbenchError, match="not in both A and B"):
        compare(load_side(str(root / "a")), load_side(str(root / "b")), "no_such_metric")


def test_no_warning_when_b_is_better_and_fail_on_regression(rec_pair, tmp_path, capsys):
    root, keys, _, _ = rec_pair
    assert main([str(root / "b"), str(root / "a"), "--out", str(tmp_path / "ba")]) == 0  # swapped: B improves
    assert "WARNING" not in capsys.readouterr().out
    data, _ = read_outputs(tmp_path / "ba")
    assert {f["key"] for f in data["fixed"]} == {keys[i] for i in REGRESSED}
    assert main([str(root / "a"), str(root / "b"), "--out", str(tmp_path / "ab"), "--fail-on-regression"]) == 1


def test_coloured_terminal_output(rec_pair):
    root, _, _, _ = rec_pair
    c = compare(load_side(str(root / "a")), load_side(str(root / "b")))
    coloured = format_text(c, colour=True)
    assert "\033[31m▼" in coloured and "\033[1;33mWARNING" in coloured
    plain = format_text(c, colour=False)
    assert "(worse)" in plain and "\033[" not in plain


def test_run_dirs_and_sample_keys_from_other_paths(rec_pair, tmp_path):
    root, keys, (rows_a, metrics_a), (rows_b, metrics_b) = rec_pair
    # A: a run dir of `wb eval` (metrics.json + report/)
    run_a = tmp_path / "run_a"
    write_rec_report(rows_a, metrics_a, run_a / "report", title="A")
    (run_a / "metrics.json").write_text(json.dumps(metrics_a))
    # B: a training run dir without metrics.json: the latest checkpoint's last_metrics and select_metric; its
    # labels were read from another folder, so only the label file's name and line identify a sample
    run_b = tmp_path / "run_b"
    moved = [{**r, "label_file": "/elsewhere/label.txt"} for r in rows_b]
    write_rec_report(moved, metrics_b, run_b / "report", title="B")
    (run_b / "report" / "summary.json").unlink()
    ckpt = run_b / "checkpoints" / "latest"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"last_metrics": {**metrics_b, "_step": 10, "_epoch": 1}}))
    (ckpt / "meta.json").write_text(json.dumps({"task": "rec", "select_metric": "acc_honest"}))

    a, b = load_side(str(run_a)), load_side(str(run_b))
    assert (a.source, b.source, b.task, b.select_metric) == ("run dir", "run dir", "rec", "acc_honest")
    assert "_step" not in b.metrics and b.metrics["acc"] == metrics_b["acc"]
    c = compare(a, b)
    assert c.metric == "acc_honest" and c.key_scheme == "label_name:line"
    names = {i: f"label.txt:{i + 1}" for i in keys}
    assert {f["key"] for f in c.fixed} == {names[i] for i in FIXED}
    assert {r["key"] for r in c.regressed} == {names[i] for i in REGRESSED}


def test_different_tasks_are_an_error(rec_pair, data_dir, tmp_path, capsys):
    from workbench.cli import main as wb

    root, _, _, _ = rec_pair
    samples = det_samples(data_dir, lines=(1,))
    rows, metrics = det_rows(samples, [perfect_predictions(samples[0])])
    write_det_report(rows, metrics, tmp_path / "det", title="det")
    assert wb(["compare", str(root / "a"), str(tmp_path / "det")]) == 2
    err = capsys.readouterr().err
    assert "A is a rec evaluation" in err and "B is a det evaluation" in err
    assert wb(["compare", str(root / "a"), str(tmp_path / "nothing-here")]) == 2


# --- detection --------------------------------------------------------------------------------------------------
def test_det_boxes_found_and_lost(data_dir, tmp_path, capsys):
    samples = det_samples(data_dir)
    c1, c2 = care_indices(samples[1]), care_indices(samples[2])
    preds_a = [perfect_predictions(s) for s in samples]
    preds_b = [perfect_predictions(s) for s in samples]
    preds_a[2] = [samples[2]["gt_polys"][i] for i in c2 if i != c2[2]]  # A misses box c2[2] of image 2
    preds_b[1] = [samples[1]["gt_polys"][i] for i in c1 if i != c1[0]]  # B misses box c1[0] of image 1
    rows_a, metrics_a = det_rows(samples, preds_a)
    rows_b, metrics_b = det_rows(samples, preds_b)
    write_det_report(rows_a, metrics_a, tmp_path / "a", title="A")
    write_det_report(rows_b, metrics_b, tmp_path / "b", title="B")
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    data, page = read_outputs(tmp_path / "out")
    key = lambda i: f"{samples[i]['label_file']}:{samples[i]['line']}"  # noqa: E731
    assert data["task"] == "det" and data["metric"] == "hmean"
    assert [(b["key"], b["index"]) for b in data["boxes_lost"]] == [(key(1), c1[0])]
    assert [(b["key"], b["index"]) for b in data["boxes_found"]] == [(key(2), c2[2])]
    assert data["boxes_lost"][0]["text"] == samples[1]["gt_texts"][c1[0]]
    deltas = {im["key"]: im["delta"] for im in data["images"]}
    assert deltas[key(1)] < 0 < deltas[key(2)] and [deltas[key(i)] for i in (0, 3, 4)] == [0, 0, 0]
    assert data["counts"]["images_worse"] == 1 and data["counts"]["images_better"] == 1
    assert case_ids(page) == [key(1), key(2)]  # the image that got worse first
    assert page.count("<img ") == 4  # A and B drawn for each
    # one box lost, one found: the set's hmean is the same, so no warning although one image got worse
    assert metrics_a["hmean"] == metrics_b["hmean"] and "WARNING" not in printed


# --- MLflow -----------------------------------------------------------------------------------------------------
def test_mlflow_runs(rec_pair, mlflow_server, tmp_path, capsys):
    from workbench.tracking.mlflow import Tracker

    root, keys, (_, metrics_a), (_, metrics_b) = rec_pair
    run_ids = []
    for name, metrics in (("a", metrics_a), ("b", metrics_b)):
        t = Tracker(mlflow_server.uri, "test-compare", run_name=f"eval {name}", tags={"wb.task": "rec"})
        t.log_params({"eval.select_metric": "acc"})
        t.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=0)
        for f in sorted((root / name).iterdir()):
            t.log_artifact(f, "report")
        t.finish()
        run_ids.append(t.run_id)
    out = tmp_path / "out"
    assert main([*run_ids, "--tracking-uri", mlflow_server.uri, "--out", str(out)]) == 0
    assert "WARNING: B is worse than A on acc" in capsys.readouterr().out
    data, _ = read_outputs(out)
    assert data["a"]["source"] == data["b"]["source"] == "mlflow run"
    assert data["a"]["records_from"].startswith(f"mlflow run {run_ids[0]}")
    assert data["metric_a"] == pytest.approx(metrics_a["acc"]) and data["metric_b"] == pytest.approx(metrics_b["acc"])
    assert {f["key"] for f in data["fixed"]} == {keys[i] for i in FIXED}
    assert {r["key"] for r in data["regressed"]} == {keys[i] for i in REGRESSED}


def test_mlflow_run_without_report_artifacts(rec_pair, mlflow_server, tmp_path):
    """Records come from the run's local run dir (tag wb.run_dir) when not logged; else metrics only."""
    from workbench.tracking.mlflow import RUN_DIR_TAG, Tracker

    root, keys, (rows_a, metrics_a), (_, metrics_b) = rec_pair
    run_dir = tmp_path / "run_a"
    write_rec_report(rows_a, metrics_a, run_dir / "report", title="A")
    ids = []
    for metrics, tags in ((metrics_a, {RUN_DIR_TAG: str(run_dir)}), (metrics_b, {})):
        t = Tracker(mlflow_server.uri, "test-compare", tags={"wb.task": "rec", **tags})
        t.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=0)
        t.finish()
        ids.append(t.run_id)
    a = load_side(ids[0], mlflow_server.uri, tmp_path / "a")
    b = load_side(ids[1], mlflow_server.uri, tmp_path / "b")
    assert a.records_from == str(run_dir / "report" / "records.jsonl") and len(a.records) == 20
    assert b.records == [] and "metrics only" in b.notes[0]
    c = compare(a, b)
    assert c.key_scheme == "none" and c.fixed == [] and c.regressed == [] and c.regressed_on_metric
    assert any("metrics only" in w for w in c.warnings)
