"""``PaddleOCR.yaml``: PaddleX's own OCR pipeline config with our models, limits and thresholds filled in.

The starting point is the default ``OCR`` pipeline config *of the installed paddlex package*
(``paddlex.inference.load_pipeline_config("OCR")``), not a copy kept here, so the keys always match the PaddleX
that will read the file. What changes:

* ``SubModules.TextDetection`` / ``TextRecognition``: ``model_name`` (the registered PaddleX name, equal to
  ``Global.model_name`` in the model's ``inference.yml``) and ``model_dir``; detection limits and thresholds
  from the training run's evaluation settings (or the export's overrides); recognition ``score_thresh`` and
  ``batch_size``.
* ``model_dir`` paths are **absolute** (``/.../export/my_receipts/det``). PaddleX (``create_pipeline``,
  ``paddleocr --paddlex_config``, ``paddlex --serve``) resolves a relative ``model_dir`` against the working
  directory, not against the YAML, so a relative path works only from inside the folder; an absolute one works
  from anywhere. After the folder is moved or copied, :func:`repoint` (``wb export repoint=<folder>``) rewrites
  them to the folder's new place; :func:`stale_model_dirs` tells that it is needed. A relative ``model_dir`` (an
  export written before) is still read against the YAML's folder by :func:`load_pipeline_config`.
* Document preprocessing (orientation, unwarping) and text-line orientation are switched off unless model
  folders for them are given: the stock models would be downloaded at start-up and change what the fine-tuned
  models see.
* CPU: a detection graph with an interpolation op (PPLCNetV3 + RSEFPN upsample with ``nearest_interp``) fails in
  Paddle Inference's oneDNN mode, which is PaddleX's CPU default ("ConvertPirAttribute2RuntimeAttribute not support
  [pir::ArrayAttribute<pir::DoubleAttribute>]"). The detection module then gets
  ``engine_config: {paddle_static: {run_mode: paddle}}``: plain Paddle kernels for that module only. The form
  keyed by engine name is the one ``paddleocr`` itself passes, so it merges with the CLI's own settings.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from workbench.errors import ExportError
from workbench import paddlex_files

PIPELINE_YAML = paddlex_files.PIPELINE_YAML  # the file an export folder holds

# Paddle Inference ops that crash under oneDNN in Paddle 3.3 (PIR attribute conversion of their scale list).
ONEDNN_UNSAFE_OPS = ("nearest_interp", "bilinear_interp")
PADDLE_RUN_MODE = {"paddle_static": {"run_mode": "paddle"}}


@dataclass
class ModuleRef:
    """One pipeline sub-module: a registered model name and a folder (relative to the export) or None (stock)."""

    model_name: str
    model_dir: Optional[str] = None
    params: dict = field(default_factory=dict)
    engine_config: Optional[dict] = None


def paddlex_default_ocr_config() -> dict:
    """The default ``OCR`` pipeline config shipped with the installed paddlex, as plain dicts."""
    from paddlex.inference import load_pipeline_config

    return _plain(load_pipeline_config("OCR"))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def graph_needs_paddle_run_mode(model_dir: str | Path) -> bool:
    """True when the inference graph in ``model_dir`` holds an op that oneDNN cannot run (see module doc)."""
    model_dir = Path(model_dir)
    for name in ("inference.json", "inference.pdmodel"):
        f = model_dir / name
        if f.is_file():
            data = f.read_bytes()
            return any(op.encode() in data for op in ONEDNN_UNSAFE_OPS)
    raise ExportError(f"{model_dir}: no inference.json / inference.pdmodel")


def build_pipeline_config(
    det: ModuleRef,
    rec: ModuleRef,
    *,
    textline_orientation: Optional[ModuleRef] = None,
    doc_orientation: Optional[ModuleRef] = None,
    doc_unwarping: Optional[ModuleRef] = None,
    base: Optional[dict] = None,
) -> dict:
    """PaddleX's default OCR config (``base``, default: the installed one) with our det and rec modules."""
    return build_pipeline_config_from({"TextDetection": det, "TextRecognition": rec}, base=base,
                                      textline_orientation=textline_orientation, doc_orientation=doc_orientation,
                                      doc_unwarping=doc_unwarping)


