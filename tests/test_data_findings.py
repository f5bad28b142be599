"""Findings and the data policy: strict raises with every file:line, skip excludes and counts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from workbench.data.findings import CODES, DataPolicy, Finding
from workbench.errors import ConfigError, DataError


@dataclass
class S:
    file: str
    line: int


def test_finding_str_and_default_severity():
    f = Finding.make("no_tab", "data/label.txt", 7, "no TAB in 'x y'")
    assert str(f) == "data/label.txt:7: [no_tab] no TAB in 'x y'"
    assert f.severity == "error"
    g = Finding.make("crlf", "data/label.txt", None, "3 lines")
    assert str(g) == "data/label.txt: [crlf] 3 lines" and g.severity == "warning"
    with pytest.raises(KeyError, match="unknown finding code"):
        Finding.make("nonsense", "x", 1, "m")


def test_code_table_is_complete():
    for code, info in CODES.items():
        assert info.severity in ("error", "warning", "info"), code
        assert info.description, code


def _setup():
    samples = [S("a.txt", 1), S("a.txt", 2), S("a.txt", 3), S("b.txt", 1)]
    findings = [
        Finding.make("char_not_in_dict", "a.txt", 2, "x"),
        Finding.make("label_too_long", "a.txt", 2, "y"),  # the same sample: counted once
        Finding.make("empty_label", "a.txt", 5, "parse failure, not in samples"),
        Finding.make("whitespace", "a.txt", 3, "warning only"),
        Finding.make("truncated_image", "b.txt", 1, "z"),
    ]
    return samples, findings


def test_strict_raises_listing_every_error():
    samples, findings = _setup()
    with pytest.raises(DataError) as e:
        DataPolicy("strict").apply(samples, findings)
    msg = str(e.value)
    assert "a.txt:2: [char_not_in_dict]" in msg and "a.txt:5: [empty_label]" in msg and "b.txt:1:" in msg
    assert "whitespace" not in msg.split("\n", 1)[1]  # warnings are not listed as problems
    assert len(e.value.findings) == 4


def test_skip_excludes_and_counts():
    samples, findings = _setup()
    kept, skipped = DataPolicy("skip").apply(samples, findings)
    assert [(s.file, s.line) for s in kept] == [("a.txt", 1), ("a.txt", 3)]
    assert dict(skipped) == {"char_not_in_dict": 1, "empty_label": 1, "truncated_image": 1}


def test_accept_downgrades_only_acceptable_codes():
    samples, findings = _setup()
    policy = DataPolicy("skip", frozenset({"truncated_image"}))
    kept, skipped = policy.apply(samples, findings)
    assert ("b.txt", 1) in [(s.file, s.line) for s in kept]
    assert policy.severity(findings[-1]) == "warning"
    with pytest.raises(ConfigError, match="cannot be accepted"):
        DataPolicy("skip", frozenset({"label_too_long"}))
    with pytest.raises(ConfigError):
        DataPolicy("lenient")


def test_on_failure():
    f = Finding.make("corrupt_image", "a.txt", 3, "img.png: cannot decode")
    with pytest.raises(DataError, match=r"a\.txt:3: \[corrupt_image\]"):
        DataPolicy("strict").on_failure(f)
    DataPolicy("skip").on_failure(f)  # returns: the caller records it
