"""Orientation data: which way is up, for the text-line (0° / 180°) and document (0° / 90° / 180° / 270°)
orientation classifiers.

Three kinds of label files give orientation samples (the first TAB separates image path and label; PaddleOCR's
other formats stay as they are):

* **class** -- a classification list, PaddleX style: ``images/x.jpg<TAB>180_degree``. The label is the class's
  PaddleX name (``0_degree`` / ``180_degree``; ``0`` / ``90`` / ``180`` / ``270``), its angle (``180``) or its
  index (``1``). PaddleClas's space-separated form (``images/x.jpg 1``) is read too.
* **rec** -- any text-recognition label file (``crop.png<TAB>text``): a crop as labelled is upright, so each crop
  gives one sample per class, turned by the class's angle. Every rec data set is text-line orientation data.
* **det** -- any detection label file: a page whose boxes are labelled is assumed upright, so each page with at
  least one text box gives one sample per class (document orientation). A page without text has no "up"; it is
  reported (``no_orientation_signal``) and not used.

``label_format`` ``auto`` decides per file: every label a JSON list → det; most labels a class → class (the
others are reported as unknown classes); else rec.
The task says which derivations it accepts (text lines: class, rec; documents: class, det).

Angles are *clockwise*: a sample of class θ is the upright image turned clockwise by θ, so turning it back
counter-clockwise by θ -- what PaddleX's ``rotate_image(image, θ)`` (``cv2.getRotationMatrix2D``, positive =
counter-clockwise) does with the predicted class -- makes it upright.

Item dict: ``image`` (the transform's output; ``[3, H, W]`` float32 for the model), ``label`` (class index),
``angle``, ``derived`` (the class comes from turning an upright image), ``width`` / ``height`` of the source
image, and ``path``, ``file``, ``line`` for reports.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from workbench.data.findings import DataPolicy, Finding
from workbench.data.labels import read_det_labels, read_label_lines, resolve_image_path
from workbench.data.sampling import SourceMixDataset, Transform, collate
from workbench.errors import ConfigError

LABEL_FORMATS = ("auto", "class", "rec", "det")


@dataclass(frozen=True)
class OrientationClasses:
    """The classes of an orientation task: PaddleX's label names (``label_list``, index = class id) and the
    clockwise angle each one stands for."""

    names: tuple[str, ...]
    angles: tuple[int, ...]

    def parse(self, token: str) -> Optional[int]:
        """The class index a label stands for (name, angle with or without ``°``, or index), None if none."""
        t = token.strip()
        if t in self.names:
            return self.names.index(t)
        t = t.rstrip("°")
        if t.lstrip("-").isdigit():
            value = int(t)
            if value in self.angles:
                return self.angles.index(value)
            if 0 <= value < len(self.names):
                return value
        return None

    def index_of(self, angle: int) -> int:
        return self.angles.index(int(angle) % 360)

    def describe(self) -> str:
        return ", ".join(f"{n} ({a}°)" for n, a in zip(self.names, self.angles))


TEXTLINE_CLASSES = OrientationClasses(("0_degree", "180_degree"), (0, 180))
DOC_CLASSES = OrientationClasses(("0", "90", "180", "270"), (0, 90, 180, 270))


def turn_clockwise(image: np.ndarray, angle: int) -> np.ndarray:
    """``image`` turned clockwise by ``angle`` (a multiple of 90°), exactly (no interpolation)."""
    if int(angle) % 90:
        raise ValueError(f"orientation angles are multiples of 90°, got {angle}")
    k = (-int(angle) // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def turn_upright(image: np.ndarray, angle: int) -> np.ndarray:
    """Undo :func:`turn_clockwise` (what the pipeline does with a predicted class)."""
    return turn_clockwise(image, -int(angle))


def pipeline_turn(image: np.ndarray, angle: float) -> np.ndarray:
    """What PaddleX 3.7's OCR pipeline does to turn an image by ``angle`` degrees counter-clockwise
    (``rotate_image``: ``cv2.getRotationMatrix2D`` about ``(w / 2, h / 2)``, the canvas grown to the rotated
    bounds, ``warpAffine`` with ``INTER_CUBIC`` and a black border). For multiples of 90° this is
    :func:`turn_upright` shifted by one pixel (the centre is ``w / 2``, not ``(w - 1) / 2``), with a one-pixel
    black edge."""
    if angle % 360 < 1e-7:
        return image
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = np.abs(m[0, 0]), np.abs(m[0, 1])
    new_w, new_h = int((h * sin) + (w * cos)), int((h * cos) + (w * sin))
    m[0, 2] += (new_w - w) / 2
    m[1, 2] += (new_h - h) / 2
    return cv2.warpAffine(image, m, (new_w, new_h), flags=cv2.INTER_CUBIC)


@dataclass
class OrientationSample:
    """One orientation sample: the label line it comes from, the source image, the clockwise angle of its class,
    and how the class was obtained (``class`` file, or derived from a ``rec`` crop / ``det`` page)."""

    file: str
    line: int
    image_path: Path
    angle: int
    source: str
    rel_path: str = ""
    text: str = ""  # rec: the crop's text; det: the page's transcriptions (signatures, reports)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def derived(self) -> bool:
        return self.source != "class"


def detect_format(labels: Sequence[str], classes: OrientationClasses) -> str:
    """``det`` when every label is a JSON list, ``class`` when most labels (more than half) name a class, else
    ``rec``. Most, not all: a class list with a typo (``sideways``) stays a class list whose bad lines are
    reported (``unknown_class``), instead of becoming a rec file whose turned crops silently replace every class
    label of the file. A rec file's texts are almost never mostly ``0_degree`` / ``180`` / ``1``."""
    if labels and all(lb.lstrip().startswith("[") for lb in labels):
        return "det"
    if labels and 2 * sum(classes.parse(lb) is not None for lb in labels) > len(labels):
        return "class"
    return "rec"


