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
* Document preprocessing (orientation, unwarping) and text-line orientation are switched off unless the export
  names their models (``textline_ori=`` / ``doc_ori=`` runs, ``*_model_dir=`` / ``*_model_name=``): the stock
  models would be downloaded at start-up and change what the fine-tuned models see. Their sections and the flags
  that switch them on are PaddleX's (:data:`OPTIONAL_MODULES`); document orientation lives in the
  ``DocPreprocessor`` sub-pipeline.
* CPU: a detection graph with an interpolation op (``nearest_interp``, as upstream's FPN necks upsample) fails in
  Paddle Inference's oneDNN mode, which is PaddleX's CPU default ("ConvertPirAttribute2RuntimeAttribute not support
  [pir::ArrayAttribute<pir::DoubleAttribute>]"). wb's own det graphs upsample without one
  (``models.ops.upsample_nearest``) and run under oneDNN; a copied model folder (or an export written before) that
  holds one gets ``engine_config: {paddle_static: {run_mode: paddle}}``: plain Paddle kernels for that module only.
  The form keyed by engine name is the one ``paddleocr`` itself passes, so it merges with the CLI's own settings.
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


#: PaddleX's optional OCR steps: their section and the flags (dotted paths from the top) that switch them on.
#: ``use_doc_preprocessor`` is on when either document step is.
OPTIONAL_MODULES: dict[str, tuple[str, ...]] = {
    "TextLineOrientation": ("use_textline_orientation",),
    "DocOrientationClassify": ("use_doc_preprocessor", "SubPipelines.DocPreprocessor.use_doc_orientation_classify"),
    "DocUnwarping": ("use_doc_preprocessor", "SubPipelines.DocPreprocessor.use_doc_unwarping"),
}
#: each section's name in paddleocr's flags and keyword arguments (``--<prefix>_model_dir``)
PADDLEOCR_PREFIX: dict[str, str] = {
    "TextDetection": "text_detection", "TextRecognition": "text_recognition",
    "TextLineOrientation": "textline_orientation", "DocOrientationClassify": "doc_orientation_classify",
    "DocUnwarping": "doc_unwarping",
}


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
    modules = {"TextDetection": det, "TextRecognition": rec, "TextLineOrientation": textline_orientation,
               "DocOrientationClassify": doc_orientation, "DocUnwarping": doc_unwarping}
    return build_pipeline_config_from({k: v for k, v in modules.items() if v is not None}, base=base)


def _settings_keys() -> dict[str, tuple[str, ...]]:
    """The settings each module section takes, as the tasks' export writers write them."""
    from workbench.tasks import registry

    return {e.pipeline_module: e.export_writer.pipeline_keys for e in registry.TASKS.values()}


def module_section(config: dict, name: str) -> dict:
    """The section ``name`` of a pipeline config: under ``SubModules``, or under a sub-pipeline's (document
    orientation sits in ``SubPipelines.DocPreprocessor.SubModules``)."""
    section = _find_section(config, name)
    if section is None:
        raise ExportError(f"paddlex's OCR pipeline config has no {name} section (SubModules or a sub-pipeline's)")
    return section


def _find_section(config: dict, name: str) -> Optional[dict]:
    subs = config.get("SubModules") or {}
    if isinstance(subs.get(name), dict):
        return subs[name]
    for pipe in (config.get("SubPipelines") or {}).values():
        if isinstance(pipe, dict):
            found = _find_section(pipe, name)
            if found is not None:
                return found
    return None


def _set_flag(config: dict, path: str, value: bool) -> None:
    *parents, key = path.split(".")
    node = config
    for p in parents:
        node = node.get(p)
        if not isinstance(node, dict):
            raise ExportError(f"paddlex's OCR pipeline config has no {'.'.join(parents)} for {path}")
    node[key] = value


def build_pipeline_config_from(modules: dict[str, ModuleRef], *, base: Optional[dict] = None) -> dict:
    """PaddleX's default OCR config (``base``, default: the installed one) with ``modules`` (section name →
    module: each registered task's ``pipeline_module``, plus e.g. ``DocUnwarping``). The optional steps
    (:data:`OPTIONAL_MODULES`) are on exactly when their section is among ``modules``."""
    config = copy.deepcopy(base if base is not None else paddlex_default_ocr_config())
    if config.get("pipeline_name") != "OCR" or "SubModules" not in config:
        raise ExportError("paddlex's default OCR pipeline config has an unexpected layout (no SubModules)")
    allowed = _settings_keys()
    for key, ref in modules.items():
        unknown = set(ref.params) - set(allowed.get(key, ()))
        if unknown:
            raise ExportError(f"{key}: unknown settings {sorted(unknown)}; known: {list(allowed.get(key, ()))}")
        _set_module(module_section(config, key), ref)
    on = {flag for key in modules for flag in OPTIONAL_MODULES.get(key, ())}
    for flag in sorted({f for flags in OPTIONAL_MODULES.values() for f in flags}):
        try:
            _set_flag(config, flag, flag in on)
        except ExportError:
            if flag in on:  # a step asked for whose sub-pipeline this PaddleX lacks; an absent one stays absent
                raise
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


def module_dirs(config: dict) -> dict[str, str]:
    """``{section: model_dir}`` of every module section with a folder (relative as written)."""
    out = {}
    for name in PADDLEOCR_PREFIX:
        section = _find_section(config, name)
        if section is not None and section.get("model_dir"):
            out[name] = section["model_dir"]
    return out


def enabled_sections(config: dict) -> list[str]:
    """The module sections the pipeline runs: detection, recognition and the optional steps switched on."""
    def flag(path: str) -> bool:
        node = config
        for p in path.split("."):
            node = node.get(p) if isinstance(node, dict) else None
        return bool(node)

    optional = [name for name, flags in OPTIONAL_MODULES.items() if all(flag(f) for f in flags)]
    return ["TextDetection", "TextRecognition", *optional]


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
