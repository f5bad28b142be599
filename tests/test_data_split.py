"""Train/val splits by source document (`wb data split`) and the document_leak finding of `wb data check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.data.split import group_id, split_label_files
from workbench.errors import ConfigError


@pytest.mark.parametrize("path, expected", [
    ("images/train/403_047.png", "403"), ("images/train/403.jpg", "403"), ("img_105_3.png", "img_105"),
    ("a\\b\\x7_1.png", "x7"), ("scan_2024_03.tif", "scan_2024"), ("noindex.png", "noindex"),
    ("img_105.jpg", "img_105"), ("IMG_1563.JPG", "IMG_1563"), ("page_1.png", "page_1"),
])
def test_group_id_strips_the_crop_index(path, expected):
    assert group_id(path) == expected


def test_group_pattern():
    assert group_id("IMG_0001-p3.jpg", r"^(.+)-p\d+") == "IMG_0001"
    with pytest.raises(ConfigError, match="does not match"):
        group_id("x.jpg", r"^(\d+)-")


def _labels(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    return path


def test_one_document_is_held_out_in_every_file(tmp_path):
    pages = _labels(tmp_path / "det", "label.txt", [f"images/{i:03d}.jpg\t[]" for i in range(40)])
    crops = _labels(tmp_path / "rec", "label.txt",
                    [f"images/{i:03d}_{k:03d}.png\tT{i}" for i in range(60) for k in range(3)])
    det, rec = split_label_files([pages, crops], tmp_path / "out", val_fraction=0.25, seed=3)
    assert (det.train_lines, det.val_lines) == (30, 10)  # the first file gets exactly round(0.25 x 40)
    val_pages = {group_id(ln.split("\t")[0]) for ln in det.val_file.read_text().splitlines()}
    rec_val = {group_id(ln.split("\t")[0]) for ln in rec.val_file.read_text().splitlines()}
    rec_train = {group_id(ln.split("\t")[0]) for ln in rec.train_file.read_text().splitlines()}
    assert val_pages <= rec_val and not rec_val & rec_train  # same receipts held out; no receipt on both sides
    assert rec.val_lines % 3 == 0 and rec.train_lines + rec.val_lines == 180
    # paths are rewritten relative to the output folder and still point at the images
    first = rec.val_file.read_text().splitlines()[0].split("\t")[0]
    assert (tmp_path / "out" / first).resolve() == (tmp_path / "rec" / "images" / Path(first).name).resolve()


def test_another_seed_holds_out_other_documents_and_outputs_are_never_overwritten(tmp_path):
    pages = _labels(tmp_path, "pages.txt", [f"{i}.jpg\t[]" for i in range(20)])
    a = split_label_files([pages], tmp_path / "a", val_fraction=0.3, seed=0)[0]
    b = split_label_files([pages], tmp_path / "b", val_fraction=0.3, seed=1)[0]
    assert a.val_file.read_text() != b.val_file.read_text()
    with pytest.raises(ConfigError, match="exists"):
        split_label_files([pages], tmp_path / "a", val_fraction=0.3, seed=0)


def test_data_check_flags_documents_on_both_sides(tmp_path, data_dir):
    from workbench.data.check.common import document_leak_findings
    from workbench.data.labels import read_rec_labels

    samples, _ = read_rec_labels(data_dir / "sroie_rec" / "label.txt")
    train = [("train", s) for s in samples[:1000]]
    val = [("val", s) for s in samples[1000:]]
    leaks = document_leak_findings(train + val)
    train_docs = {group_id(s.rel_path) for _, s in train}
    expected = [s for _, s in val if group_id(s.rel_path) in train_docs]
    assert expected and len(leaks) == len(expected)
    assert all(f.code == "document_leak" and f.line is not None for f in leaks)
    split = split_label_files([data_dir / "sroie_rec" / "label.txt"], tmp_path / "s", val_fraction=0.2)[0]
    tr, _ = read_rec_labels(split.train_file)
    va, _ = read_rec_labels(split.val_file)
    assert document_leak_findings([("train", s) for s in tr] + [("val", s) for s in va]) == []


def test_det_pages_become_rec_crops_named_after_their_page(tmp_path, data_dir):
    import cv2

    from workbench.data.crops import crop_quad, crops_from_det_labels
    from workbench.data.labels import read_det_labels, read_rec_labels

    pages = _labels(tmp_path, "pages.txt", (data_dir / "sroie_det" / "label.txt").read_text().splitlines()[:2])
    for line in pages.read_text().splitlines():  # the images, beside the new label file
        rel = line.split("\t")[0]
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((data_dir / "sroie_det" / rel).read_bytes())
    result = crops_from_det_labels([pages], tmp_path / "lines")
    det, _ = read_det_labels(pages)
    care = [(s, k) for s in det for k, (t, ign) in enumerate(zip(s.texts, s.ignore_tags)) if not ign and t.strip()]
    assert result.crops == len(care) and result.pages == 2
    rec, findings = read_rec_labels(result.label_file)
    assert not [f for f in findings if f.severity == "error"] and len(rec) == len(care)
    sample, k = care[3]
    assert rec[3].text == sample.texts[k] and group_id(rec[3].rel_path) == Path(sample.rel_path).stem
    expected = crop_quad(cv2.imread(str(sample.image_path)), sample.polys[k])  # as the pipeline crops the box
    assert (cv2.imread(str(rec[3].image_path)) == expected).all()
    with pytest.raises(ConfigError, match="exists"):
        crops_from_det_labels([pages], tmp_path / "lines")


def test_crops_from_a_detectors_boxes(tmp_path, data_dir):
    """``detector=``: each labelled line is cut from the detected box matching it (IoU >= 0.5), with the label's
    text; a line the detector missed is skipped and counted, a detected box matching no line is not cut."""
    import cv2
    import numpy as np

    from workbench.data.crops import crop_quad, crops_from_det_labels, match_detected
    from workbench.data.labels import read_det_labels, read_rec_labels

    pages = _labels(tmp_path, "pages.txt", (data_dir / "sroie_det" / "label.txt").read_text().splitlines()[:1])
    rel = pages.read_text().split("\t")[0]
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_bytes((data_dir / "sroie_det" / rel).read_bytes())
    (page,), _ = read_det_labels(pages)
    care = [k for k, (t, ign) in enumerate(zip(page.texts, page.ignore_tags)) if not ign and t.strip()]

    def grown(poly, px=3.0):  # a box as a detector finds it: a few pixels of margin around the labelled one
        q = np.asarray(poly, dtype=np.float32).reshape(4, 2)
        centre = q.mean(axis=0)
        return centre + (q - centre) * (1 + px / np.maximum(np.abs(q - centre), 1))

    detected = [grown(page.polys[k]) for k in care[1:]]  # misses the first line
    detected.append(np.float32([[0, 0], [5, 0], [5, 5], [0, 5]]))  # and finds a speck that is no line
    calls = []

    def detector(image):
        calls.append(image.shape)
        return detected[::-1], [0.9] * len(detected)  # in another order than the labels

    result = crops_from_det_labels([pages], tmp_path / "lines", detector=detector)
    assert len(calls) == 1 and result.pages == 1
    assert result.crops == len(care) - 1
    assert result.skipped == {"not detected (no box with IoU >= 0.5)": 1}
    rec, _ = read_rec_labels(result.label_file)
    assert [r.text for r in rec] == [page.texts[k] for k in care[1:]]
    image = cv2.imread(str(page.image_path))
    assert (cv2.imread(str(rec[0].image_path)) == crop_quad(image, detected[0])).all()  # the detected box's crop
    assert crop_quad(image, detected[0]).shape != crop_quad(image, page.polys[care[1]]).shape

    assert match_detected([page.polys[care[1]]], [detected[0]], 0.5) == {0: 0}
    assert match_detected([page.polys[care[1]]], [detected[1]], 0.5) == {}  # the next line's box


def test_wb_data_crops_with_the_stock_detector(tmp_path, data_dir, stock_weights, capsys):
    """`wb data crops --det <weights>` on a real receipt: the stock detector, at the pipeline's settings, finds most
    labelled lines (stock det hmean on SROIE ~0.91), and each is cut from its detected box."""
    from workbench.commands.data import main as data_main
    from workbench.data.labels import read_det_labels, read_rec_labels

    pages = _labels(tmp_path, "pages.txt", (data_dir / "sroie_det" / "label.txt").read_text().splitlines()[:1])
    rel = pages.read_text().split("\t")[0]
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_bytes((data_dir / "sroie_det" / rel).read_bytes())
    assert data_main(["crops", str(pages), "--det", str(stock_weights["det"]), "--out", str(tmp_path / "lines")]) == 0
    (page,), _ = read_det_labels(pages)
    care = sum(1 for t, ign in zip(page.texts, page.ignore_tags) if not ign and t.strip())
    rec, findings = read_rec_labels(tmp_path / "lines" / "label.txt")
    assert not [f for f in findings if f.severity == "error"]
    assert 0.8 * care <= len(rec) <= care
    out = capsys.readouterr().out
    assert f"{len(rec)} crops from 1 pages" in out
    if len(rec) < care:
        assert f"{care - len(rec)} not detected (no box with IoU >= 0.5)" in out


def test_det_pages_with_label_errors_raise_before_any_crop(tmp_path, data_dir):
    """A bad det label line stops `wb data crops` with the strict data policy's error naming file:line; nothing
    is written."""
    from workbench.data.crops import crops_from_det_labels
    from workbench.errors import DataError

    good = (data_dir / "sroie_det" / "label.txt").read_text().splitlines()[0]
    rel = good.split("\t")[0]
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_bytes((data_dir / "sroie_det" / rel).read_bytes())
    pages = _labels(tmp_path, "pages.txt", [good, f"{rel}\t[{{\"points\": [[1, 2]], \"transcription\": \"x\"}}]"])
    with pytest.raises(DataError, match=r"pages\.txt:2") as err:
        crops_from_det_labels([pages], tmp_path / "lines")
    assert "det labels" in str(err.value) and "skip" not in str(err.value)
    assert not (tmp_path / "lines").exists()