def _settings_keys() -> dict[str, tuple[str, ...]]:
    """The settings each ``SubModules`` section takes, as the tasks' export writers write them."""
    from workbench.tasks import registry

    return {e.pipeline_module: e.export_writer.pipeline_keys for e in registry.TASKS.values()}


def build_pipeline_config_from(
    modules: dict[str, ModuleRef],
    *,
    textline_orientation: Optional[ModuleRef] = None,
    doc_orientation: Optional[ModuleRef] = None,
    doc_unwarping: Optional[ModuleRef] = None,
    base: Optional[dict] = None,
) -> dict:
    """PaddleX's default OCR config (``base``, default: the installed one) with ``modules`` (``SubModules``
    section name → module: each registered task's ``pipeline_module``) and the optional extra steps."""
    config = copy.deepcopy(base if base is not None else paddlex_default_ocr_config())
    if config.get("pipeline_name") != "OCR" or "SubModules" not in config:
        raise ExportError("paddlex's default OCR pipeline config has an unexpected layout (no SubModules)")
    subs = config["SubModules"]
    allowed = _settings_keys()
    for key, ref in modules.items():
        if key not in subs:
            raise ExportError(f"paddlex's default OCR pipeline config has no SubModules.{key}")
        unknown = set(ref.params) - set(allowed.get(key, ()))
        if unknown:
            raise ExportError(f"SubModules.{key}: unknown settings {sorted(unknown)}; known: "
                              f"{list(allowed.get(key, ()))}")
        _set_module(subs[key], ref)

    config["use_textline_orientation"] = textline_orientation is not None
    if textline_orientation is not None:
        section = subs.setdefault("TextLineOrientation", {"module_name": "textline_orientation"})
        _set_module(section, textline_orientation)

    use_doc = doc_orientation is not None or doc_unwarping is not None
    config["use_doc_preprocessor"] = use_doc
    doc = config.get("SubPipelines", {}).get("DocPreprocessor")
    if doc is not None:
        doc["use_doc_orientation_classify"] = doc_orientation is not None
        doc["use_doc_unwarping"] = doc_unwarping is not None
        doc_subs = doc.setdefault("SubModules", {})
        if doc_orientation is not None:
            _set_module(doc_subs.setdefault("DocOrientationClassify", {}), doc_orientation)
        if doc_unwarping is not None:
            _set_module(doc_subs.setdefault("DocUnwarping", {}), doc_unwarping)
    elif use_doc:
        raise ExportError("paddlex's default OCR pipeline config has no SubPipelines.DocPreprocessor")
    return config


def _set_module(section: dict, ref: ModuleRef) -> None:
    section["model_name"] = ref.model_name
    section["model_dir"] = ref.model_dir
    section.update(ref.params)
    if ref.engine_config is not None:
        section["engine_config"] = copy.deepcopy(ref.engine_config)
    else:
        section.pop("engine_config", None)


_ENGINE_COMMENT = [
    "# CPU: this detection graph upsamples with nearest_interp, which Paddle Inference's oneDNN mode (PaddleX's CPU",
    "# default) cannot run. run_mode: paddle uses plain Paddle kernels for this module only. On GPU it only rules",
    "# out TensorRT for detection; delete these three lines there if you want TensorRT.",
]


def dump_pipeline_yaml(config: dict, path: str | Path, *, header: list[str]) -> Path:
    """Write ``config`` with a header and a comment above each ``engine_config`` saying why it is there."""
    path = Path(path)
    text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False, default_flow_style=False, width=120)
    out = [f"# {h}" if h else "#" for h in header]
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("engine_config:"):
            indent = line[: len(line) - len(stripped)]
            out += [indent + c for c in _ENGINE_COMMENT]
        out.append(line)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    if load_pipeline_config(path, resolve_dirs=False) != config:
        raise ExportError(f"{path}: the YAML does not read back as written")
    return path


