"""What verification runs on: probe images and crops (:class:`Probes`), chosen from the runs' validation sets.

Part of ``workbench.export.verify`` (see its docstring)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from workbench.errors import ExportError

PROBES_DIR = "probes"


# ----------------------------------------------------------------------------------------------- probes


@dataclass
class Probes:
    """What verification runs on. Paths are inside the export folder (``probes/``) once :func:`copy_probes` ran."""

    images: list[Path] = field(default_factory=list)  # full images for det and the pipeline
    crops: list[Path] = field(default_factory=list)  # rec crops for the module stage
    crop_texts: list[str] = field(default_factory=list)  # their labels (shown in the report, not compared)


def validation_files(checkpoint) -> tuple[list[Path], Optional[str]]:
    """The validation label files (and ``data.root``) recorded in a checkpoint's ``config.yaml``."""
    import yaml

    text = checkpoint.config_yaml
    if not text:
        return [], None
    data = (yaml.safe_load(text) or {}).get("data") or {}
    val = data.get("val")
    if not val and not data.get("train") and (data.get("demo") or {}).get("dir"):
        val = str(Path(data["demo"]["dir"]) / "val.txt")  # a demo run: its generated validation set
    files = [val] if isinstance(val, str) else list(val or [])
    return [Path(f) for f in files if f and Path(f).is_file()], data.get("root")


def select_probes(
    det_checkpoint=None,
    rec_checkpoint=None,
    *,
    probe_images: Iterable[str] = (),
    num_images: int = 2,
    num_crops: int = 8,
) -> Probes:
    """Probe images: the user's, else the first ``num_images`` of the det run's validation set; rec crops: the
    first ``num_crops`` of the rec run's validation set. With only rec exported and no images given, the rec
    crops double as pipeline images."""
    from workbench.data.images import read_image
    from workbench.data.labels import read_det_labels, read_rec_labels

    probes = Probes()
    for p in probe_images:
        if not Path(p).is_file():
            raise ExportError(f"probe image not found: {p}")
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
            raise ExportError(f"{rec_checkpoint.path}: no validation crops recorded in config.yaml (data.val) to "
                              "verify the rec model on")
    if not probes.images:
        probes.images = list(probes.crops[:num_images])
    if not probes.images:
        raise ExportError("no probe images: the det run has no validation data in its config.yaml; pass "
                          "probe_images=[...]")
    return probes


def _readable(read_image, path) -> bool:
    try:
        read_image(path)
        return True
    except Exception:
        return False


def copy_probes(probes: Probes, folder: Path) -> Probes:
    """Copy the probes into ``folder/probes/{images,crops}`` (numbered, so names never collide)."""
    out = Probes(crop_texts=list(probes.crop_texts))
    for kind, paths, dst_list in (("images", probes.images, out.images), ("crops", probes.crops, out.crops)):
        d = folder / PROBES_DIR / kind
        d.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(paths):
            dst = d / f"{i:02d}_{Path(p).name}"
            shutil.copyfile(p, dst)
            dst_list.append(dst)
    if probes.crop_texts:
        (folder / PROBES_DIR / "crops_labels.json").write_text(
            json.dumps({p.name: t for p, t in zip(out.crops, probes.crop_texts)}, ensure_ascii=False, indent=1),
            encoding="utf-8")
    return out
