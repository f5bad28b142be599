"""Training-time augmentation for the rec and det datasets (albumentations 2.x), modelled on upstream PaddleOCR.

Rec (``build_rec_augment``), upstream ``RecConAug`` + ``RecAug`` of the PP-OCRv5 rec recipes:

1. concatenation (``RecConAug``, p 0.5): up to ``ext_data_num`` extra samples (the dataset puts them in
   ``sample["ext_data"]``) are appended to the right, each resized to the target height, while the text stays
   within ``max_text_length`` characters and the width/height ratio within that of 48×320;
2. each with p 0.4, in upstream's order: TIA-like geometric warp (thin-plate-spline distortion + perspective),
   crop 1–8 rows off the top or bottom, Gaussian blur (5×5, σ 1), colour jitter, Gaussian noise, inversion.
   No flips (they would change the text).

   Differences from upstream, on purpose: upstream's "TIA" uses its own moving-least-squares warp; the
   thin-plate spline + perspective pair gives the same kind of local stretch/distortion. Upstream's HSV step
   (value ×(1 ± 0.001)) and Gaussian noise (σ ≈ 0.16 grey levels) are near no-ops; here colour jitter and noise are
   mild but visible. Upstream's "jitter" (a ≤1 % diagonal shift, zero pixels for crops under 100 px) is left out.

The seam with ``workbench.data.preprocess``: rec augmentation returns a BGR uint8 HWC image of *any* width; the
dataset then applies the train resize (upstream ``RecResizeImg``: keep the ratio, height 48, width ≤ 320, pad right,
normalise to [-1, 1], CHW float32), which lives in ``preprocess.py`` next to the PaddleX-identical eval resizers.

Det (``build_det_augment``), upstream ``CopyPaste`` (optional, off by default) + ``IaaAugment`` +
``EastRandomCropData`` of the PP-OCRv5 det recipes:

1. copy-paste (off by default): text crops from ``sample["ext_data"][0]`` pasted, rotated, onto free areas;
2. horizontal flip (p 0.5), rotation U(−10°, 10°) about the centre (same canvas, black fill), scale U(0.5, 3)
   — albumentations, with every polygon vertex carried as a keypoint so polygons stay on the pixels;
3. random crop to 640×640 that keeps text: crop edges are drawn from rows/columns no care-polygon covers, at
   least 10 % of each side, up to 50 tries for a crop that contains a care polygon (else the whole image); the
   crop is resized keeping its ratio and padded bottom/right with black. Polygons wholly outside the crop are
   dropped; polygons partly outside are kept as they are (``db_targets`` clips them, as upstream);
4. optional colour jitter (off by default: upstream has none).

   Differences from upstream, on purpose: polygon extents are clipped to the image before marking occupied
   rows/columns (upstream's slice with a negative start silently marks nothing), and the last free run of
   rows/columns is a candidate region too (upstream's region split forgets it).

Polygons may have any number (≥ 3) of points, different per polygon. Don't-care flags and texts follow their
polygons. Randomness: every call takes an optional ``numpy.random.Generator``; a dataset that passes one derived
from (seed, epoch, index) makes a resumed run reproduce the exact same augmented samples. Without one, the object's
own generator (seeded at build time) is used.
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# albumentations asks PyPI for a newer version on import (2 s timeout) unless told not to: training must not
# depend on, or wait for, the network. Only a default: a user who sets the variable keeps their value.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from workbench.errors import ConfigError, DataError  # noqa: E402

__all__ = [
    "RecAugmentConfig",
    "DetAugmentConfig",
    "RecAugment",
    "DetAugment",
    "build_rec_augment",
    "build_det_augment",
    "concat_rec_samples",
    "random_text_crop",
]


# --------------------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------------------


@dataclass
class RecAugmentConfig:
    """Rec augmentation settings; defaults are upstream's (PP-OCRv5 rec recipes)."""

    # RecConAug
    concat_p: float = 0.5
    ext_data_num: int = 2  # how many extra samples the dataset should load into sample["ext_data"]
    max_text_length: int = 25
    image_shape: tuple[int, int] = (48, 320)  # (H, W): concat height, and W/H caps the concatenated ratio
    # RecAug: each step's probability (upstream: 0.4 each)
    tia_p: float = 0.4
    crop_p: float = 0.4
    blur_p: float = 0.4
    color_p: float = 0.4
    noise_p: float = 0.4
    invert_p: float = 0.4
    # Not upstream's: ink missing in thin rows and patches, as a thermal or dot-matrix print head running low leaves
    # it (held-out SROIE receipt 185: broken strokes read as neighbours, PLEASE -> FLEASF). 0 = off (upstream).
    low_ink_p: float = 0.0


