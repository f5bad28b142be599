"""What verification runs on: probe images and crops (:class:`Probes`), chosen from the runs' validation sets.

Part of ``workbench.export.verify`` (see its docstring)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import cv2

from workbench.errors import ExportError

PROBES_DIR = "probes"


# ----------------------------------------------------------------------------------------------- probes


@dataclass
class Probes:
    """What verification runs on. Paths are inside the export folder (``probes/``) once :func:`copy_probes` ran."""

    images: list[Path] = field(default_factory=list)  # full images for det and the pipeline
    crops: list[Path] = field(default_factory=list)  # rec crops for the module stage
    crop_texts: list[str] = field(default_factory=list)  # their labels (shown in the report, not compared)
    # orientation modules: upright samples (text-line crops / pages) per task, for the module stage
    upright: dict[str, list[Path]] = field(default_factory=dict)
    # pipeline images that are probe images turned clockwise: name -> (the upright image's name, angle)
    turned: dict[str, tuple[str, int]] = field(default_factory=dict)


def recorded_validation_files(checkpoint) -> tuple[list[str], Optional[str]]:
    """The validation label files (and ``data.root``) recorded in a checkpoint's ``config.yaml``, found or not."""
    import yaml

    text = checkpoint.config_yaml
    if not text:
        return [], None
    data = (yaml.safe_load(text) or {}).get("data") or {}
    val = data.get("val")
    if not val and not data.get("train") and (data.get("demo") or {}).get("dir"):
        val = str(Path(data["demo"]["dir"]) / "val.txt")  # a demo run: its generated validation set
    files = [val] if isinstance(val, str) else list(val or [])
    return [str(f) for f in files if f], data.get("root")


def validation_files(checkpoint) -> tuple[list[Path], Optional[str]]:
    """The validation label files recorded in a checkpoint's ``config.yaml`` that exist (and ``data.root``)."""
    files, root = recorded_validation_files(checkpoint)
    return [Path(f) for f in files if Path(f).is_file()], root


def select_probes(
    det_checkpoint=None,
    rec_checkpoint=None,
    *,
    probe_images: Iterable[str] = (),
    num_images: int = 2,
    num_crops: int = 8,
    oriented: Optional[dict] = None,
) -> Probes:
    """Probe images: the user's, else the first ``num_images`` of the det run's validation set; rec crops: the
    first ``num_crops`` of the rec run's validation set; ``oriented`` (orientation task → checkpoint): upright
    samples of each orientation run's validation set (``num_crops`` text lines, ``num_images`` pages). With only
    rec (or only orientation) exported and no images given, those samples double as pipeline images."""
    from workbench.data.images import read_image
    from workbench.data.labels import read_det_labels, read_rec_labels

    probes = Probes()
    for p in probe_images:
        if not Path(p).is_file():
            raise ExportError(f"probe image not found: {p}")
        read_image(p)  # a bad probe image is an error naming it before anything is exported
        probes.images.append(Path(p))
    if not probes.images and det_checkpoint is not None:
        files, root = validation_files(det_checkpoint)
        for f in files:
            samples, _ = read_det_labels(f, root)
            for s in samples:
                if len(probes.images) < num_images and _readable(read_image, s.image_path):
                    probes.images.append(s.image_path)
    if rec_checkpoint is not None:
        files, root = validation_files(rec_checkpoint)
        for f in files:
            samples, _ = read_rec_labels(f, root)
            for s in samples:
                if len(probes.crops) < num_crops and _readable(read_image, s.image_path):
                    probes.crops.append(s.image_path)
                    probes.crop_texts.append(s.text)
        if not probes.crops:
            missing = [f for f in recorded_validation_files(rec_checkpoint)[0] if not Path(f).is_file()]
            if missing:  # relative paths resolve from where training ran, not from here
                raise ExportError(f"{rec_checkpoint.path}: the validation crops recorded in config.yaml (data.val) "
                                  f"are not found from {Path.cwd()}: {', '.join(missing)} -- run wb export from the "
                                  "directory the training ran in")
            raise ExportError(f"{rec_checkpoint.path}: no validation crops recorded in config.yaml (data.val) to "
                              "verify the rec model on")
    for task, checkpoint in (oriented or {}).items():
        probes.upright[task] = upright_samples(task, checkpoint, num_crops if task_classes(task) == 2 else num_images)
    if not probes.images:
        probes.images = list(probes.crops[:num_images])
    if not probes.images:
        probes.images = [p for paths in probes.upright.values() for p in paths][:num_images]
    if not probes.images:
        raise ExportError("no probe images: the det run has no validation data in its config.yaml; pass "
                          "probe_images=[...]")
    return probes


