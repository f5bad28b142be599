"""RecMetric: hand-computed upstream and honest numbers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from workbench.metrics.rec import UPSTREAM_EPS, RecMetric


def test_upstream_mode_removes_spaces_and_filters_the_target_by_the_dictionary():
    metric = RecMetric(dictionary=list("abcdefghijklmnopqrstuvwxyzABC"))
    metric.update(
        [("ab c", 0.9), ("hello", 0.8), ("abx", 0.7), ("Abc", 0.5)],
        ["abc", "hé llo", "abc", "abc"],
    )
    m = metric.compute()
    # 1: spaces removed → "abc" == "abc" ✓; 2: "é" is not in the dictionary → target "hllo" vs "hello":
    # distance 1 / max(5, 4) = 0.2; 3: "abx" vs "abc": 1/3; 4: case counts in upstream mode: 1/3
    assert m["acc"] == pytest.approx(1 / (4 + UPSTREAM_EPS), rel=1e-12)
    expected_ned = 1 - (0 + 0.2 + 1 / 3 + 1 / 3) / (4 + UPSTREAM_EPS)
    assert m["norm_edit_dis"] == pytest.approx(expected_ned, rel=1e-12)
    rows = metric.records()
    assert rows[1]["gt_upstream"] == "hllo" and rows[1]["missing_chars"] == "é"
    assert rows[0]["correct"] and not rows[0]["correct_honest"]


def test_upstream_eps_is_kept_exactly():
    metric = RecMetric()
    metric.update(["a", "b"], ["a", "b"])
    m = metric.compute()
    assert m["acc"] == 2 / (2 + 1e-5) and m["acc"] < 1.0  # upstream never reports exactly 100 %
    assert m["acc_honest"] == 1.0


def test_is_filter_keeps_alnum_and_lowercases():
    metric = RecMetric(is_filter=True)
    metric.update(["HELLO-World!", "a.b"], ["hello world", "ab."])
    m = metric.compute()
    assert m["acc"] == pytest.approx(2 / (2 + UPSTREAM_EPS))
    assert m["acc_honest"] == 0.0


def test_ignore_space_off():
    metric = RecMetric(ignore_space=False)
    metric.update(["ab c"], ["abc"])
    m = metric.compute()
    assert m["acc"] == 0.0
    assert m["norm_edit_dis"] == pytest.approx(1 - 0.25 / (1 + UPSTREAM_EPS))  # one insertion / max(4, 3)


def test_honest_modes_count_spaces_case_and_unknown_characters():
    metric = RecMetric(dictionary=list("abcdefghijklmnopqrstuvwxyz"))
    metric.update(["RM 3.85", "total", "cafe", ""], ["RM 3.85", "TOTAL", "café", "x"])
    m = metric.compute()
    assert m["acc_honest"] == 0.25  # only the first
    assert m["acc_honest_nocase"] == 0.5  # + "total"/"TOTAL"
    # distances: 0; 5/5 (case); 1/4; 1/1
    assert m["ned_honest"] == pytest.approx(1 - (0 + 1 + 0.25 + 1) / 4)
    assert m["ned_honest_nocase"] == pytest.approx(1 - (0 + 0 + 0.25 + 1) / 4)
    assert m["cer_honest"] == pytest.approx((0 + 5 + 1 + 1) / (7 + 5 + 4 + 1))
    rows = metric.records()
    assert [r["edit_distance"] for r in rows] == [0, 5, 1, 1]
    assert rows[2]["gt_upstream"] == "caf" and rows[2]["missing_chars"] == "é"


def test_samples_upstream_would_never_evaluate_are_excluded_from_upstream_keys_only():
    metric = RecMetric(dictionary=set("abc"), max_text_length=5)
    metric.update(["", "abc", "abcabc", "a"], ["ééé", "abc", "abcabc", "a"])
    m = metric.compute()
    # "ééé" filters to nothing; "abcabc" is longer than 5 → upstream sees 2 samples, both correct
    assert m["n"] == 4 and m["n_upstream"] == 2 and m["n_upstream_excluded"] == 2
    assert m["acc"] == pytest.approx(2 / (2 + UPSTREAM_EPS))
    assert m["acc_honest"] == 0.75
    assert [r["in_upstream"] for r in metric.records()] == [False, True, False, True]


def test_both_empty_counts_as_a_match():
    metric = RecMetric()
    metric.update([("", 0.0)], [" "])  # upstream: spaces removed on both sides → "" == ""
    m = metric.compute()
    assert m["acc"] == pytest.approx(1.0, abs=1e-4) and m["norm_edit_dis"] == pytest.approx(1.0, abs=1e-4)
    assert m["acc_honest"] == 0.0 and m["ned_honest"] == 0.0


def test_records_ids_scores_and_charset_object():
    metric = RecMetric(dictionary=SimpleNamespace(characters=list("ab")))
    metric.update([("ab", 0.75), "b"], ["ab", "a"], ids=["x.png", "y.png"])
    rows = metric.records()
    assert [r["id"] for r in rows] == ["x.png", "y.png"]
    assert rows[0]["score"] == 0.75 and rows[1]["score"] is None
    assert metric.compute()["acc_honest"] == 0.5
    metric.reset()
    assert len(metric) == 0 and metric.compute()["acc_honest"] == 0.0
    with pytest.raises(ValueError):
        metric.update(["a"], ["a", "b"])
