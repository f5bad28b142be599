"""Text-line crops cut from page images exactly as PaddleX's OCR pipeline cuts a detected box
(``get_minarea_rect_crop`` + ``get_rotate_crop_image``), and rec training data made from det labels.

A det label file of pages with transcriptions is also recognition data: every care box, cropped the way the
deployed pipeline will crop it, is a rec sample (`wb data crops`). So one set of labelled pages trains both modules.
With a detector (`wb data crops --det <model>`), each labelled line is cut from the box the detector found for it
instead: the margins, tilt and clipping the recogniser will really be shown after detection, with the label's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import cv2
import numpy as np

from workbench.geometry import iou_matrix

TURN_RATIO = 1.5


def crop_corners(points) -> np.ndarray:
    """The corners (TL, TR, BR, BL as float32 ``[4, 2]``) PaddleX warps a box from: the minimum-area rectangle of
    the integer-truncated points, its corners ordered by x (stable), then by y within the left and right pairs."""
    rect = cv2.minAreaRect(np.asarray(points).astype(np.int32).reshape(-1, 2))
    corners = sorted(list(cv2.boxPoints(rect)), key=lambda p: p[0])
    top_left, bottom_left = (corners[0], corners[1]) if corners[1][1] > corners[0][1] else (corners[1], corners[0])
    top_right, bottom_right = (corners[2], corners[3]) if corners[3][1] > corners[2][1] else (corners[3], corners[2])
    return np.array([top_left, top_right, bottom_right, bottom_left])


def _crop_size(corners: np.ndarray) -> tuple[int, int]:
    """(width, height) of the warped crop: the longer of each pair of opposite sides, truncated (float32 norms)."""
    width = int(max(np.linalg.norm(corners[0] - corners[1]), np.linalg.norm(corners[2] - corners[3])))
    height = int(max(np.linalg.norm(corners[0] - corners[3]), np.linalg.norm(corners[1] - corners[2])))
    return width, height


def crop_is_turned(points) -> bool:
    """Whether the pipeline turns this box's crop by 90° (it is at least 1.5× taller than wide)."""
    width, height = _crop_size(crop_corners(points))
    return width > 0 and height / width >= TURN_RATIO


