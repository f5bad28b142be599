"""Bad input, every command: label files with random bytes, non-UTF-8, CRLF mixes, empty and 100 kB lines, NaN /
inf / huge / 10k-point polygons; images that are empty, truncated, not images, 1x1, decompression bombs (50000²
declared in a tiny file), CMYK, 16-bit, EXIF-rotated (``fuzz_inputs.py``). Each bad line is an error naming
``file:line`` (``wb data check``, training and evaluation data), or under ``data.policy=skip`` a counted skip;
the odd but usable ones train. Never a traceback, never a hang (timeouts), a bomb is refused from its header.

In process for the many cases; a few command-line runs check what the user sees (one error line, exit status)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fuzz_inputs
from tiny_runs import det_config, rec_config
from workbench.data.check import check_sources
from workbench.data.charset import Charset
from workbench.data.sampling import FailedSample
from workbench.errors import DataError

pytestmark = pytest.mark.timeout(300)  # in process: a hang fails; the CLI tests below get their own, wider one


@pytest.fixture(scope="module")
def cases(tmp_path_factory, data_dir):
    return fuzz_inputs.build(tmp_path_factory.mktemp("fuzz"), data_dir)


@pytest.fixture(scope="module")
def en_dict(fixtures_dir):
    return fixtures_dir / "parity" / "ppocrv5_en_dict.txt"


def _ids(cases):
    return [f"{c.kind}_{c.name}" for c in cases]


def _where(case) -> str:
    return f"{case.label_file}:{case.line if case.line is not None else 1}:"


def _n_lines(case) -> int:
    return sum(1 for line in case.label_file.read_bytes().split(b"\n") if line.strip())


def test_data_check_names_every_bad_line(cases, en_dict):
    charset = Charset.from_file(en_dict)
    for case in cases:
        kw = {"charset": charset} if case.kind == "rec" else {}
        report = check_sources(case.kind, [case.label_file], progress=False, **kw)
        errors = report.errors
        if case.expect == "usable":
            assert errors == [], (case.name, [str(e) for e in errors])
            assert report.total_usable == _n_lines(case), case.name
            continue
        assert errors, case.name
        hit = [e for e in errors if e.file == str(case.label_file) and
               (case.line is None or e.line == case.line) and (case.code is None or e.code in case.code.split("|"))]
        assert hit, (case.name, [str(e) for e in errors])
        assert str(hit[0]).startswith(_where(case)), str(hit[0])


def _task(case, en_dict, run_dir, policy):
    from workbench.tasks import build_task

    shared = en_dict.parents[2]
    cfg = (rec_config if case.kind == "rec" else det_config)(shared, run_dir)
    cfg.data.train = cfg.data.val = str(case.label_file)
    cfg.data.max_train_samples = cfg.data.max_val_samples = None
    cfg.data.policy = policy
    return build_task(cfg)


def _load_all(task, ds, train: bool):
    rng = np.random.default_rng(0)
    items = [ds.load(i, rng) for i in range(len(ds.samples))]
    good = [it for it in items if not isinstance(it, FailedSample)]
    if good:
        (task.collate_train if train else task.collate_eval)(good)
    return items


@pytest.mark.parametrize("policy", ["strict", "skip"])
def test_training_and_evaluation_data_fail_at_the_line_or_count_the_skip(cases, en_dict, tmp_path, policy):
    """Through the tasks' real datasets and transforms (augmentation, DB targets, resizing, collate)."""
    for case in cases:
        for train in (True, False):
            task = _task(case, en_dict, tmp_path / "run", policy)
            # evaluation keeps rec labels raw (a long label is a misread, not an error: honest metrics)
            expect = "usable" if (not train and case.code == "label_too_long") else case.expect
            try:
                ds = task.train_dataset() if train else task.val_dataset()
                items = _load_all(task, ds, train)
            except DataError as exc:
                assert expect == "error", (case.name, train, str(exc))
                assert _where(case) in str(exc), (case.name, train, str(exc))
                if policy == "skip":  # only a file with no usable line at all stops a skip run
                    assert "no usable sample left" in str(exc), (case.name, str(exc))
                continue
            n_skipped = sum(ds.skip_counts().values())
            if expect == "usable":
                assert n_skipped == 0 and len(items) == _n_lines(case), (case.name, train, ds.skip_counts())
            else:
                assert policy == "skip", (case.name, train, "strict did not fail")
                assert n_skipped == 1, (case.name, train, ds.skip_counts())
                assert case.code is None or any(ds.skip_counts().get(c) == 1 for c in case.code.split("|")), \
                    (case.name, ds.skip_counts())


def test_a_decompression_bomb_is_refused_from_its_header(cases):
    """50000 x 50000 declared: refused without allocating the 7.5 GB a decode would take (a decode attempt
    would fail with MemoryError / take seconds; here it is a finding)."""
    import resource

    from workbench.data.images import read_image

    for case in cases:
        if case.code != "image_too_large":
            continue
        bomb = next(p for p in case.label_file.parent.iterdir() if p.name.startswith("bomb"))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with pytest.raises(DataError, match=r"50000 x 50000 = 2,500,000,000 pixels"):
            read_image(bomb)
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: nothing decoded