def read_orientation_labels(path, classes: OrientationClasses, *, derive: Sequence[str] = ("rec",),
                            label_format: str = "auto", root=None, task: str = "orientation"
                            ) -> tuple[list[OrientationSample], list[Finding], str]:
    """Parse one label file into orientation samples (see the module docstring). ``derive``: the formats whose
    upright images may be turned into samples of every class. Returns (samples, findings, format)."""
    if label_format not in LABEL_FORMATS:
        raise ConfigError(f"data.label_format={label_format!r}: choose {' | '.join(LABEL_FORMATS)}")
    file = str(path)

    def is_class(token: str) -> bool:
        return classes.parse(token) is not None

    lines, findings = read_label_lines(path, space_label=is_class)
    fmt = detect_format([ln.label for ln in lines], classes) if label_format == "auto" else label_format
    if fmt != "class" and fmt not in derive:
        accepted = " or ".join(("class",) + tuple(derive))
        raise ConfigError(f"{file}: a {fmt} label file gives no {task} samples (accepted: {accepted} label files; "
                          f"set data.label_format if the automatic choice is wrong)")
    samples: list[OrientationSample] = []
    if fmt == "class":
        for ln in lines:
            index = classes.parse(ln.label)
            if index is None:
                findings.append(Finding.make("unknown_class", file, ln.lineno,
                                             f"{ln.label!r} is not a class of {task}: {classes.describe()}"))
                continue
            samples.append(OrientationSample(file, ln.lineno, resolve_image_path(path, ln.path, root),
                                             classes.angles[index], "class", ln.path))
    elif fmt == "rec":
        lines, findings = read_label_lines(path)  # again without the class-list split: a rec file has TABs
        for ln in lines:
            image = resolve_image_path(path, ln.path, root)
            samples += [OrientationSample(file, ln.lineno, image, a, "rec", ln.path, ln.label) for a in classes.angles]
    else:
        pages, findings = read_det_labels(path, root=root)
        for page in pages:
            texts = [t for t, ignore in zip(page.texts, page.ignore_tags) if not ignore]
            if not texts:
                findings.append(Finding.make("no_orientation_signal", file, page.line,
                                             f"{page.rel_path}: no text box, so no way to tell which way is up"))
                continue
            samples += [OrientationSample(file, page.line, page.image_path, a, "det", page.rel_path,
                                          " | ".join(texts)) for a in classes.angles]
    return samples, findings, fmt


class OrientationDataset(SourceMixDataset):
    """Orientation samples from ``sources`` (label files, or ``(label_file, ratio)`` pairs); see the module doc.
    ``formats``: the format each label file was read as."""

    kind = "orientation"

    def __init__(self, sources, classes: OrientationClasses, transform: Transform | None = None,
                 policy: DataPolicy | None = None, *, derive: Sequence[str] = ("rec",), label_format: str = "auto",
                 task: str = "orientation", root=None, seed: int = 0, shuffle: bool = True,
                 check_images_exist: bool = True):
        self.classes = classes
        self.derive = tuple(derive)
        self.label_format = label_format
        self.task = task
        self.formats: dict[str, str] = {}
        super().__init__(sources, transform, policy, root=root, seed=seed, shuffle=shuffle,
                         check_images_exist=check_images_exist)

    def _load_source(self, path: Path):
        samples, findings, fmt = read_orientation_labels(path, self.classes, derive=self.derive,
                                                         label_format=self.label_format, root=self.root,
                                                         task=self.task)
        self.formats[str(path)] = fmt
        return samples, findings

    def _missing_image_findings(self, samples) -> list[Finding]:
        seen, out = set(), []
        for s in samples:  # derived samples share their label line: one finding per line
            if (s.file, s.line) not in seen and not Path(s.image_path).is_file():
                seen.add((s.file, s.line))
                out.append(Finding.make("missing_image", s.file, s.line, f"{s.image_path}: no such file"))
        return out

    def _sample_signature(self, sample: OrientationSample) -> str:
        return f"{sample.line}|{sample.rel_path}|{sample.angle}\n"

    def _make_item(self, sample: OrientationSample, image: np.ndarray) -> dict:
        h, w = image.shape[:2]
        return {"image": turn_clockwise(image, sample.angle), "label": np.int64(self.classes.index_of(sample.angle)),
                "angle": np.int64(sample.angle), "derived": sample.derived, "height": h, "width": w,
                "path": str(sample.image_path), "file": sample.file, "line": sample.line}

    def class_counts(self) -> dict[str, int]:
        counts = collections.Counter(self.classes.names[self.classes.index_of(s.angle)] for s in self.samples)
        return {name: counts.get(name, 0) for name in self.classes.names}