def crop_quad(image: np.ndarray, points) -> np.ndarray:
    """The crop the pipeline reads for a box: ``get_minarea_rect_crop`` + ``get_rotate_crop_image`` (perspective
    warp to the rectangle, bicubic, replicated border; turned by 90° counter-clockwise when ``h / w >= 1.5``).
    A degenerate box gives an empty ``[0, 0, 3]`` array."""
    corners = crop_corners(points)
    width, height = _crop_size(corners)
    if width < 1 or height < 1:
        return np.zeros((0, 0) + image.shape[2:], dtype=image.dtype)
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    matrix = cv2.getPerspectiveTransform(corners, target)
    crop = cv2.warpPerspective(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    if crop.shape[0] * 1.0 / crop.shape[1] >= TURN_RATIO:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def turn_180(crop: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(crop[::-1, ::-1])


@dataclass
class CropsResult:
    label_file: Path
    crops: int = 0
    pages: int = 0
    skipped: dict = field(default_factory=dict)  # reason -> count (don't-care boxes, empty or multi-line texts, ...)

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        return f"{self.crops} crops from {self.pages} pages -> {self.label_file} (skipped: {skipped})"


def match_detected(gt_polys: list, pred_polys: list, min_iou: float) -> dict[int, int]:
    """GT index -> index of the detected box cut for it: pairs with IoU >= ``min_iou``, the highest IoU first,
    each box used once."""
    iou = iou_matrix(gt_polys, pred_polys)
    gi, pj = np.nonzero(iou >= min_iou)
    matched: dict[int, int] = {}
    used: set[int] = set()
    for k in np.argsort(-iou[gi, pj], kind="stable"):
        i, j = int(gi[k]), int(pj[k])
        if i not in matched and j not in used:
            matched[i] = j
            used.add(j)
    return matched


#: a detector for :func:`crops_from_det_labels`: BGR image -> (boxes as [4, 2] quads, box scores)
DetectFn = Callable[[np.ndarray], tuple[list, list]]


def read_det_pages(label_files: Iterable[str | Path], root: Optional[str | Path] = None) -> list:
    """Every page (``DetSample``) of the det label files, in order. Label errors raise the ``DataError`` of the
    strict data policy (every bad line as file:line), before any page is cut: crops come from trusted labels only,
    so there is no skip mode here (`wb data check` lists the same findings)."""
    from workbench.data.findings import DataPolicy
    from workbench.data.labels import read_det_labels

    pages = []
    for label_file in map(Path, label_files):
        samples, findings = read_det_labels(label_file, root=root)
        kept, _ = DataPolicy(mode="strict").apply(samples, findings, what=f"det labels {label_file}",
                                               skippable=False)
        pages.extend(kept)
    return pages


def crops_from_det_labels(label_files: Iterable[str | Path], out_dir: str | Path, *,
                          root: Optional[str | Path] = None, detector: Optional[DetectFn] = None,
                          min_iou: float = 0.5, progress: Optional[Callable[[int], None]] = None) -> CropsResult:
    """:func:`crops_from_det_pages` of the pages of det label files (:func:`read_det_pages`)."""
    return crops_from_det_pages(read_det_pages(label_files, root), out_dir, detector=detector, min_iou=min_iou,
                                progress=progress)


def crops_from_det_pages(pages: list, out_dir: str | Path, *, detector: Optional[DetectFn] = None,
                         min_iou: float = 0.5, progress: Optional[Callable[[int], None]] = None) -> CropsResult:
    """Write ``<out>/label.txt`` (rec format) and ``<out>/crops/<page stem>_<box>.png``: every care box of the det
    pages (:func:`read_det_pages`) with a one-line transcription, cropped as the pipeline crops it
    (:func:`crop_quad`). The crop names keep the page's name, so `wb data split` / the document_leak check see a
    crop and its page as one document. Unreadable images raise a ``DataError`` naming file:line (nothing is written
    under a final name until every page is read). An existing ``label.txt`` is never overwritten.

    ``detector``: cut each labelled line from the detected box that matches it (IoU >= ``min_iou``,
    :func:`match_detected`) instead of from its labelled box, with the label's text; lines the detector missed are
    skipped and counted. ``progress(pages)`` is called after each page."""
    from workbench.data.images import read_image
    from workbench.errors import ConfigError, DataError

    out = Path(out_dir)
    label_path = out / "label.txt"
    if label_path.exists():
        raise ConfigError(f"{label_path} exists; choose another out folder (crops are never overwritten)")
    (out / "crops").mkdir(parents=True, exist_ok=True)
    result = CropsResult(label_path)
    lines, used = [], set()
    for sample in pages:
        image = read_image(sample.image_path, sample=sample)
        result.pages += 1
        stem = Path(sample.rel_path or sample.image_path.name).stem
        while stem in used:  # two pages with one name in different folders
            stem += "_"
        used.add(stem)
        boxes = list(sample.polys)
        if detector is not None:
            detected, _ = detector(image)
            found = match_detected(sample.polys, detected, min_iou)
            boxes = [detected[found[k]] if k in found else None for k in range(len(sample.polys))]
        for k, (poly, text, ignore) in enumerate(zip(boxes, sample.texts, sample.ignore_tags)):
            why = ("don't-care box" if ignore else "empty text" if not text.strip()
                   else "multi-line text" if "\t" in text or "\n" in text
                   else f"not detected (no box with IoU >= {min_iou})" if poly is None else None)
            crop = None if why else crop_quad(image, poly)
            if crop is not None and crop.size == 0:
                why = "degenerate box"
            if why:
                result.skipped[why] = result.skipped.get(why, 0) + 1
                continue
            name = f"crops/{stem}_{k:03d}.png"
            ok, buf = cv2.imencode(".png", crop)
            if not ok:
                raise DataError(f"{sample.where}: box {k} could not be encoded as PNG")
            (out / name).write_bytes(buf.tobytes())
            lines.append(f"{name}\t{text}\n")
            result.crops += 1
        if progress is not None:
            progress(1)
    tmp = label_path.with_suffix(".tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.replace(label_path)
    return result