def load_pipeline_config(path: str | Path, *, resolve_dirs: bool = True) -> dict:
    """Read a pipeline YAML as PaddleX does; with ``resolve_dirs`` relative ``model_dir`` values are made
    absolute against the YAML's folder (so the result works from any working directory)."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        config = yaml.load(f, Loader=yaml.SafeLoader)
    if not isinstance(config, dict):
        raise ExportError(f"{path}: not a YAML mapping")
    if resolve_dirs:
        for section in _module_sections(config):
            d = section.get("model_dir")
            if d and not Path(d).is_absolute():
                section["model_dir"] = str((path.parent / d).resolve())
    return config


def _module_sections(config: dict):
    for section in (config.get("SubModules") or {}).values():
        if isinstance(section, dict):
            yield section
    for pipe in (config.get("SubPipelines") or {}).values():
        if isinstance(pipe, dict):
            yield from _module_sections(pipe)


def module_dir_name(section: dict) -> Optional[str]:
    """The name of the export's sub-folder a module section's ``model_dir`` points at (``det``), or None."""
    d = section.get("model_dir")
    return Path(d).name if d else None


def stale_model_dirs(folder: str | Path) -> list[tuple[str, str]]:
    """``(model_dir, where it should point)`` for every module section of ``folder``'s pipeline YAML whose
    ``model_dir`` does not point at this folder's own module folder of that name (the folder was moved or
    copied, or it was written with relative paths); ``[]`` when the YAML is ready to use from anywhere."""
    folder = Path(folder).resolve()
    config = load_pipeline_config(folder / PIPELINE_YAML, resolve_dirs=False)
    out = []
    for section in _module_sections(config):
        name = module_dir_name(section)
        if name and paddlex_files.is_inference_model_dir(folder / name) and section["model_dir"] != str(folder / name):
            out.append((str(section["model_dir"]), str(folder / name)))
    return out


def repoint(folder: str | Path) -> list[tuple[str, str]]:
    """Point every ``model_dir`` of ``folder``'s pipeline YAML at this folder's module folder of the same name
    (absolute paths), after a move or a copy; sections that name a folder this export does not hold are left as
    they are. Rewrites the file only when something changes (comments and layout kept: only the ``model_dir``
    values are replaced, and the result must read back as the intended config). Returns ``(old, new)``."""
    folder = Path(folder).resolve()
    path = folder / PIPELINE_YAML
    if not path.is_file():
        raise ExportError(f"{folder}: no {PIPELINE_YAML} (not a `wb export` folder)")
    changes = stale_model_dirs(folder)
    if not changes:
        return []
    config = load_pipeline_config(path, resolve_dirs=False)
    mapping = dict(changes)
    for section in _module_sections(config):
        if section.get("model_dir") in mapping:
            section["model_dir"] = mapping[section["model_dir"]]
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        if stripped.startswith("model_dir:"):
            value = yaml.safe_load(stripped[len("model_dir:"):] or "null")
            if value in mapping:
                lines[i] = line[: len(line) - len(stripped)] + "model_dir: " + _yaml_scalar(mapping[value])
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if load_pipeline_config(tmp, resolve_dirs=False) != config:
        tmp.unlink()
        raise ExportError(f"{path}: could not rewrite its model_dir values safely; edit them by hand to "
                          + ", ".join(new for _, new in changes))
    tmp.replace(path)
    return changes


def _yaml_scalar(value: str) -> str:
    text = yaml.safe_dump(value, allow_unicode=True, width=10_000).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def module_names(config: dict) -> dict[str, str]:
    """``{"det": name, "rec": name}`` of a pipeline config (what the ``paddleocr`` model-name flags must say)."""
    subs = config["SubModules"]
    return {"det": subs["TextDetection"]["model_name"], "rec": subs["TextRecognition"]["model_name"]}
