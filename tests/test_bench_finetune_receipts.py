"""The receipts benchmark's end-to-end part: an export that failed its own verification is still measured, on the
folder `wb export` keeps, and its figure is flagged with the failed checks (the hour of fine-tuning before it is
not lost); an export that left nothing is an error naming both places looked at."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from workbench.export.verify.report import Report, Tolerances

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import finetune_receipts as receipts  # noqa: E402


@pytest.fixture
def measured(monkeypatch):
    """line_recall stands in for the PaddleX run: it says which pipeline YAML it was given."""
    monkeypatch.setattr(receipts, "line_recall", lambda yaml, labels: {"line_recall": 0.5, "yaml": str(yaml)})


def _export(folder: Path, checks: list[tuple]) -> None:
    """A folder as `wb export` leaves it: the pipeline YAML and the verification report, written by the real
    Report from ``checks`` (stage, item, what, value, limit, passed)."""
    folder.mkdir()
    (folder / "PaddleOCR.yaml").write_text("pipeline_name: OCR\n")
    report = Report(tolerances=Tolerances())
    for check in checks:
        report.add(*check)
    report.write(folder)


def test_a_verified_export_is_measured_as_verified(tmp_path, measured):
    _export(tmp_path / "tuned", [])
    result = receipts.exported_line_recall(tmp_path / "tuned", tmp_path / "label.txt")
    assert result == {"line_recall": 0.5, "yaml": str(tmp_path / "tuned" / "PaddleOCR.yaml"), "verified": True}


def test_a_failed_export_is_measured_and_flagged(tmp_path, measured):
    failed = tmp_path / "tuned.FAILED"
    _export(failed, [("pipeline", "call0/crop0", "rec probabilities max abs diff", 1e-5, 1e-4, True),
                     ("pipeline", "call1/crop42", "rec probabilities max abs diff", 5.2e-4, 3.3e-4, False)])
    result = receipts.exported_line_recall(tmp_path / "tuned", tmp_path / "label.txt")
    assert result["yaml"] == str(failed / "PaddleOCR.yaml") and result["verified"] is False
    assert result["failed_checks"] == ["pipeline call1/crop42: rec probabilities max abs diff 0.00052 (limit 0.00033)"]


def test_no_export_at_all_is_an_error_naming_both_places(tmp_path, measured):
    with pytest.raises(SystemExit, match=r"neither .*tuned nor .*tuned\.FAILED"):
        receipts.exported_line_recall(tmp_path / "tuned", tmp_path / "label.txt")
