"""RecDataset: fail fast on bad labels, skip without substitution, ratio sampling reproducible per epoch, resume."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from workbench.data.charset import Charset
from workbench.data.findings import DataPolicy
from workbench.data.rec import FailedSample, RecDataset, collate_rec
from workbench.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def charset(fixtures_dir):
    return Charset.from_file(fixtures_dir / "parity" / "ppocrv5_en_dict.txt")


@pytest.fixture
def small_set(tmp_path, data_dir):
    """Two label files made from real ICDAR crops: a (12 samples) and b (4 samples)."""
    src = data_dir / "icdar2015_rec"
    lines = (src / "label.txt").read_text(encoding="utf-8").splitlines()[:16]
    (tmp_path / "images").mkdir()
    out = []
    for line in lines:
        rel, text = line.split("\t", 1)
        shutil.copy(src / rel, tmp_path / "images" / rel.split("/")[-1])
        out.append(f"images/{rel.split('/')[-1]}\t{text}")
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(out[:12]) + "\n", encoding="utf-8")
    b.write_text("\n".join(out[12:]) + "\n", encoding="utf-8")
    return a, b


def resize_48x320(d):
    d["image"] = (cv2.resize(d["image"], (320, 48)).astype(np.float32) / 127.5 - 1).transpose(2, 0, 1)
    return d


def test_items_and_batch(small_set, charset):
    a, _ = small_set
    ds = RecDataset([a], charset, transform=resize_48x320, shuffle=False)
    assert len(ds) == 12
    item = ds[0]
    first = a.read_text(encoding="utf-8").splitlines()[0].split("\t")[1]
    assert item["text"] == first and item["line"] == 1 and item["file"] == str(a)
    ctc, n = charset.encode_ctc(first, 25)
    np.testing.assert_array_equal(item["label_ctc"], ctc)
    np.testing.assert_array_equal(item["label_gtc"], charset.encode_nrtr(first, 25)[0])
    assert item["length"] == n == len(first)
    batch = collate_rec([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 48, 320) and batch["image"].dtype == np.float32
    assert batch["label_ctc"].shape == (4, 25) and batch["label_gtc"].shape == (4, 25)
    assert batch["length"].shape == (4,) and batch["length"].dtype == np.int64
    assert batch["line"] == [1, 2, 3, 4] and batch["failed"] == []


def test_collate_pads_width():
    items = [{"image": np.ones((3, 48, w), np.float32), "text": "a"} for w in (100, 320, 200)]
    batch = collate_rec(items)
    assert batch["image"].shape == (3, 3, 48, 320)
    assert batch["image"][0, :, :, 100:].sum() == 0 and batch["image"][0, :, :, :100].min() == 1


def test_strict_fails_fast_with_file_line(small_set, charset):
    a, _ = small_set
    lines = a.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].split("\t")[0] + "\tStraße"  # "ß" is not in the en dictionary
    lines[7] = lines[7].split("\t")[0] + "\t" + "x" * 24  # longer than 23 (NRTR)
    lines[9] = "images/nope.png\tmissing"
    a.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        RecDataset([a], charset)
    msg = str(e.value)
    assert f"{a}:4: [char_not_in_dict]" in msg
    assert f"{a}:8: [label_too_long]" in msg
    assert f"{a}:10: [missing_image]" in msg
    ds = RecDataset([a], charset, policy=DataPolicy("skip"), shuffle=False)
    assert len(ds) == 9
    assert ds.skip_counts() == {"char_not_in_dict": 1, "label_too_long": 1, "missing_image": 1}
    assert 4 not in [s.line for s in ds.samples]


def test_read_failure_at_train_time(small_set, charset):
    a, _ = small_set
    ds_strict = RecDataset([a], charset, transform=resize_48x320, shuffle=False)
    ds_skip = RecDataset([a], charset, transform=resize_48x320, policy=DataPolicy("skip"), shuffle=False)
    victim = ds_strict.sample_at(2).image_path
    victim.write_bytes(b"garbage, not a png")  # corrupted after the label check
    with pytest.raises(DataError, match=rf"{a.name}:3: \[corrupt_image\]"):
        ds_strict[2]
    items = [ds_skip[i] for i in range(4)]
    assert isinstance(items[2], FailedSample)
    batch = collate_rec(items)
    assert batch["image"].shape[0] == 3  # built without it, not refilled by another sample
    assert batch["line"] == [1, 2, 4]
    assert [f.code for f in batch["failed"]] == ["corrupt_image"] and batch["failed"][0].line == 3
    assert ds_skip.skip_counts() == {"corrupt_image": 1}
    assert collate_rec([items[2]]) == {"failed": [items[2].finding]}


def test_ratio_sampling_reproducible_per_epoch(small_set, charset):
    a, b = small_set

    def make(seed=7):
        return RecDataset([(a, 0.5), (b, 1.0)], charset, seed=seed)

    ds, again = make(), make()
    assert len(ds) == 6 + 4
    e0 = [(s.file, s.line) for s in (ds.sample_at(i) for i in range(len(ds)))]
    assert e0 == [(s.file, s.line) for s in (again.sample_at(i) for i in range(len(again)))]
    assert sum(f == str(b) for f, _ in e0) == 4 and len(set(e0)) == 10
    orders = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        orders.append([(s.file, s.line) for s in (ds.sample_at(i) for i in range(len(ds)))])
    assert orders[0] == e0
    assert len({tuple(o) for o in orders}) == 6  # a new subset / order every epoch
    seen_a = {ln for o in orders for f, ln in o if f == str(a)}
    assert len(seen_a) > 6  # the 50 % subset of a changes between epochs
    again.set_epoch(4)
    assert [(s.file, s.line) for s in (again.sample_at(i) for i in range(len(again)))] == orders[4]
    other_seed = make(seed=8)
    assert [(s.file, s.line) for s in (other_seed.sample_at(i) for i in range(10))] != e0


def test_oversampling_and_bad_ratio(small_set, charset):
    a, b = small_set
    ds = RecDataset([(a, 1.0), (b, 2.5)], charset, shuffle=False)
    lines_b = [s.line for s in (ds.sample_at(i) for i in range(len(ds))) if s.file == str(b)]
    assert len(lines_b) == 10 and all(lines_b.count(n) >= 2 for n in range(1, 5))
    with pytest.raises(ConfigError, match="must be > 0"):
        RecDataset([(a, 0.0)], charset)
    with pytest.raises(ConfigError, match="selects no sample"):
        RecDataset([(b, 0.1)], charset)


def test_resume_continues_exactly(small_set, charset):
    a, b = small_set
    ds = RecDataset([(a, 0.5), (b, 1.0)], charset, seed=3)
    ds.set_epoch(2)
    full = [(s.file, s.line) for s in (ds.sample_at(i) for i in range(len(ds)))]
    pos = ds.data_position(consumed=4)
    assert pos["epoch"] == 2 and pos["index"] == 4 and pos["epoch_size"] == 10
    resumed = RecDataset([(a, 0.5), (b, 1.0)], charset, seed=3)
    resumed.restore_position(pos)
    assert [(s.file, s.line) for s in (resumed.sample_at(i) for i in range(len(resumed)))] == full[4:]
    assert resumed.epoch_size == 10 and len(resumed) == 6
    end = resumed.data_position(consumed=6)
    resumed.restore_position(end)  # a finished epoch continues with the next one
    assert resumed.epoch == 3 and len(resumed) == 10
    changed = RecDataset([(a, 0.5)], charset, seed=3)
    with pytest.raises(ConfigError, match="changed"):
        changed.restore_position(pos)
