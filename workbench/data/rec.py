"""The recognition dataset: label files mixed by ratio, labels checked against the dictionary before training.

Item dict (numpy): ``image`` (whatever the transform makes of the BGR uint8 HxWx3 crop; [3, 48, W] float32 for
the model), ``label_ctc`` int64 [max_text_length], ``label_gtc`` int64 [max_text_length] (NRTR; only with
``nrtr=True``), ``label_sar`` int64 [max_text_length] and ``valid_ratio`` float32 (SAR; only with ``sar=True``),
``length`` int64 (number of characters), and for reports ``text``, ``path``, ``file``, ``line``.

The transform sees ``{"image", "text", "path", "file", "line"}`` and returns a dict; the labels are encoded from
its ``text`` afterwards (so a transform that concatenates crops, like upstream's RecConAug, must also concatenate
the texts and keep them within ``max_chars``; ``load_sample`` gives it other samples).

Batches: :func:`collate_rec` stacks items; crops of one height and different widths are padded on the right with
zeros (fixed-size mode resizes everything to 48x320, so nothing is padded). Hook for the multi-scale option: a
batch sampler that groups samples of similar width (``image_widths()`` gives them cheaply) keeps padding small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.data.charset import Charset
from workbench.data.findings import DataPolicy, Finding
from workbench.data.labels import RecSample, read_rec_labels, validate_rec_text
from workbench.data.sampling import FailedSample, SourceMixDataset, Transform, collate

__all__ = ["RecDataset", "collate_rec", "FailedSample"]


class RecDataset(SourceMixDataset):
    """Recognition samples from ``sources`` (label files, or ``(label_file, ratio)`` pairs).

    All label files are parsed and every label is checked against ``charset`` and ``max_text_length`` in the
    constructor; the ``policy`` acts on the findings there (strict: :class:`DataError` listing every file:line).
    ``nrtr``: also produce ``label_gtc`` for the NRTR branch, which limits labels to ``max_text_length - 2``
    characters.
    ``for_eval``: an evaluation set. Labels are kept raw — characters missing from the dictionary and long labels
    are not errors but simply count as misread (honest metrics) — and no training labels are encoded.
    """

    kind = "rec"

    def __init__(self, sources, charset: Charset, transform: Transform | None = None,
                 policy: DataPolicy | None = None, max_text_length: int = 25, *, nrtr: bool = True, root=None,
                 seed: int = 0, shuffle: bool = True, check_images_exist: bool = True, for_eval: bool = False,
                 sar: bool = False):
        self.charset = charset
        self.max_text_length = int(max_text_length)
        self.nrtr = bool(nrtr)
        self.sar = bool(sar)
        self.for_eval = bool(for_eval)
        super().__init__(sources, transform, policy, root=root, seed=seed, shuffle=shuffle,
                         check_images_exist=check_images_exist)

    def _load_source(self, path: Path) -> tuple[list[RecSample], list[Finding]]:
        samples, findings = read_rec_labels(path, root=self.root)
        if self.for_eval:
            return samples, findings
        for s in samples:
            findings += validate_rec_text(s, self.charset, self.max_text_length, nrtr=self.nrtr)
        return samples, findings

    def _sample_signature(self, sample: RecSample) -> str:
        return f"{sample.line}|{sample.rel_path}|{sample.text}\n"

    def _make_item(self, sample: RecSample, image: np.ndarray) -> dict:
        return {"image": image, "text": sample.text, "path": str(sample.image_path), "file": sample.file,
                "line": sample.line}

    def _finish_item(self, data: dict, sample: RecSample) -> dict:
        if self.for_eval:
            return data
        text = data["text"]
        data["label_ctc"], length = self.charset.encode_ctc(text, self.max_text_length)
        if self.nrtr:
            data["label_gtc"], _ = self.charset.encode_nrtr(text, self.max_text_length)
        if self.sar:  # the PP-OCRv3 branch; the transform gave the resized width's share (upstream valid_ratio)
            data["label_sar"], _ = self.charset.encode_sar(text, self.max_text_length)
            data["valid_ratio"] = np.float32(data.get("valid_ratio", 1.0))
        data["length"] = np.int64(length)
        return data

    def texts(self) -> list[str]:
        return [s.text for s in self.samples]

    def image_widths(self, height: int = 48) -> np.ndarray:
        """Width of each sample (in ``self.samples`` order) when resized to ``height``, from the image headers
        (no decoding). For width-bucketing batch samplers. An unreadable header sorts as width 0: loading that
        sample fails later, where the data policy decides (strict: file:line error; skip: counted and logged)."""
        from PIL import Image

        widths = []
        for s in self.samples:
            try:
                with Image.open(s.image_path) as im:
                    w, h = im.size
            except (OSError, ValueError, Image.DecompressionBombError):
                w, h = 0, 1
            widths.append(int(np.ceil(height * w / max(h, 1))))
        return np.asarray(widths, dtype=np.int64)


def collate_rec(items) -> dict:
    """Batch rec items: ``image`` [N, C, H, Wmax] (width padded with zeros), ``label_ctc`` / ``label_gtc`` [N, L],
    ``length`` [N]; ``text``, ``path``, ``file``, ``line`` as lists; ``failed`` lists the skipped samples."""
    return collate(items, pad_image_width=True, list_keys=("text", "path", "file", "line"))