def task_classes(task: str) -> int:
    from workbench.tasks import registry

    return len(registry.get(task).task.classes.names)


def upright_samples(task: str, checkpoint, count: int) -> list[Path]:
    """The first ``count`` readable upright images of an orientation run's validation set (class-0 samples of a
    class list, the crops / pages of rec / det files)."""
    from workbench.data.images import read_image
    from workbench.data.orientation import read_orientation_labels
    from workbench.tasks import registry

    task_cls = registry.get(task).task
    files, root = validation_files(checkpoint)
    label_format = _recorded_label_format(checkpoint)
    out: list[Path] = []
    for f in files:
        samples, _, _ = read_orientation_labels(f, task_cls.classes, derive=task_cls.derive,
                                                label_format=label_format, root=root, task=task)
        for s in samples:
            if s.angle == 0 and s.image_path not in out and len(out) < count and _readable(read_image, s.image_path):
                out.append(s.image_path)
    if not out:
        raise ExportError(f"{checkpoint.path}: no upright validation samples recorded in config.yaml (data.val) to "
                          f"verify the {task} model on")
    return out


def _recorded_label_format(checkpoint) -> str:
    import yaml

    data = (yaml.safe_load(checkpoint.config_yaml or "") or {}).get("data") or {}
    return str(data.get("label_format") or "auto")


def _readable(read_image, path) -> bool:
    try:
        read_image(path)
        return True
    except Exception:
        return False


def copy_probes(probes: Probes, folder: Path, turns: Iterable[int] = ()) -> Probes:
    """Copy the probes into ``folder/probes/{images,crops,<orientation task>}`` (numbered, so names never
    collide). ``turns``: clockwise angles the pipeline images are also written turned by (``NN_rot180_<name>``):
    the orientation modules must turn them back."""
    from workbench.data.images import read_image
    from workbench.data.orientation import turn_clockwise

    out = Probes(crop_texts=list(probes.crop_texts))
    groups = [("images", probes.images, out.images), ("crops", probes.crops, out.crops)]
    for task, paths in probes.upright.items():
        out.upright[task] = []
        groups.append((task, paths, out.upright[task]))
    for kind, paths, dst_list in groups:
        d = folder / PROBES_DIR / kind
        d.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(paths):
            dst = d / f"{i:02d}_{Path(p).name}"
            shutil.copyfile(p, dst)
            dst_list.append(dst)
    upright_images = list(out.images)
    for angle in sorted({int(a) % 360 for a in turns} - {0}):
        for i, src in enumerate(upright_images):
            dst = src.with_name(f"{i:02d}_rot{angle}_{src.name[3:]}")
            ok = cv2.imwrite(str(dst), turn_clockwise(read_image(src), angle))
            if not ok:
                raise ExportError(f"cannot write the turned probe {dst}")
            out.images.append(dst)
            out.turned[dst.name] = (src.name, angle)
    if probes.crop_texts:
        (folder / PROBES_DIR / "crops_labels.json").write_text(
            json.dumps({p.name: t for p, t in zip(out.crops, probes.crop_texts)}, ensure_ascii=False, indent=1),
            encoding="utf-8")
    return out
