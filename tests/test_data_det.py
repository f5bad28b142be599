"""DetDataset: items as the DB target / augmentation helpers expect them, negatives kept, errors handled by policy."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from workbench.data.det import DetDataset, collate_det
from workbench.data.findings import DataPolicy
from workbench.errors import DataError


@pytest.fixture
def det_set(tmp_path, data_dir):
    """Three CCPD images: a plate, the same image as a negative (empty list), and one with a bow-tie polygon."""
    src = data_dir / "ccpd_plate_det"
    line = (src / "label.txt").read_text(encoding="utf-8").splitlines()[0]
    rel, ann = line.split("\t", 1)
    shutil.copy(src / rel, tmp_path / "plate.jpg")
    bow = [{"transcription": "X", "points": [[0, 0], [10, 10], [10, 0], [0, 10]]}]
    label = tmp_path / "label.txt"
    label.write_text(f"plate.jpg\t{ann}\nplate.jpg\t[]\nplate.jpg\t{json.dumps(bow)}\n", encoding="utf-8")
    return label, json.loads(ann)


def test_items_negative_and_policy(det_set):
    label, ann = det_set
    with pytest.raises(DataError, match=r"label\.txt:3: \[self_intersecting\]"):
        DetDataset([label])
    ds = DetDataset([label], policy=DataPolicy("skip"), shuffle=False)
    assert len(ds) == 2 and ds.skip_counts() == {"self_intersecting": 1}
    item = ds[0]
    h, w = item["image"].shape[:2]
    assert item["image"].dtype == np.uint8 and item["image"].shape[2] == 3
    np.testing.assert_array_equal(item["shape"], np.array([h, w, 1, 1], np.float32))
    assert len(item["polys"]) == 1 and item["polys"][0].dtype == np.float32
    np.testing.assert_array_equal(item["polys"][0], np.asarray(ann[0]["points"], np.float32))
    assert item["ignore_tags"].dtype == bool and item["texts"] == [ann[0]["transcription"]]
    negative = ds[1]
    assert negative["polys"] == [] and negative["ignore_tags"].shape == (0,)
    batch = collate_det([item, negative])
    assert batch["shape"].shape == (2, 4) and batch["image"].shape == (2, h, w, 3)
    assert isinstance(batch["polys"], list) and len(batch["polys"][1]) == 0


def test_transform_and_epoch_hook(det_set):
    label, _ = det_set

    class Crop:
        epoch = None

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __call__(self, d):
            d["image"] = d["image"][:64, :64].transpose(2, 0, 1).astype(np.float32)
            d["shrink_map"] = np.zeros((64, 64), np.float32)
            return d

    crop = Crop()
    ds = DetDataset([label], transform=crop, policy=DataPolicy("skip"), shuffle=False)
    ds.set_epoch(5)
    assert crop.epoch == 5
    batch = collate_det([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 64, 64) and batch["shrink_map"].shape == (2, 64, 64)