# --- the command line -------------------------------------------------------------------------------------------
def _mixed(cases, kind: str, folder: Path) -> tuple[Path, dict[int, str]]:
    """One label file with good lines and one line of each bad kind (images copied beside it); returns it and the
    expected error code by line."""
    folder.mkdir(parents=True, exist_ok=True)
    lines, bad = [], {}
    for case in cases:
        if case.kind != kind or case.name in ("random_bytes",):
            continue
        raw = case.label_file.read_bytes().split(b"\n")
        for p in case.label_file.parent.iterdir():
            if p.name != "label.txt":
                (folder / f"{case.name}_{p.name}").write_bytes(p.read_bytes())
        for k, line in enumerate(raw, start=1):
            if not line.strip():
                continue
            path, sep, label = line.partition(b"\t")
            line = (case.name.encode() + b"_" + path + sep + label) if sep else line
            lines.append(line.rstrip(b"\r"))
            if case.line == k:
                bad[len(lines)] = case.code or "error"
    label = folder / "label.txt"
    label.write_bytes(b"\n".join(lines) + b"\n")
    return label, bad


LABEL_CODES = {"bad_line", "no_tab", "bad_json", "bad_polygon", "too_few_points", "label_too_long"}


def _wb(*argv, cwd, timeout=600):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def _error_line(r, command: str) -> str:
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [x for x in r.stderr.splitlines() if x.startswith(f"wb {command}: error:")]
    assert len(lines) == 1, r.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # four commands, each importing Paddle: minutes on a busy 2-core machine
def test_cli_data_check_and_train_on_a_file_with_every_bad_line(cases, en_dict, tmp_path):
    label, bad = _mixed(cases, "rec", tmp_path / "rec")
    r = _wb("data", "check", "rec", str(label), "--dict", str(en_dict), "--out", str(tmp_path / "check"),
            "--no-pictures", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    found = [json.loads(x) for x in (tmp_path / "check" / "findings.jsonl").read_text().splitlines()]
    errors = {f["line"]: f["code"] for f in found if f["severity"] == "error" and f["file"] == str(label)}
    assert set(errors) == set(bad), (errors, bad)  # every bad line, and only those
    assert all(errors[line] in code.split("|") for line, code in bad.items()), (errors, bad)
    for code in set(errors.values()):
        assert code in r.stdout  # the summary names every kind of error with a file:line example
    common = ["recipe=rec_finetune", "model=rec_tiny", f"model.character_dict={en_dict}", f"data.train={label}",
              f"data.val={label}", "data.batch_size=2", "data.eval_batch_size=2", "data.num_workers=0",
              "trainer.epochs=1", "trainer.progress_bar=false", "tracking=off",
              "model.max_text_length=25"]  # the limit `wb data check` applied (the recipe's null = the longest label)
    r = _wb("train", *common, f"hydra.run.dir={tmp_path / 'strict'}", cwd=tmp_path)  # checks the data first
    assert r.returncode == 2
    err = _error_line(r, "train")
    assert "would fail training under the strict data policy" in err
    for line in bad:
        assert f"{label}:{line}:" in r.stderr, r.stderr[-4000:]
    r = _wb("train", *common, "data.policy=skip", f"hydra.run.dir={tmp_path / 'skip'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    parse_time = sum(code in ("bad_line", "no_tab", "label_too_long") for code in bad.values())
    assert f"data.policy=skip: {parse_time} train sample(s) excluded" in log  # label problems, counted
    assert "data.policy=skip: skipped" in log and "sample(s) unreadable so far" in log  # image problems, counted
    summary = json.loads((tmp_path / "skip" / "data_check.json").read_text())
    assert summary  # the check ran first and its findings were written


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_cli_eval_analyze_export_refuse_bad_data_with_file_and_line(cases, tiny_det_run, tiny_rec_run, tmp_path):
    label, bad = _mixed(cases, "det", tmp_path / "det")
    r = _wb("eval", "recipe=det_finetune", f"checkpoint={tiny_det_run}", f"data.val={label}", "tracking=off",
            "data.num_workers=0", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert r.returncode == 2
    _error_line(r, "eval")
    label_level = [line for line, code in bad.items() if code in LABEL_CODES]
    assert label_level and all(f"{label}:{line}:" in r.stderr for line in label_level), r.stderr[-3000:]
    r = _wb("eval", "recipe=det_finetune", f"checkpoint={tiny_det_run}", f"data.val={label}", "tracking=off",
            "data.num_workers=0", "data.policy=skip", f"hydra.run.dir={tmp_path / 'eval_skip'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert f"data.policy=skip: {len(label_level)} val sample(s) excluded" in log
    assert f"({len(bad) - len(label_level)} sample(s) unreadable so far)" in log  # every bad image, counted once

    r = _wb("analyze", "pipeline", f"data={label}", f"det={tiny_det_run}", f"rec={tiny_rec_run}",
            f"out={tmp_path / 'analysis'}", "next_training_set=false", cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"{len(bad)} label problem(s)" in r.stderr or "skipped" in r.stderr

    bomb = next(p for p in (tmp_path / "det").iterdir() if p.name.endswith("bomb.png"))
    r = _wb("export", f"det={tiny_det_run}", f"probe_images=[{bomb}]", f"out={tmp_path / 'export'}", cwd=tmp_path)
    assert r.returncode == 2
    err = _error_line(r, "export")
    assert str(bomb) in r.stderr and "image_too_large" in r.stderr, err
    assert not (tmp_path / "export").exists() or not any((tmp_path / "export").iterdir())
