"""Label parsing: each bad case is a finding at its exact file:line; validation against dictionary and image."""

from __future__ import annotations

import json

import numpy as np

from workbench.data.charset import Charset
from workbench.data.labels import (
    RecSample, read_det_labels, read_rec_labels, validate_det_geometry, validate_rec_text,
)


def _codes(findings):
    return sorted((f.code, f.line) for f in findings)


def test_rec_label_findings_with_lines(tmp_path):
    label = tmp_path / "sub" / "label.txt"
    label.parent.mkdir()
    lines = [
        b"images/ok.png\tHello",          # 1 ok
        b"images/a.png Hello",            # 2 no tab (space separated)
        b"images/b.png\t",                # 3 empty label
        b"",                              # 4 blank
        b"\tText",                        # 5 empty path
        b"images/c.png\tA\tB",            # 6 extra tab
        b"images/d.png\t\xff\xfe",        # 7 not UTF-8
        b"images/e.png\t hi  there ",     # 8 whitespace (warning, sample kept)
        "images/f.png\tcafe\u0301".encode(),  # 9 non-NFC (warning, sample kept)
        b"images/g.png\tx\r",             # 10 CRLF (file-level warning)
    ]
    label.write_bytes(b"\n".join(lines) + b"\n")
    samples, findings = read_rec_labels(label)
    assert _codes(findings) == [
        ("bad_line", 7), ("blank_line", 4), ("crlf", None), ("empty_label", 3), ("empty_path", 5),
        ("extra_tab", 6), ("no_tab", 2), ("non_nfc", 9), ("whitespace", 8),
    ]
    assert [s.line for s in samples] == [1, 8, 9, 10]
    assert samples[0].image_path == label.parent / "images" / "ok.png"
    assert samples[3].text == "x"  # the CR is not part of the label
    no_tab = next(f for f in findings if f.code == "no_tab")
    assert str(no_tab).startswith(f"{label}:2: [no_tab]")
    assert "space-separated" in no_tab.hint
    sev = {f.code: f.severity for f in findings}
    assert sev["no_tab"] == "error" and sev["whitespace"] == "warning" and sev["crlf"] == "warning"


def test_rec_bom_and_root(tmp_path):
    label = tmp_path / "label.txt"
    label.write_bytes(b"\xef\xbb\xbfa.png\tA\nb.png\tB\n")
    samples, findings = read_rec_labels(label, root=tmp_path / "imgs")
    assert _codes(findings) == [("bom", 1)]
    assert samples[0].rel_path == "a.png"  # the BOM is not glued to the first path
    assert samples[0].image_path == tmp_path / "imgs" / "a.png"


def test_missing_label_file(tmp_path):
    samples, findings = read_rec_labels(tmp_path / "nope.txt")
    assert samples == [] and _codes(findings) == [("missing_label_file", None)]


def test_validate_rec_text():
    cs = Charset(list("abc"))
    s = RecSample("l.txt", 4, None, "abxd")
    found = validate_rec_text(s, cs, 25)
    assert _codes(found) == [("char_not_in_dict", 4)]
    assert "'x' (U+0078)" in found[0].message and "'d'" in found[0].message
    long = RecSample("l.txt", 5, None, "a" * 24)
    assert _codes(validate_rec_text(long, cs, 25)) == [("label_too_long", 5)]  # NRTR limit 23
    assert validate_rec_text(long, cs, 25, nrtr=False) == []  # CTC limit 25


def _det_line(path, anns):
    return f"{path}\t{json.dumps(anns)}".encode()


def test_det_label_findings_with_lines(tmp_path):
    quad = [[10, 10], [50, 10], [50, 30], [10, 30]]
    lines = [
        _det_line("ok.jpg", [{"transcription": "A", "points": quad},
                             {"transcription": "###", "points": [[60, 10], [90, 10], [90, 30], [60, 30]]}]),  # 1
        b"bad.jpg\t[{\"transcription\": \"A\", \"points\": [[1,2],[3,4]}]",                            # 2 bad json
        _det_line("few.jpg", [{"transcription": "A", "points": [[0, 0], [10, 0], [10, 10]]}]),     # 3 too few
        _det_line("zero.jpg", [{"transcription": "A", "points": [[0, 0], [5, 0], [10, 0], [20, 0]]}]),  # 4 zero
        _det_line("bow.jpg", [{"transcription": "A", "points": [[0, 0], [10, 10], [10, 0], [0, 10]]}]),  # 5 bowtie
        _det_line("nan.jpg", [{"transcription": "A", "points": [[0, 0], ["x", 1], [1, 1], [0, 1]]}]),  # 6 bad poly
        _det_line("key.jpg", [{"text": "A", "points": quad}]),                                       # 7 no transcription
        _det_line("obj.jpg", {"transcription": "A", "points": quad}),                                # 8 not a list
        _det_line("empty.jpg", []),                                                                  # 9 no boxes (info)
        _det_line("blank.jpg", [{"transcription": "", "points": quad}]),                            # 10 empty trans.
        _det_line("dup.jpg", [{"transcription": "A", "points": quad}, {"transcription": "B", "points": quad}]),  # 11
    ]
    label = tmp_path / "det.txt"
    label.write_bytes(b"\n".join(lines) + b"\n")
    samples, findings = read_det_labels(label)
    assert _codes(findings) == [
        ("bad_annotation", 7), ("bad_annotation", 8), ("bad_json", 2), ("bad_polygon", 6), ("duplicate_box", 11),
        ("empty_transcription", 10), ("no_boxes", 9), ("self_intersecting", 5), ("too_few_points", 3),
        ("zero_area", 4),
    ]
    assert [s.line for s in samples] == [1, 9, 10, 11]
    ok = samples[0]
    assert ok.ignore_tags == [False, True] and ok.texts == ["A", "###"]
    assert ok.polys[0].dtype == np.float32 and ok.polys[0].shape == (4, 2)
    assert samples[1].polys == []  # an image without text is a valid (negative) sample
    assert ("3 point(s)" in next(f.message for f in findings if f.code == "too_few_points"))


def test_validate_det_geometry(tmp_path):
    label = tmp_path / "det.txt"
    anns = [
        {"transcription": "out", "points": [[-5, 10], [50, 10], [50, 30], [-5, 30]]},
        {"transcription": "tiny", "points": [[10, 40], [60, 40], [60, 45], [10, 45]]},
        {"transcription": "###", "points": [[10, 50], [60, 50], [60, 52], [10, 52]]},  # tiny but don't care
    ]
    label.write_bytes(_det_line("x.jpg", anns) + b"\n")
    (sample,), _ = read_det_labels(label)
    found = validate_det_geometry(sample, width=100, height=100, min_text_size=8)
    assert _codes(found) == [("point_outside_image", 1), ("tiny_text", 1)]
    assert "box 0" in found[0].message and "box 1" in found[1].message