def collate_orientation(items) -> dict:
    """Stack orientation items: ``image`` ``[N, 3, H, W]``, ``label`` / ``angle`` ``[N]``; ``path``, ``file``,
    ``line`` as lists; ``failed`` as in :func:`workbench.data.sampling.collate`."""
    return collate(items, list_keys=("path", "file", "line"))


# --- transforms ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrientationAugment:
    """Training augmentation that never changes the class: no flips, rotations of a degree or two only (on a
    line ten times wider than tall, 5° moves its ends by almost half its height).

    ``rotate``: max |angle| in degrees; ``crop_jitter``: each side moves in or out by up to this share of the
    image; ``color_p`` (brightness / contrast), ``blur_p``, ``noise_p``: probabilities."""

    rotate: float = 2.0
    crop_jitter: float = 0.05
    color_p: float = 0.5
    blur_p: float = 0.2
    noise_p: float = 0.2

    @classmethod
    def from_config(cls, values: dict) -> "OrientationAugment":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"data.augment: unknown key(s) {unknown} for orientation data; known: {sorted(known)}")
        return cls(**{k: float(v) for k, v in values.items()})

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        if self.crop_jitter > 0:
            d = rng.uniform(-self.crop_jitter, self.crop_jitter, 4) * np.array([h, h, w, w])
            top, bottom, left, right = (int(round(v)) for v in d)
            pad = [max(0, -top), max(0, -bottom), max(0, -left), max(0, -right)]
            if any(pad):
                image = cv2.copyMakeBorder(image, *pad, cv2.BORDER_REPLICATE)
            y0, x0 = max(0, top), max(0, left)
            y1, x1 = image.shape[0] - max(0, bottom), image.shape[1] - max(0, right)
            if y1 - y0 >= max(2, h // 2) and x1 - x0 >= max(2, w // 2):
                image = image[y0:y1, x0:x1]
        if self.rotate > 0:
            angle = rng.uniform(-self.rotate, self.rotate)
            hh, ww = image.shape[:2]
            m = cv2.getRotationMatrix2D((ww / 2, hh / 2), angle, 1.0)
            image = cv2.warpAffine(image, m, (ww, hh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < self.color_p:
            image = np.clip(image.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30), 0, 255)
            image = image.astype(np.uint8)
        if rng.random() < self.blur_p:
            image = cv2.GaussianBlur(image, (3, 3) if rng.random() < 0.7 else (5, 5), 0)
        if rng.random() < self.noise_p:
            noisy = image.astype(np.float32) + rng.normal(0, rng.uniform(2, 12), image.shape)
            image = np.clip(noisy, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(image)


class OrientationTrainTransform:
    """Augment, then PaddleX's resize and normalisation (pages: a random instead of the centre crop)."""

    def __init__(self, preprocess, augment: OrientationAugment):
        self.preprocess = preprocess  # workbench.data.preprocess.ClsPreprocess
        self.augment = augment

    def __call__(self, data: dict, rng: Optional[np.random.Generator] = None) -> dict:
        rng = rng if rng is not None else np.random.default_rng()
        image = self.augment(data["image"], rng)
        crop_at = tuple(rng.random(2)) if self.preprocess.crop else None
        data["image"] = self.preprocess.normalize(self.preprocess.resize(image, crop_at=crop_at))
        return data


class OrientationEvalTransform:
    """PaddleX's classifier preprocessing, exactly (what the deployed module sees)."""

    def __init__(self, preprocess):
        self.preprocess = preprocess

    def __call__(self, data: dict, rng=None) -> dict:
        data["image"] = self.preprocess(data["image"])
        return data


def write_class_labels(rows: Sequence[tuple[str, str]], path: Path) -> Path:
    """A class-format label file (``image<TAB>class name`` per row), LF line ends."""
    path.write_text("".join(f"{image}\t{name}\n" for image, name in rows), encoding="utf-8")
    return path


__all__ = [
    "DOC_CLASSES", "LABEL_FORMATS", "OrientationAugment", "OrientationClasses", "OrientationDataset",
    "OrientationEvalTransform", "OrientationSample", "OrientationTrainTransform", "TEXTLINE_CLASSES",
    "collate_orientation", "detect_format", "pipeline_turn", "read_orientation_labels", "turn_clockwise",
    "turn_upright",
    "write_class_labels",
]
