"""Image reading: BGR uint8 x3 like PaddleX, and errors that name the label line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from workbench.data.images import probe_image, read_image
from workbench.data.labels import RecSample
from workbench.errors import DataError


@pytest.fixture(scope="module")
def real_jpeg(data_dir):
    return data_dir / "icdar2015_det" / "images" / "train" / "img_105.jpg"


@pytest.fixture(scope="module")
def real_png(data_dir):
    return data_dir / "icdar2015_rec" / "images" / "train" / "img_78_030.png"


def test_read_real_images(real_jpeg, real_png):
    for p in (real_jpeg, real_png):
        img = read_image(p)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert np.array_equal(img, cv2.imread(str(p), cv2.IMREAD_COLOR))
    info = probe_image(real_jpeg)
    assert (info.format, info.width, info.height, info.truncated) == ("jpeg", 1280, 720, False)


def test_gray_and_alpha_become_bgr(tmp_path, real_png):
    bgr = cv2.imread(str(real_png))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 128, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    g = read_image(tmp_path / "g.png")
    assert g.shape == (*gray.shape, 3) and np.array_equal(g[..., 0], gray) and np.array_equal(g[..., 2], gray)
    a = read_image(tmp_path / "a.png")
    assert np.array_equal(a, bgr)  # alpha dropped, as PaddleX's IMREAD_COLOR does


def test_errors_name_the_label_line(tmp_path, real_jpeg):
    sample = RecSample(str(tmp_path / "label.txt"), 12, tmp_path / "x.png", "x")
    with pytest.raises(DataError, match=r"label\.txt:12: \[missing_image\]"):
        read_image(tmp_path / "missing.png", sample=sample)
    (tmp_path / "bad.png").write_bytes(b"this is not an image at all")
    with pytest.raises(DataError, match=r"label\.txt:12: \[corrupt_image\].*does not look like an image"):
        read_image(tmp_path / "bad.png", sample=sample)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"\[corrupt_image\].*empty"):
        read_image(tmp_path / "empty.jpg", sample=sample)


def test_truncated_jpeg(tmp_path, real_jpeg):
    data = real_jpeg.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    # OpenCV decodes it silently; we do not
    assert cv2.imread(str(cut)) is not None
    with pytest.raises(DataError, match=r"\[truncated_image\].*EOI"):
        read_image(cut)
    img = read_image(cut, allow_truncated=True)
    assert img.shape == (720, 1280, 3)
    assert probe_image(cut).truncated
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(data + b"\x00" * 100)  # zero padding after EOI is fine
    assert read_image(padded).shape == (720, 1280, 3)


def test_truncated_png(tmp_path, real_png):
    data = real_png.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-20])
    with pytest.raises(DataError, match=r"\[truncated_image\].*IEND"):
        read_image(tmp_path / "cut.png")
