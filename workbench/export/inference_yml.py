"""``inference.yml``: the file PaddleX reads next to an inference model, and the first place a newcomer looks.

What PaddleX 3.7 actually reads from it (the rest is documentation for people and other tools):

* ``Global.model_name`` — must be a name PaddleX has registered (``PP-OCRv5_mobile_det`` ...) and equal to the
  ``model_name`` the pipeline YAML / ``create_model`` asks for, or PaddleX refuses the folder.
* det: ``PreProcess.transform_ops`` → ``DecodeImage.img_mode`` (BGR: the channel order the model trained in),
  ``NormalizeImage`` (mean / std / scale), ``DetResizeForTest`` (left ``null``: the resize limits live in the
  pipeline YAML, where PaddleX reads them — a standalone ``create_model`` uses its own default, long side ≤ 960);
  ``PostProcess`` (DBPostProcess ``thresh``, ``box_thresh``, ``max_candidates``, ``unclip_ratio``, ``score_mode``:
  the defaults of a standalone module; the pipeline overrides the first four from its YAML).
* rec: ``DecodeImage.img_mode`` (BGR: without it the rec predictor converts crops to RGB), ``RecResizeImg.image_shape``
  (the height is fixed, the width follows the crop), ``PostProcess.character_dict`` (the training dictionary,
  line by line; PaddleX adds the CTC blank in front and the space class at the end itself).
* ``Hpi.backend_configs`` — TensorRT dynamic-shape ranges, used only with TensorRT.

The content per task comes from the task's export writer (``workbench.tasks.det_export``, ``rec_export``); this
module writes and reads the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from workbench import paddlex_files
from workbench.errors import ExportError
from workbench.paddlex_files import INFERENCE_YML


class _NoAliasDumper(yaml.SafeDumper):
    """Repeated lists are written out again instead of as YAML anchors (``&id001``): easier to read."""

    def ignore_aliases(self, data) -> bool:
        return True


def _header(provenance: dict, notes) -> str:
    lines = [
        "# PaddleX inference config written by `wb export` (OCR Workbench).",
        "# PaddleX reads: Global.model_name (must equal the pipeline's model_name), PreProcess, PostProcess.",
        *notes,
        "#",
        "# Exported from:",
    ]
    for k, v in provenance.items():
        lines.append(f"#   {k}: {v}")
    return "\n".join(lines) + "\n"


def write_inference_yml(model_dir: str | Path, config: dict, provenance: Optional[dict] = None,
                        notes: Sequence[str] = ()) -> Path:
    """Write ``config`` as ``model_dir/inference.yml`` (with a commented header: ``notes``, the task writer's
    ``yml_notes``, and the provenance) and check that it reads back identically — a dictionary line such as
    ``yes``, ``null`` or ``:`` must stay a string. ``config`` comes from the task's export writer
    (``workbench.tasks.*_export``)."""
    path = Path(model_dir) / INFERENCE_YML
    body = yaml.dump(config, Dumper=_NoAliasDumper, allow_unicode=True, sort_keys=False, default_flow_style=False,
                     width=120)
    path.write_text(_header(provenance or {}, notes) + body, encoding="utf-8")
    back = read_inference_yml(path)
    if back != config:
        raise ExportError(f"{path}: the YAML does not read back as written (a value changed type or text)")
    return path


def read_inference_yml(path: str | Path) -> dict[str, Any]:
    """Read an ``inference.yml`` (or a model folder holding one) the way PaddleX does; :class:`ExportError`
    naming the file when it is missing or not a mapping."""
    return paddlex_files.read_inference_yml(path, error=ExportError)


def model_name_of(model_dir: str | Path) -> str:
    """``Global.model_name`` of an inference model folder (raises with the file name when absent)."""
    data = read_inference_yml(model_dir)
    name = (data.get("Global") or {}).get("model_name")
    if not name:
        raise ExportError(f"{Path(model_dir) / INFERENCE_YML}: no Global.model_name; PaddleX will refuse this folder")
    return str(name)
