"""The detection dataset: label files mixed by ratio, annotations checked before training.

Item dict (numpy) before the transform: ``image`` BGR uint8 HxWx3, ``polys`` list of float32 [k, 2] arrays (x, y
in pixels), ``texts`` list of str, ``ignore_tags`` bool [n] (``###`` / ``*``), ``shape`` float32
``[src_h, src_w, 1, 1]`` (the resize transform sets the ratios, as upstream's ``DetResizeForTest``), and for reports
``path``, ``file``, ``line``. The transform (augmentation, DB targets: ``augment.py`` / ``db_targets.py``) adds
``shrink_map``, ``shrink_mask``, ``threshold_map``, ``threshold_mask`` and normalises ``image`` to [3, H, W].

Images without text (an empty JSON list) are valid samples: pure negatives. Upstream drops them.
A sample with any error in its annotation (one bad polygon) is excluded whole under the skip policy: dropping just
that box would turn its text into background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.data.findings import DataPolicy, Finding
from workbench.data.labels import DetSample, read_det_labels
from workbench.data.sampling import FailedSample, SourceMixDataset, Transform, collate

__all__ = ["DetDataset", "collate_det", "FailedSample"]


class DetDataset(SourceMixDataset):
    """Detection samples from ``sources`` (label files, or ``(label_file, ratio)`` pairs); see the module doc."""

    kind = "det"

    def __init__(self, sources, transform: Transform | None = None, policy: DataPolicy | None = None, *,
                 root=None, seed: int = 0, shuffle: bool = True, check_images_exist: bool = True):
        super().__init__(sources, transform, policy, root=root, seed=seed, shuffle=shuffle,
                         check_images_exist=check_images_exist)

    def _load_source(self, path: Path) -> tuple[list[DetSample], list[Finding]]:
        return read_det_labels(path, root=self.root)

    def _sample_signature(self, sample: DetSample) -> str:
        return f"{sample.line}|{sample.rel_path}|{len(sample.polys)}|{'|'.join(sample.texts)}\n"

    def _make_item(self, sample: DetSample, image: np.ndarray) -> dict:
        h, w = image.shape[:2]
        return {
            "image": image,
            "polys": [p.copy() for p in sample.polys],
            "texts": list(sample.texts),
            "ignore_tags": np.asarray(sample.ignore_tags, dtype=bool),
            "shape": np.array([h, w, 1.0, 1.0], dtype=np.float32),
            "path": str(sample.image_path),
            "file": sample.file,
            "line": sample.line,
        }


def collate_det(items) -> dict:
    """Batch det items: equal-size ``image`` and target maps stacked; ``shape`` [N, 4]; ``polys``, ``texts``,
    ``ignore_tags`` (different counts per image) and ``path``/``file``/``line`` as lists; ``failed`` as in
    :func:`workbench.data.sampling.collate`."""
    return collate(items, list_keys=("polys", "texts", "ignore_tags", "path", "file", "line"))