@dataclass
class DetAugmentConfig:
    """Det augmentation settings; defaults are upstream's (PP-OCRv5 det recipes), copy-paste off."""

    flip_p: float = 0.5
    rotate: tuple[float, float] = (-10.0, 10.0)  # degrees
    scale: tuple[float, float] = (0.5, 3.0)
    crop_size: tuple[int, int] = (640, 640)  # (W, H), as upstream's EastRandomCropData size
    crop_max_tries: int = 50
    min_crop_side_ratio: float = 0.1
    keep_ratio: bool = True
    color_jitter_p: float = 0.0
    copy_paste: bool = False
    copy_paste_ratio: float = 0.2  # share of the other image's care polygons to paste (1..30 of them)
    copy_paste_limit: bool = True  # only paste where no existing polygon's box is hit
    # What `scale` is relative to. original: the image as stored (upstream). pipeline: the image as the deployed
    # pipeline resizes it (PaddleX's det resize: short side >= 64, long side <= 4000), so training sees text at
    # the sizes inference sees (a 5000x7000 scan is read at 0.57x, a 700 px receipt photo at 1x).
    scale_reference: str = "original"
    # True (upstream): the random text crop is resized to fit crop_size. False: a crop_size window at the current
    # scale (padded when the image is smaller), so text keeps the size `scale` gave it.
    crop_resize: bool = True
    # crop_resize=False only: share of windows placed anywhere on the page instead of around a text line. Windows
    # around text never reach a large scan's margins, where dust, stamps and page edges are what the pipeline
    # reads as false boxes (upstream: every crop holds text, 0).
    window_anywhere_p: float = 0.0


def _config(cls: type, cfg: Any, where: str):
    """A config dataclass from None / an instance / a mapping (dict, OmegaConf DictConfig)."""
    if cfg is None:
        return cls()
    if isinstance(cfg, cls):
        return cfg
    if not (isinstance(cfg, Mapping) or (hasattr(cfg, "keys") and hasattr(cfg, "__getitem__"))):
        raise ConfigError(f"{where}: expected a mapping or {cls.__name__}, got {type(cfg).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key in cfg.keys():
        if key not in names:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(names))})")
        value = cfg[key]
        if isinstance(names[key].default, tuple):
            value = tuple(value)
        values[key] = value
    return cls(**values)


def _check_prob(value: float, name: str, where: str) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{where}: {name} must be a probability in [0, 1], got {value}")


