"""The built-in demo data: small synthetic rec and det sets in PaddleOCR's label formats, reproducible from a seed.

Text is rendered with the DejaVu fonts that ship inside matplotlib (a dependency), so nothing is downloaded.
The sets are made to be learnable in minutes on a laptop CPU: short texts (1–12 characters for rec) from a modest
alphabet (digits, latin letters, a few symbols), clearly contrasting colours, mild rotation and blur.

Rec (``generate_rec_demo``)::

    out_dir/images/train_000000.png ...   one word / number / price / date / code per image
    out_dir/train.txt, val.txt            "images/train_000000.png\\tText" (PaddleOCR rec format)
    out_dir/dict.txt                      the characters used, one per line (no space: texts have none)
    out_dir/manifest.json                 parameters; marked complete last, so an interrupted run is redone

Det (``generate_det_demo``)::

    out_dir/images/train_000000.png ...   640×480 images with 1–6 text lines (every 10th image has none)
    out_dir/train.txt, val.txt            'images/x.png\\t[{"transcription": ..., "points": [[x, y] × 4]}]'
    out_dir/manifest.json

Det polygons are computed from the rendering: the tight box of the rendered ink (on the unrotated line), grown by
2 px, mapped through the same affine transform that places the ink in the image, listed top-left, top-right,
bottom-right, bottom-left (clockwise on screen) and rounded to integers. The ink therefore lies inside its
polygon.

Each image is drawn from its own generator ``default_rng([seed, split, index])``, so one image does not depend on
how many others are made. Generation is idempotent: when ``out_dir`` holds a complete set (manifest + label files
+ every listed image) made with the same parameters, nothing is done.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from workbench.errors import DataError

__all__ = [
    "DEMO_ALPHABET",
    "REC_STYLES",
    "DemoSet",
    "RecStyle",
    "demo_font_paths",
    "det_demo_sample",
    "generate_det_demo",
    "generate_rec_demo",
    "rec_demo_sample",
    "render_det_image",
    "render_rec_image",
    "rec_style",
]

GENERATOR_VERSION = 1
MANIFEST = "manifest.json"
SYMBOLS = "$%&()+,-./:#"
DEMO_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" + SYMBOLS
DET_IMAGE_SIZE = (640, 480)  # (W, H)
_FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
)
_WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one had by word "
    "but not what all were we when your can said there use an each which she do how their if will up other about "
    "out many then them these so some her would make like him into time has look two more write go see number no "
    "way could people my than first water been call who oil its now find long down day did get come made may part "
    "total price date invoice order receipt amount cash change street road city phone email open close sale tax "
    "paid item qty unit net gross weight page name code ref model serial batch lot exp best before shop market "
    "coffee bread milk apple orange hotel taxi train ticket gate seat exit entry north south east west"
).split()
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class RecStyle:
    """How the rec demo crops look: text length and case, fonts, sizes, rotation, blur, noise, backgrounds.

    Two presets (``REC_STYLES``):

    * ``realistic``: everything the generator can do -- texts of 1-12 characters in any case (70 characters),
      six DejaVu fonts (sans, bold, oblique, mono, serif, serif bold) at 22-40 px, rotation up to 3 degrees,
      blur and noise on 30 % of the crops each, solid / gradient / paper backgrounds.
    * ``simple``: what a model trained from scratch on two CPU cores can learn in minutes (the built-in rec
      demo) -- the same kinds of texts, upper-cased and at most 8 characters (about 40 characters in all),
      DejaVu Sans and Sans Bold at 28-36 px, no rotation, blur or noise, solid backgrounds. Colours still vary
      (any pair with a luma difference of at least 100).
    * ``lines``: the text-line orientation demo -- lines of 2-5 words in sentence case, every crop as tall as the
      font's line (ascent + descent, as a detector's box is), so ascenders, descenders and the x-height band show
      which way is up; DejaVu Sans and Serif at 24-32 px, no rotation, blur or noise, solid backgrounds.
    """

    name: str
    max_len: int = 12
    uppercase: bool = False
    fonts: tuple[str, ...] = ()  # font file names (of _FONT_FILES); empty = all of them
    font_size: tuple[int, int] = (22, 40)  # inclusive
    max_angle: float = 3.0  # degrees, uniform in [-max_angle, max_angle]
    blur_p: float = 0.3
    noise_p: float = 0.3
    backgrounds: tuple[str, ...] = ("solid", "gradient", "paper")
    words: tuple[int, int] | None = None  # a line of this many words (inclusive) instead of one token
    tight: bool = True  # crop the ink's rows tightly; False keeps the font's line height (ascent + descent)

    def font_paths(self, available: list[Path]) -> list[Path]:
        if not self.fonts:
            return available
        chosen = [p for p in available if p.name in self.fonts]
        if not chosen:
            raise DataError(f"synth: style {self.name!r} needs fonts {self.fonts}, found none in {available}")
        return chosen


REC_STYLES: dict[str, RecStyle] = {
    "realistic": RecStyle("realistic"),
    "simple": RecStyle(
        "simple", max_len=8, uppercase=True, fonts=("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"), font_size=(28, 36),
        max_angle=0.0, blur_p=0.0, noise_p=0.0, backgrounds=("solid",),
    ),
    "lines": RecStyle("lines", max_len=40, fonts=("DejaVuSans.ttf", "DejaVuSerif.ttf"), font_size=(24, 32),
                      max_angle=0.0, blur_p=0.0, noise_p=0.0, backgrounds=("solid",), words=(2, 5), tight=False),
}


def rec_style(name: str | RecStyle) -> RecStyle:
    if isinstance(name, RecStyle):
        return name
    try:
        return REC_STYLES[name]
    except KeyError:
        raise DataError(f"synth: unknown rec demo style {name!r}; choose one of {sorted(REC_STYLES)}") from None


@dataclass(frozen=True)
class DemoSet:
    """Where a generated demo set lives. ``generated`` is False when an existing complete set was kept."""

    root: Path
    train: Path
    val: Path
    dict_path: Path | None
    generated: bool


# --------------------------------------------------------------------------------------------------------------
# fonts, texts, colours, backgrounds
# --------------------------------------------------------------------------------------------------------------


def demo_font_paths() -> list[Path]:
    """The DejaVu fonts bundled with matplotlib (DejaVuSans.ttf at least)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    paths = [folder / name for name in _FONT_FILES if (folder / name).is_file()]
    if not paths or paths[0].name != "DejaVuSans.ttf":
        raise DataError(f"synth: matplotlib's DejaVuSans.ttf not found in {folder} (is matplotlib installed?)")
    return paths


@lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _random_text(rng: np.random.Generator, max_len: int = 12) -> str:
    """A short realistic token: a word (any case), number, price, date, time, percentage or code."""
    kind = rng.choice(["word", "word", "word", "number", "price", "date", "time", "percent", "code"])
    if kind == "word":
        word = str(rng.choice(_WORDS))
        case = rng.integers(0, 4)
        text = word.upper() if case == 0 else word.capitalize() if case == 1 else word
    elif kind == "number":
        text = str(int(rng.integers(0, 10 ** int(rng.integers(1, 7)))))
    elif kind == "price":
        cents = f"{int(rng.integers(0, 100)):02d}"
        currency = "$" if rng.random() < 0.5 else ""
        whole = int(rng.integers(0, 1000))
        separator = "." if rng.random() < 0.7 else ","
        text = f"{currency}{whole}{separator}{cents}"
    elif kind == "date":
        y, m, d = int(rng.integers(1990, 2036)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
        style = rng.integers(0, 4)
        text = (
            f"{y}-{m:02d}-{d:02d}"
            if style == 0
            else f"{d:02d}/{m:02d}/{y % 100:02d}"
            if style == 1
            else f"{d:02d}.{m:02d}.{y}"
            if style == 2
            else f"{d}{_MONTHS[m - 1]}{y}"
        )
    elif kind == "time":
        text = f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"
    elif kind == "percent":
        text = f"{int(rng.integers(0, 101))}%"
    else:  # a code like AB-1234, X7K9P2, #A12, (12)
        letters = "".join(rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ"), size=int(rng.integers(1, 4))))
        digits = "".join(rng.choice(list("0123456789"), size=int(rng.integers(1, 6))))
        style = rng.integers(0, 4)
        text = (
            f"{letters}-{digits}"
            if style == 0
            else "".join(rng.permutation(list(letters + digits)))
            if style == 1
            else f"#{letters}{digits}"
            if style == 2
            else f"({digits})"
        )
    return text[:max_len]


def _luma(color: np.ndarray) -> float:
    b, g, r = (float(c) for c in color)  # BGR
    return 0.299 * r + 0.587 * g + 0.114 * b


def _contrasting_color(rng: np.random.Generator, background_luma: float) -> np.ndarray:
    """A text colour whose luma differs from the background's by at least 100."""
    for _ in range(20):
        color = rng.integers(0, 256, size=3)
        if abs(_luma(color) - background_luma) >= 100:
            return color.astype(np.float32)
    dark = background_luma > 127
    return np.full(3, rng.integers(0, 40) if dark else rng.integers(215, 256), np.float32)


_BACKGROUNDS = ("solid", "gradient", "paper")


def _background(rng: np.random.Generator, h: int, w: int, kinds: tuple[str, ...] = _BACKGROUNDS) -> np.ndarray:
    """Solid, linear gradient, or smooth noise ("paper"), float32 BGR in [0, 255]; one of ``kinds``."""
    kind = _BACKGROUNDS.index(kinds[int(rng.integers(0, len(kinds)))])
    base = rng.integers(0, 256, size=3).astype(np.float32)
    if kind == 0:
        image = np.broadcast_to(base, (h, w, 3)).copy()
    elif kind == 1:
        other = np.clip(base + rng.integers(-90, 91, size=3), 0, 255).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * np.arange(w)[None, :] + np.sin(angle) * np.arange(h)[:, None]
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        image = base * (1 - ramp[..., None]) + other * ramp[..., None]
    else:
        coarse = rng.normal(0, rng.uniform(8, 25), size=(max(2, h // 16), max(2, w // 16), 1))
        image = base + cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    return np.clip(image, 0, 255).astype(np.float32)


def _ink_mask(text: str, font: ImageFont.FreeTypeFont, tight: bool = True) -> np.ndarray:
    """The anti-aliased ink of ``text`` as float32 alpha in [0, 1], cropped to its tight bounding box (``tight``)
    or, in height, to the font's line (ascent + descent)."""
    left, top, right, bottom = font.getbbox(text)
    ascent, descent = font.getmetrics()
    width, height = right - left + 4, max(bottom, ascent + descent) - min(top, 0) + 4
    canvas = Image.new("L", (max(width, 1), max(height, 1)), 0)
    ImageDraw.Draw(canvas).text((2 - left, 2 - (top if tight else min(top, 0))), text, font=font, fill=255)
    alpha = np.asarray(canvas, dtype=np.float32) / 255.0
    rows, cols = np.flatnonzero(alpha.max(axis=1) > 0), np.flatnonzero(alpha.max(axis=0) > 0)
    if rows.size == 0:
        raise DataError(f"synth: text {text!r} rendered no ink")
    if not tight:
        rows = np.arange(2, 2 + ascent + descent - min(top, 0))
    return alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _compose(background: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> np.ndarray:
    return background * (1 - alpha[..., None]) + color * alpha[..., None]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------
# rendering one sample
# --------------------------------------------------------------------------------------------------------------


def _line_text(rng: np.random.Generator, words: tuple[int, int], max_len: int) -> str:
    """A line of words in sentence case, now and then with a number or price among them."""
    while True:
        tokens = [str(rng.choice(_WORDS)) for _ in range(int(rng.integers(words[0], words[1] + 1)))]
        if rng.random() < 0.2:
            tokens[int(rng.integers(0, len(tokens)))] = _random_text(rng)
        text = " ".join(tokens)
        text = text[0].upper() + text[1:]
        if len(text) <= max_len:
            return text


def _style_text(rng: np.random.Generator, style: RecStyle) -> str:
    if style.words is not None:
        return _line_text(rng, style.words, style.max_len)
    if not style.uppercase and style.max_len == 12:
        return _random_text(rng)  # the realistic style: cut at 12 characters
    while True:  # redraw rather than cut ("2026-12-" would be a strange text)
        text = _random_text(rng, max_len=64)
        if len(text) <= style.max_len:
            return text.upper() if style.uppercase else text


def render_rec_image(
    rng: np.random.Generator, fonts: list[Path], style: str | RecStyle = "realistic"
) -> tuple[np.ndarray, str]:
    """One rec sample in ``style`` (see :class:`RecStyle`): (BGR uint8 image, text)."""
    style = rec_style(style)
    fonts = style.font_paths(fonts)
    text = _style_text(rng, style)
    low, high = style.font_size
    font = _font(str(fonts[int(rng.integers(0, len(fonts)))]), int(rng.integers(low, high + 1)))
    ink = _ink_mask(text, font, style.tight)
    pad_x, pad_y = rng.integers(2, 10, size=2), rng.integers(2, 8, size=2)
    ink = np.pad(ink, ((pad_y[0], pad_y[1]), (pad_x[0], pad_x[1])))
    h, w = ink.shape
    angle = rng.uniform(-style.max_angle, style.max_angle)
    if abs(angle) > 0.5:  # slight rotation on the same canvas (the padding absorbs it)
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        ink = cv2.warpAffine(ink, matrix, (w, h), flags=cv2.INTER_LINEAR)
    background = _background(rng, h, w, style.backgrounds)
    image = _compose(background, ink, _contrasting_color(rng, float(np.mean(background @ [0.114, 0.587, 0.299]))))
    if rng.random() < style.blur_p:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.0))
    if rng.random() < style.noise_p:
        image = image + rng.normal(0, rng.uniform(2, 8), size=image.shape)
    return _to_uint8(image), text


def render_det_image(
    rng: np.random.Generator, fonts: list[Path], num_lines: int, size: tuple[int, int] = DET_IMAGE_SIZE
) -> tuple[np.ndarray, list[tuple[str, np.ndarray]], np.ndarray]:
    """One det sample: (BGR uint8 image, [(transcription, int32 [4, 2] polygon)], float32 ink alpha [H, W]).

    Lines that find no free place after 30 tries are left out, so fewer than ``num_lines`` may be returned.
    """
    width, height = size
    background = _background(rng, height, width)
    image = background.copy()
    # a few faint non-text shapes, so that not every edge is text
    mean_color = background.mean(axis=(0, 1))
    for _ in range(int(rng.integers(0, 4))):
        shade = tuple(float(c) for c in np.clip(mean_color + rng.integers(-40, 41, 3), 0, 255))
        p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            cv2.line(image, p0, p1, shade, int(rng.integers(1, 4)))
        else:
            cv2.rectangle(image, p0, p1, shade, int(rng.integers(1, 3)))

    occupied = np.zeros((height, width), np.uint8)
    ink_total = np.zeros((height, width), np.float32)
    lines: list[tuple[str, np.ndarray]] = []
    for _ in range(num_lines):
        text = " ".join(_random_text(rng) for _ in range(int(rng.integers(1, 4))))
        font = _font(str(fonts[int(rng.integers(0, len(fonts)))]), int(rng.integers(18, 45)))
        ink = _ink_mask(text, font)
        pad = 2
        ink = np.pad(ink, pad)  # the polygon is the ink box grown by `pad`
        ih, iw = ink.shape
        if iw > width - 8 or ih > height - 8:
            continue
        angle = rng.uniform(-5, 5) if rng.random() < 0.7 else rng.uniform(-30, 30)
        # box corners in the line's own frame, in pixel-centre coordinates: TL, TR, BR, BL
        corners = np.array([[0, 0], [iw - 1, 0], [iw - 1, ih - 1], [0, ih - 1]], np.float64)
        for _try in range(30):
            centre = (rng.uniform(0, width), rng.uniform(0, height))
            matrix = cv2.getRotationMatrix2D(((iw - 1) / 2, (ih - 1) / 2), angle, 1.0)
            matrix[:, 2] += (centre[0] - (iw - 1) / 2, centre[1] - (ih - 1) / 2)
            poly = corners @ matrix[:, :2].T + matrix[:, 2]
            if poly.min() < 1 or poly[:, 0].max() > width - 2 or poly[:, 1].max() > height - 2:
                continue
            poly_int = np.round(poly).astype(np.int32)
            # work inside the polygon's box grown by a margin (the overlap check dilates by 3 px)
            x0, y0 = np.maximum(poly_int.min(axis=0) - 4, 0)
            x1, y1 = np.minimum(poly_int.max(axis=0) + 5, (width, height))
            footprint = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(footprint, [poly_int - (x0, y0)], 1)
            if (cv2.dilate(footprint, np.ones((7, 7), np.uint8)) & occupied[y0:y1, x0:x1]).any():
                continue
            local = matrix.copy()
            local[:, 2] -= (x0, y0)
            alpha = cv2.warpAffine(ink, local, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR)
            region = image[y0:y1, x0:x1]
            under = float(np.mean(region[footprint.astype(bool)] @ [0.114, 0.587, 0.299]))  # local background
            image[y0:y1, x0:x1] = _compose(region, alpha, _contrasting_color(rng, under))
            occupied[y0:y1, x0:x1] |= footprint
            np.maximum(ink_total[y0:y1, x0:x1], alpha, out=ink_total[y0:y1, x0:x1])
            lines.append((text, poly_int))
            break
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 0.9))
    return _to_uint8(image), lines, ink_total


def rec_demo_sample(
    seed: int, split_id: int, index: int, fonts: list[Path] | None = None, style: str | RecStyle = "realistic"
) -> tuple[np.ndarray, str]:
    """Rec demo image ``index`` of split ``split_id`` (0 train, 1 val), exactly as the generator writes it."""
    return render_rec_image(np.random.default_rng([seed, split_id, index]), fonts or demo_font_paths(), style)


def det_demo_sample(
    seed: int, split_id: int, index: int, fonts: list[Path] | None = None
) -> tuple[np.ndarray, list[tuple[str, np.ndarray]], np.ndarray]:
    """Det demo image ``index`` of split ``split_id``: (image, lines, ink alpha); every 10th image has no text."""
    rng = np.random.default_rng([seed, split_id, index])
    num_lines = 0 if index % 10 == 9 else int(rng.integers(1, 7))
    return render_det_image(rng, fonts or demo_font_paths(), num_lines)


# --------------------------------------------------------------------------------------------------------------
# writing sets, idempotently
# --------------------------------------------------------------------------------------------------------------


def _listed_images(root: Path, label_file: Path) -> list[Path]:
    return [root / line.split("\t", 1)[0] for line in label_file.read_text(encoding="utf-8").splitlines() if line]


def _read_manifest(root: Path) -> dict | None:
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == "workbench.data.synth" else None


def _is_complete(root: Path, params: dict) -> bool:
    manifest = _read_manifest(root)
    if manifest is None or not manifest.get("complete") or manifest.get("params") != params:
        return False
    if not all((root / name).is_file() for name in manifest.get("files", [])):
        return False
    return all(path.is_file() for name in ("train.txt", "val.txt") for path in _listed_images(root, root / name))


def _prepare(root: Path, params: dict, owned: list[str]) -> None:
    """Clear an earlier demo set (other parameters, or interrupted); refuse to touch a folder that is not one.

    A manifest marked incomplete is written before the first image, so an interrupted run is recognised (and
    redone) while a user's own data folder is never mistaken for a demo set.
    """
    if root.exists() and any(root.iterdir()):
        if _read_manifest(root) is None:
            raise DataError(
                f"synth: {root} is not empty and holds no demo set made by the generator "
                f"(no valid {MANIFEST}); choose an empty or new folder"
            )
        for name in [*owned, MANIFEST]:
            path = root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    (root / "images").mkdir(parents=True, exist_ok=True)
    _write_manifest(root, params, owned, complete=False)


def _write_text(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def _write_manifest(root: Path, params: dict, owned: list[str], complete: bool, counts: dict | None = None) -> None:
    manifest = {
        "generator": "workbench.data.synth",
        "complete": complete,
        "params": params,
        "files": [name for name in owned if name != "images"],
        "counts": counts or {},
    }
    _write_text(root / MANIFEST, [json.dumps(manifest, indent=2)])


def _check_counts(n_train: int, n_val: int) -> None:
    if n_train < 0 or n_val < 0 or n_train + n_val == 0:
        raise DataError(f"synth: need n_train, n_val >= 0 and at least one image, got {n_train}, {n_val}")


_SPLITS = (("train", 0), ("val", 1))


def generate_rec_demo(
    out_dir: str | os.PathLike, n_train: int = 2000, n_val: int = 200, seed: int = 0, style: str = "realistic"
) -> DemoSet:
    """Write (or keep) the synthetic rec demo set in ``out_dir``; see the module docstring for the layout and
    :class:`RecStyle` for the ``style`` presets."""
    _check_counts(n_train, n_val)
    rec_style(style)  # unknown names fail before anything is written
    root = Path(out_dir)
    params = {"kind": "rec", "version": GENERATOR_VERSION, "n_train": n_train, "n_val": n_val, "seed": seed}
    if style != "realistic":  # a realistic set keeps the manifest it had before styles existed
        params["style"] = style
    owned = ["images", "train.txt", "val.txt", "dict.txt"]
    result = DemoSet(root, root / "train.txt", root / "val.txt", root / "dict.txt", generated=False)
    if _is_complete(root, params):
        return result
    _prepare(root, params, owned)
    fonts = demo_font_paths()
    used: set[str] = set()
    for split, split_id in _SPLITS:
        count = n_train if split == "train" else n_val
        lines = []
        for index in range(count):
            image, text = rec_demo_sample(seed, split_id, index, fonts, style)
            rel = f"images/{split}_{index:06d}.png"
            cv2.imwrite(str(root / rel), image)
            lines.append(f"{rel}\t{text}")
            used.update(text)
        _write_text(root / f"{split}.txt", lines)
    _write_text(root / "dict.txt", sorted(used))
    _write_manifest(root, params, owned, complete=True, counts={"train": n_train, "val": n_val, "chars": len(used)})
    return DemoSet(result.root, result.train, result.val, result.dict_path, generated=True)


def generate_det_demo(out_dir: str | os.PathLike, n_train: int = 200, n_val: int = 50, seed: int = 0) -> DemoSet:
    """Write (or keep) the synthetic det demo set in ``out_dir``; see the module docstring for the layout."""
    _check_counts(n_train, n_val)
    root = Path(out_dir)
    params = {
        "kind": "det",
        "version": GENERATOR_VERSION,
        "n_train": n_train,
        "n_val": n_val,
        "seed": seed,
        "size": list(DET_IMAGE_SIZE),
    }
    owned = ["images", "train.txt", "val.txt"]
    result = DemoSet(root, root / "train.txt", root / "val.txt", None, generated=False)
    if _is_complete(root, params):
        return result
    _prepare(root, params, owned)
    fonts = demo_font_paths()
    counts = {}
    for split, split_id in _SPLITS:
        count = n_train if split == "train" else n_val
        lines, boxes = [], 0
        for index in range(count):
            image, text_lines, _ = det_demo_sample(seed, split_id, index, fonts)
            rel = f"images/{split}_{index:06d}.png"
            cv2.imwrite(str(root / rel), image)
            label = [{"transcription": text, "points": poly.tolist()} for text, poly in text_lines]
            lines.append(f"{rel}\t{json.dumps(label, ensure_ascii=False)}")
            boxes += len(label)
        _write_text(root / f"{split}.txt", lines)
        counts[split] = {"images": count, "boxes": boxes}
    _write_manifest(root, params, owned, complete=True, counts=counts)
    return DemoSet(result.root, result.train, result.val, None, generated=True)