def _check_image(image: Any, where: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise DataError(f"{where}: 'image' must be an HWC uint8 BGR array with 3 channels, got {desc}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise DataError(f"{where}: empty image {image.shape}")
    return image


# One albumentations pipeline object serves every sample a process loads. Seeding it and drawing from it must not
# interleave between loader threads (data.worker_type=thread): a sample's augmentation would then depend on its
# neighbours' timing (measured: 41 % of a det batch's pixels differed from the same batch loaded inline).
_SEEDED_CALL = threading.Lock()


def _seeded_call(compose: A.BaseCompose, rng: np.random.Generator, **data: Any) -> dict[str, Any]:
    """``compose(**data)`` with a fresh random state drawn from ``rng``.

    ``set_random_state`` shares one generator pair across the transforms (``set_random_seed`` would seed each
    transform with the same seed, making their draws correlated).
    """
    seed = int(rng.integers(0, 2**63 - 1))
    with _SEEDED_CALL:
        compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        return compose(**data)


# --------------------------------------------------------------------------------------------------------------
# rec
# --------------------------------------------------------------------------------------------------------------


class _TopBottomCrop(A.ImageOnlyTransform):
    """Cut 1–``max_rows`` rows off the top or the bottom (upstream ``get_crop``; only for images ≥ 20×20)."""

    def __init__(self, max_rows: int = 8, p: float = 0.5):
        super().__init__(p=p)
        self.max_rows = max_rows

    def get_params(self) -> dict[str, Any]:
        return {"rows": self.py_random.randint(1, self.max_rows), "from_top": self.py_random.random() < 0.5}

    def apply(self, img: np.ndarray, rows: int = 1, from_top: bool = True, **params: Any) -> np.ndarray:
        h, w = img.shape[:2]
        if h < 20 or w < 20:
            return img
        rows = min(rows, h - 1)
        return np.ascontiguousarray(img[rows:] if from_top else img[: h - rows])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("max_rows",)


class _LowInk(A.ImageOnlyTransform):
    """Lighten the ink in a few thin rows and, half of the time, in soft patches: the print of a thermal or
    dot-matrix head with weak or dead dots (strokes broken across, faded areas), which receipts show and the other
    steps do not make. Only pixels darker than the paper (the image's 90th brightness percentile) change."""

    def get_params(self) -> dict[str, Any]:
        return {"seed": self.py_random.randrange(2**31)}

    def apply(self, img: np.ndarray, seed: int = 0, **params: Any) -> np.ndarray:
        h, w = img.shape[:2]
        if h < 8 or w < 8:
            return img
        rng = np.random.default_rng(seed)
        pixels = img.astype(np.float32)  # HWC: the rec augment checks its input
        gray = pixels.mean(axis=2)
        paper = float(np.percentile(gray, 90))
        kept = np.ones((h, w), np.float32)  # share of each pixel's ink left
        unit = max(1, round(h / 32))  # a print-head row at this crop's scale (SROIE crops: 20-50 px high)
        for _ in range(int(rng.integers(1, max(1, h // 10) + 1))):
            y, rows = int(rng.integers(0, h)), int(rng.integers(1, 2 * unit + 1))
            x0 = int(rng.integers(0, w))
            kept[y : y + rows, x0 : x0 + int(rng.integers(w // 3, w + 1))] *= rng.uniform(0.0, 0.5)
        if rng.random() < 0.5:
            field = rng.uniform(0.1, 1.0, size=(max(2, h // (4 * unit)), max(2, w // (4 * unit))))
            kept *= cv2.resize(field.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        lighten = np.clip(paper - pixels, 0.0, None) * (1.0 - kept)[..., None]
        return np.clip(pixels + lighten, 0, 255).astype(img.dtype)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ()


def concat_rec_samples(
    image: np.ndarray,
    text: str,
    extras: list[Mapping[str, Any]],
    height: int,
    max_ratio: float,
    max_text_length: int,
) -> tuple[np.ndarray, str]:
    """Upstream ``RecConAug``'s merge: append extras left to right while text length and W/H ratio allow.

    Every piece is resized to ``height`` keeping its ratio (width ``round(w / h · height)``).
    """
    for extra in extras:
        ext_image, ext_text = extra["image"], extra["text"]
        if len(text) + len(ext_text) > max_text_length:
            break
        ratio = image.shape[1] / image.shape[0] + ext_image.shape[1] / ext_image.shape[0]
        if ratio > max_ratio:
            break
        pieces = []
        for piece in (image, ext_image):
            width = max(1, round(piece.shape[1] / piece.shape[0] * height))
            pieces.append(cv2.resize(piece, (width, height)))
        image = np.concatenate(pieces, axis=1)
        text = text + ext_text
    return image, text


class RecAugment:
    """Rec training augmentation: ``sample -> sample`` with ``image`` (HWC uint8 BGR) and ``text`` changed.

    ``sample["ext_data"]`` (optional) holds extra ``{"image", "text"}`` samples for the concatenation; it is
    consumed (absent from the result). Other keys pass through unchanged. The input sample is not modified.
    """

    def __init__(self, cfg: RecAugmentConfig, seed: int | None = None):
        where = "rec augment"
        for name in ("concat_p", "tia_p", "crop_p", "blur_p", "color_p", "noise_p", "invert_p", "low_ink_p"):
            _check_prob(getattr(cfg, name), name, where)
        if cfg.max_text_length < 1 or cfg.ext_data_num < 0 or min(cfg.image_shape) < 1:
            raise ConfigError(f"{where}: bad max_text_length / ext_data_num / image_shape in {cfg}")
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        replicate = cv2.BORDER_REPLICATE
        tia = A.Sequential(
            [
                A.ThinPlateSpline(scale_range=(0.015, 0.04), num_control_points=4, border_mode=replicate, p=1.0),
                A.Perspective(scale=(0.02, 0.06), keep_size=True, border_mode=replicate, p=1.0),
            ],
            p=cfg.tia_p,
        )
        self.pipeline = A.Compose(
            [
                tia,
                _TopBottomCrop(max_rows=8, p=cfg.crop_p),
                _LowInk(p=cfg.low_ink_p),  # before blur and noise: the ink was missing before the scan
                A.GaussianBlur(blur_limit=(5, 5), sigma_limit=(1.0, 1.0), p=cfg.blur_p),
                A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.03, p=cfg.color_p),
                A.GaussNoise(std_range=(0.005, 0.03), p=cfg.noise_p),
                A.InvertImg(p=cfg.invert_p),
            ]
        )

    @property
    def ext_data_num(self) -> int:
        """How many extra samples the dataset should attach as ``ext_data`` (0 when concatenation is off)."""
        return self.cfg.ext_data_num if self.cfg.concat_p > 0 else 0

    def __call__(self, sample: Mapping[str, Any], rng: np.random.Generator | None = None) -> dict[str, Any]:
        rng = self.rng if rng is None else rng
        out = dict(sample)
        extras = out.pop("ext_data", None) or []
        image = _check_image(out.get("image"), "rec augment")
        text = out.get("text")
        if not isinstance(text, str):
            raise DataError(f"rec augment: sample 'text' must be a str, got {type(text).__name__}")

        if extras and rng.random() < self.cfg.concat_p:
            for extra in extras:
                _check_image(extra.get("image"), "rec augment ext_data")
            height, width = self.cfg.image_shape
            image, text = concat_rec_samples(image, text, extras, height, width / height, self.cfg.max_text_length)

        out["image"] = _seeded_call(self.pipeline, rng, image=image)["image"]
        out["text"] = text
        return out

    def __repr__(self) -> str:
        return f"RecAugment({self.cfg})"


def build_rec_augment(cfg: RecAugmentConfig | Mapping[str, Any] | None = None, seed: int | None = None) -> RecAugment:
    """Rec training augmentation from a config (dataclass, mapping or None for upstream's defaults)."""
    return RecAugment(_config(RecAugmentConfig, cfg, "rec augment"), seed=seed)


# --------------------------------------------------------------------------------------------------------------
# det: geometry helpers
# --------------------------------------------------------------------------------------------------------------


def _polys_of(sample: Mapping[str, Any], where: str) -> tuple[list[np.ndarray], list[bool], list[Any]]:
    for key in ("image", "polys", "ignore_tags"):
        if key not in sample:
            raise DataError(f"{where}: sample has no '{key}' (keys: {sorted(sample)})")
    polys = []
    for i, poly in enumerate(sample["polys"]):
        arr = np.asarray(poly, dtype=np.float32).reshape(-1, 2)
        if arr.shape[0] < 3:
            raise DataError(f"{where}: polygon {i} has {arr.shape[0]} points, needs at least 3")
        polys.append(arr)
    tags = [bool(t) for t in sample["ignore_tags"]]
    texts = list(sample["texts"]) if sample.get("texts") is not None else [""] * len(polys)
    if not len(polys) == len(tags) == len(texts):
        raise DataError(f"{where}: {len(polys)} polygons, {len(tags)} ignore tags and {len(texts)} texts")
    return polys, tags, texts


def _outside_rect(poly: np.ndarray, x: float, y: float, w: float, h: float) -> bool:
    """True when the polygon's bounding box misses the rectangle entirely (upstream ``is_poly_outside_rect``)."""
    return bool(
        poly[:, 0].max() < x or poly[:, 0].min() > x + w or poly[:, 1].max() < y or poly[:, 1].min() > y + h
    )


def _free_runs(occupied: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Indices not covered by text, and the same split into contiguous runs."""
    free = np.flatnonzero(~occupied)
    if free.size == 0:
        return free, []
    breaks = np.flatnonzero(np.diff(free) != 1) + 1
    return free, np.split(free, breaks)


def _pick_span(rng: np.random.Generator, free: np.ndarray, runs: list[np.ndarray], size: int) -> tuple[int, int]:
    """Two crop borders on free rows/columns: from two (possibly equal) runs when there are several."""
    if len(runs) > 1:
        first, second = rng.integers(0, len(runs), size=2)
        values = [int(rng.choice(runs[first])), int(rng.choice(runs[second]))]
    else:
        values = [int(v) for v in rng.choice(free, size=2)]
    lo, hi = min(values), max(values)
    return int(np.clip(lo, 0, size - 1)), int(np.clip(hi, 0, size - 1))


def random_text_crop(
    rng: np.random.Generator,
    image_hw: tuple[int, int],
    care_polys: list[np.ndarray],
    min_side_ratio: float = 0.1,
    max_tries: int = 50,
) -> tuple[int, int, int, int]:
    """Upstream ``crop_area``: a crop ``(x, y, w, h)`` whose borders cut no care polygon and that contains one.

    Falls back to the whole image when every row or column is covered, there is no care polygon, or no try
    succeeds.
    """
    h, w = image_hw
    if not care_polys:
        return 0, 0, w, h
    occupied_x = np.zeros(w, dtype=bool)
    occupied_y = np.zeros(h, dtype=bool)
    for poly in care_polys:
        pts = np.round(poly).astype(np.int64)
        x0, x1 = np.clip([pts[:, 0].min(), pts[:, 0].max()], 0, w)
        y0, y1 = np.clip([pts[:, 1].min(), pts[:, 1].max()], 0, h)
        occupied_x[x0:x1] = True
        occupied_y[y0:y1] = True
    free_x, runs_x = _free_runs(occupied_x)
    free_y, runs_y = _free_runs(occupied_y)
    if free_x.size == 0 or free_y.size == 0:
        return 0, 0, w, h
    for _ in range(max_tries):
        x0, x1 = _pick_span(rng, free_x, runs_x, w)
        y0, y1 = _pick_span(rng, free_y, runs_y, h)
        if x1 - x0 < min_side_ratio * w or y1 - y0 < min_side_ratio * h:
            continue
        if any(not _outside_rect(p, x0, y0, x1 - x0, y1 - y0) for p in care_polys):
            return x0, y0, x1 - x0, y1 - y0
    return 0, 0, w, h


def random_text_window(
    rng: np.random.Generator,
    image_hw: tuple[int, int],
    care_polys: list[np.ndarray],
    size_wh: tuple[int, int],
    anywhere_p: float = 0.0,
) -> tuple[int, int, int, int]:
    """A ``size_wh`` window ``(x, y, w, h)`` inside the image (the whole side when the image is smaller) that holds
    the centre of a random care polygon; any position when there is none, or with probability ``anywhere_p``."""
    h, w = image_hw
    cw, ch = min(size_wh[0], w), min(size_wh[1], h)
    lo_x, hi_x, lo_y, hi_y = 0, w - cw, 0, h - ch
    anywhere = anywhere_p > 0 and rng.random() < anywhere_p  # p = 0 draws nothing: the same windows as before
    if care_polys and not anywhere:
        cx, cy = care_polys[int(rng.integers(len(care_polys)))].mean(axis=0)
        lo_x, hi_x = max(lo_x, int(cx) - cw + 1), min(hi_x, int(cx))
        lo_y, hi_y = max(lo_y, int(cy) - ch + 1), min(hi_y, int(cy))
        if lo_x > hi_x or lo_y > hi_y:  # centre outside the image (rotation): any window
            lo_x, hi_x, lo_y, hi_y = 0, w - cw, 0, h - ch
    return int(rng.integers(lo_x, hi_x + 1)), int(rng.integers(lo_y, hi_y + 1)), cw, ch


def _resize_like_pipeline(image: np.ndarray, polys: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The image (and polygons) at the size PaddleX's OCR pipeline feeds the detector."""
    from workbench.data.preprocess import DetResize

    h, w = image.shape[:2]
    th, tw = DetResize.pipeline().target_size(h, w, warn=False)
    if (th, tw) == (h, w):
        return image, polys
    sx, sy = tw / w, th / h
    return cv2.resize(image, (tw, th)), [(p * (sx, sy)).astype(np.float32) for p in polys]


def _crop_to_size(
    image: np.ndarray,
    polys: list[np.ndarray],
    tags: list[bool],
    texts: list[Any],
    crop: tuple[int, int, int, int],
    size_wh: tuple[int, int],
    keep_ratio: bool,
    resize: bool = True,
) -> tuple[np.ndarray, list[np.ndarray], list[bool], list[Any]]:
    """Cut ``crop`` out, scale it into ``size_wh`` (ratio kept + black pad, or stretched; ``resize=False``: not
    scaled, only padded), move the polygons."""
    x, y, cw, ch = crop
    out_w, out_h = size_wh
    patch = image[y : y + ch, x : x + cw]
    if not resize or keep_ratio:
        scale_x = scale_y = min(out_w / cw, out_h / ch) if resize else 1.0
        new_w, new_h = max(1, int(cw * scale_x)), max(1, int(ch * scale_y))
        canvas = np.zeros((out_h, out_w, image.shape[2]), dtype=image.dtype)
        canvas[:new_h, :new_w] = cv2.resize(patch, (new_w, new_h))
    else:
        scale_x, scale_y = out_w / cw, out_h / ch
        new_w, new_h = out_w, out_h
        canvas = cv2.resize(patch, (out_w, out_h))
    kept_polys, kept_tags, kept_texts = [], [], []
    for poly, tag, text in zip(polys, tags, texts):
        moved = ((poly - (x, y)) * (scale_x, scale_y)).astype(np.float32)
        if not _outside_rect(moved, 0, 0, new_w, new_h):
            kept_polys.append(moved)
            kept_tags.append(tag)
            kept_texts.append(text)
    return canvas, kept_polys, kept_tags, kept_texts


# --------------------------------------------------------------------------------------------------------------
# det: copy-paste
# --------------------------------------------------------------------------------------------------------------


def _upright_text_patch(image: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """The text of ``poly`` warped to an upright rectangle (its minimum-area rectangle for > 4 points)."""
    quad = poly if len(poly) == 4 else cv2.boxPoints(cv2.minAreaRect(poly.astype(np.float32)))
    quad = quad.astype(np.float32)
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    width, height = max(width, 1), max(height, 1)
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    matrix = cv2.getPerspectiveTransform(quad, target)
    patch = cv2.warpPerspective(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    if height / width >= 1.5:  # vertical text is stored rotated, as upstream's crop helper does
        patch = np.rot90(patch)
    return np.ascontiguousarray(patch)


def _rotate_expand(patch: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotate by ``angle`` degrees onto a canvas that holds it all; returns image, alpha mask, corner quad."""
    h, w = patch.shape[:2]
    rad = np.deg2rad(angle)
    new_w = int(np.ceil(abs(np.sin(rad)) * h + abs(np.cos(rad)) * w))
    new_h = int(np.ceil(abs(np.cos(rad)) * h + abs(np.sin(rad)) * w))
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    matrix[:, 2] += ((new_w - w) / 2, (new_h - h) / 2)
    rotated = cv2.warpAffine(patch, matrix, (new_w, new_h))
    alpha = cv2.warpAffine(np.full((h, w), 255, np.uint8), matrix, (new_w, new_h)) > 127
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    quad = corners @ matrix[:, :2].T.astype(np.float32) + matrix[:, 2].astype(np.float32)
    return rotated, alpha, quad.astype(np.float32)


def _copy_paste(
    image: np.ndarray,
    polys: list[np.ndarray],
    tags: list[bool],
    texts: list[Any],
    other: Mapping[str, Any],
    rng: np.random.Generator,
    ratio: float,
    limit: bool,
) -> tuple[np.ndarray, list[np.ndarray], list[bool], list[Any]]:
    """Upstream ``CopyPaste``: paste rotated text crops of another sample into this one."""
    other_image = _check_image(other.get("image"), "det copy-paste ext_data")
    other_polys, other_tags, other_texts = _polys_of(other, "det copy-paste ext_data")
    care = [i for i, tag in enumerate(other_tags) if not tag]
    if not care:
        return image, polys, tags, texts
    count = max(1, min(int(ratio * len(other_polys)), 30))
    chosen = [care[i] for i in rng.permutation(len(care))[:count]]
    image = image.copy()
    polys, tags, texts = list(polys), list(tags), list(texts)
    img_h, img_w = image.shape[:2]
    for index in chosen:
        patch, alpha, quad = _rotate_expand(
            _upright_text_patch(other_image, other_polys[index]), float(rng.integers(0, 360))
        )
        ph, pw = patch.shape[:2]
        if pw > img_w or ph > img_h:
            continue
        position = None
        for _ in range(50 if limit else 1):
            px, py = int(rng.integers(0, img_w - pw + 1)), int(rng.integers(0, img_h - ph + 1))
            box = quad + (px, py)
            x0, y0 = box.min(axis=0)
            x1, y1 = box.max(axis=0)
            if not limit or all(_outside_rect(p, x0, y0, x1 - x0, y1 - y0) for p in polys):
                position = (px, py)
                break
        if position is None:
            continue
        px, py = position
        region = image[py : py + ph, px : px + pw]
        region[alpha] = patch[alpha]
        polys.append((quad + (px, py)).astype(np.float32))
        tags.append(False)
        texts.append(other_texts[index])
    # upstream clips every polygon to the image after pasting
    polys = [np.stack([np.clip(p[:, 0], 0, img_w), np.clip(p[:, 1], 0, img_h)], axis=1) for p in polys]
    return image, polys, tags, texts


# --------------------------------------------------------------------------------------------------------------
# det: the pipeline
# --------------------------------------------------------------------------------------------------------------


class DetAugment:
    """Det training augmentation: ``sample -> sample`` with ``image``, ``polys``, ``ignore_tags``, ``texts``.

    Input ``image`` HWC uint8 BGR of any size; ``polys`` a sequence of ``[P, 2]`` (x, y) arrays (P ≥ 3, may differ);
    ``ignore_tags`` don't-care flags; ``texts`` optional. ``ext_data`` (list with one det sample) feeds copy-paste
    and is consumed. Output: ``image`` of ``crop_size`` (H×W×3 uint8), ``polys`` a list of float32 ``[P, 2]``
    arrays (the same P per polygon as given, except copy-pasted quads), ``ignore_tags`` / ``texts`` lists aligned
    with them. Other keys pass through. The input sample is not modified.
    """

    def __init__(self, cfg: DetAugmentConfig, seed: int | None = None):
        where = "det augment"
        for name in ("flip_p", "color_jitter_p", "copy_paste_ratio", "window_anywhere_p"):
            _check_prob(getattr(cfg, name), name, where)
        if not (0 < cfg.scale[0] <= cfg.scale[1]):
            raise ConfigError(f"{where}: scale must be (lo, hi) with 0 < lo <= hi, got {cfg.scale}")
        if cfg.rotate[0] > cfg.rotate[1]:
            raise ConfigError(f"{where}: rotate must be (lo, hi) degrees with lo <= hi, got {cfg.rotate}")
        if cfg.scale_reference not in ("original", "pipeline"):
            raise ConfigError(f"{where}: scale_reference must be original or pipeline, got {cfg.scale_reference!r}")
        if min(cfg.crop_size) < 1 or cfg.crop_max_tries < 1 or not 0 < cfg.min_crop_side_ratio <= 1:
            raise ConfigError(f"{where}: bad crop_size / crop_max_tries / min_crop_side_ratio in {cfg}")
        if cfg.window_anywhere_p > 0 and cfg.crop_resize:
            raise ConfigError(f"{where}: window_anywhere_p={cfg.window_anywhere_p} places crop_size windows; it "
                              "needs crop_resize=false (upstream's resized text crops always hold text)")
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        geometric = []
        if cfg.flip_p > 0:
            geometric.append(A.HorizontalFlip(p=cfg.flip_p))
        if cfg.rotate != (0.0, 0.0) and cfg.rotate != (0, 0):
            geometric.append(A.Affine(rotate=cfg.rotate, border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0))
        if cfg.scale != (1.0, 1.0) and cfg.scale != (1, 1):
            # RandomScale draws the factor from 1 + U(limit): (0.5, 3) -> limit (-0.5, 2)
            geometric.append(A.RandomScale(scale_limit=(cfg.scale[0] - 1, cfg.scale[1] - 1), p=1.0))
        self.geometric = A.Compose(
            geometric, keypoint_params=A.KeypointParams(format="xy", remove_invisible=False)
        )
        self.color = (
            A.Compose([A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=cfg.color_jitter_p)])
            if cfg.color_jitter_p > 0
            else None
        )

    @property
    def ext_data_num(self) -> int:
        """How many extra samples the dataset should attach as ``ext_data`` (1 with copy-paste, else 0)."""
        return 1 if self.cfg.copy_paste else 0

    def __call__(self, sample: Mapping[str, Any], rng: np.random.Generator | None = None) -> dict[str, Any]:
        rng = self.rng if rng is None else rng
        out = dict(sample)
        extras = out.pop("ext_data", None) or []
        image = _check_image(out.get("image"), "det augment")
        polys, tags, texts = _polys_of(out, "det augment")

        if self.cfg.copy_paste and extras:
            image, polys, tags, texts = _copy_paste(
                image, polys, tags, texts, extras[0], rng, self.cfg.copy_paste_ratio, self.cfg.copy_paste_limit
            )

        if self.cfg.scale_reference == "pipeline":
            image, polys = _resize_like_pipeline(image, polys)

        # flip / rotate / scale, with all polygon vertices as keypoints
        counts = [len(p) for p in polys]
        points = np.concatenate(polys) if polys else np.zeros((0, 2), np.float32)
        moved = _seeded_call(self.geometric, rng, image=image, keypoints=points)
        image = moved["image"]
        points = np.asarray(moved["keypoints"], dtype=np.float32).reshape(-1, 2)
        polys = [p.copy() for p in np.split(points, np.cumsum(counts)[:-1])] if polys else []

        # random crop that keeps text, then fit into crop_size
        care = [p for p, tag in zip(polys, tags) if not tag]
        if self.cfg.crop_resize:
            crop = random_text_crop(
                rng, image.shape[:2], care, self.cfg.min_crop_side_ratio, self.cfg.crop_max_tries
            )
        else:
            crop = random_text_window(
                rng, image.shape[:2], care, tuple(self.cfg.crop_size), self.cfg.window_anywhere_p
            )
        image, polys, tags, texts = _crop_to_size(
            image, polys, tags, texts, crop, tuple(self.cfg.crop_size), self.cfg.keep_ratio, self.cfg.crop_resize
        )

        if self.color is not None:
            image = _seeded_call(self.color, rng, image=image)["image"]

        out.update(image=image, polys=polys, ignore_tags=tags, texts=texts)
        return out

    def __repr__(self) -> str:
        return f"DetAugment({self.cfg})"


def build_det_augment(cfg: DetAugmentConfig | Mapping[str, Any] | None = None, seed: int | None = None) -> DetAugment:
    """Det training augmentation from a config (dataclass, mapping or None for upstream's defaults)."""
    return DetAugment(_config(DetAugmentConfig, cfg, "det augment"), seed=seed)
