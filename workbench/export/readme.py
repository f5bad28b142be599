"""The README written into every export folder: how to run it (exact commands), where it came from, how it
was verified."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

README = "README.md"


FOLDER_VAR = "$FOLDER"


def _cmd(parts: list[str]) -> str:
    """A shell command line; ``$FOLDER/...`` stays expandable (double quotes), everything else is quoted."""
    return " ".join(f'"{p}"' if p.startswith(FOLDER_VAR) else shlex.quote(p) for p in parts)


def write_readme(folder: str | Path, *, name: str, config: dict, modules: dict, report: dict,
                 exported: dict, other_notes: Optional[list[str]] = None) -> Path:
    """``modules``: ``{"det": {"name": ..., "dir": "det" | None}, "rec": {...}}`` as in the pipeline YAML;
    ``exported``: provenance per exported task (``ExportSource.describe()``); ``report``: the verification
    report dict."""
    from workbench.export.pipeline_yaml import PIPELINE_YAML
    from workbench.export.verify import paddleocr_command

    from workbench.export.pipeline_yaml import OPTIONAL_MODULES, PADDLEOCR_PREFIX, enabled_sections, module_dirs

    det, rec = modules["det"], modules["rec"]
    folders = module_dirs(config)
    inside = paddleocr_command(config, yaml_path=PIPELINE_YAML, image="some.jpg")
    outside = paddleocr_command(config, yaml_path=f"{FOLDER_VAR}/{PIPELINE_YAML}", image="some.jpg",
                                model_dirs={s: f"{FOLDER_VAR}/{d}" for s, d in folders.items()})
    dirs = [f'    {PADDLEOCR_PREFIX[s]}_model_dir=str(folder / "{d}"),' for s, d in folders.items()]
    steps_on = [s for s in enabled_sections(config) if s in OPTIONAL_MODULES]
    steps_off = [s for s in OPTIONAL_MODULES if s not in steps_on]
    maxes = report.get("summary", {}).get("max", {})
    lines = [
        f"# {name}: PaddleOCR general OCR pipeline with fine-tuned models",
        "",
        "Written by `wb export` (OCR Workbench). Files:",
        "",
    ]
    from workbench.tasks import registry

    for task, m in modules.items():
        what = registry.get(task).title
        if m["dir"] and task in exported:
            lines.append(f"* `{m['dir']}/` — {what}, fine-tuned: PaddleX inference model `{m['name']}` "
                         "(`inference.json`, `inference.pdiparams`, `inference.yml`)")
        elif m["dir"]:
            lines.append(f"* `{m['dir']}/` — {what}: the model folder given at export (`{m['name']}`), copied")
        else:
            lines.append(f"* {what}: the stock PaddleX model `{m['name']}` (downloaded by PaddleX on first use)")
    lines += [
        f"* `{PIPELINE_YAML}` — the PaddleX OCR pipeline config (PaddleX's own default, with these models and the "
        "detection limits and thresholds"
        + (f"; on: {', '.join(steps_on)}" if steps_on else "") + (f"; off: {', '.join(steps_off)}" if steps_off
                                                                   else "") + ")",
        "* `verification.md` / `verification.json` — the export's proof that PaddleX reproduces the workbench",
        "* `probes/` — the images it was verified on; `export_info.json` — provenance",
        "",
        "## Run it",
        "",
        "From inside this folder (the YAML's model folders are relative to it):",
        "",
        "```bash",
        _cmd(inside),
        "```",
        "",
        "From anywhere else, name the folders too (PaddleX resolves a relative `model_dir` against the working "
        "directory, not against the YAML):",
        "",
        "```bash",
        "FOLDER=/path/to/this/folder",
        _cmd(outside),
        "```",
        "",
        "Keep both `--text_*_model_name` flags: without them `paddleocr` replaces the YAML's models with its "
        "PP-OCRv6 defaults (PaddleOCR #15707).",
        "",
        "Python:",
        "",
        "```python",
        "from pathlib import Path",
        "from paddleocr import PaddleOCR",
        "",
        'folder = Path("path/to/this/folder")',
        "ocr = PaddleOCR(",
        f'    paddlex_config=str(folder / "{PIPELINE_YAML}"),',
        f'    text_detection_model_name="{det["name"]}",',
        f'    text_recognition_model_name="{rec["name"]}",',
        *dirs,
        ")",
        'for res in ocr.predict("some.jpg"):',
        '    print(res["rec_texts"], res["rec_scores"])',
        "```",
        "",
        "or PaddleX directly (`create_pipeline` keeps the YAML's model names):",
        "",
        "```python",
        "import yaml",
        "from pathlib import Path",
        "from paddlex import create_pipeline",
        "",
        'folder = Path("path/to/this/folder")',
        f'config = yaml.safe_load((folder / "{PIPELINE_YAML}").read_text())',
        "",
        "def resolve(section):  # model_dir values are relative to the folder",
        '    for module in section.get("SubModules", {}).values():',
        '        if module.get("model_dir"):',
        '            module["model_dir"] = str(folder / module["model_dir"])',
        '    for sub in section.get("SubPipelines", {}).values():',
        "        resolve(sub)",
        "",
        "resolve(config)",
        "pipeline = create_pipeline(config=config)",
        'for res in pipeline.predict("some.jpg"):',
        '    print(res["rec_texts"])',
        "```",
        "",
        "## Moving or copying this folder",
        "",
        "Nothing in it names the machine it was written on: the YAML's `model_dir` values are relative to the "
        "folder. Run from inside it, or pass the folders as above. To prove a copy behaves as at export time "
        "(same texts and boxes on `probes/`), run `wb export check=<folder>`.",
        "",
        "## CPU",
        "",
    ]
    det_engine = (config["SubModules"]["TextDetection"] or {}).get("engine_config")
    if det_engine:
        lines += [
            "The detection graph upsamples with `nearest_interp`, which Paddle Inference's oneDNN mode (PaddleX's "
            "CPU default) cannot run, so `SubModules.TextDetection.engine_config` sets `run_mode: paddle` for this "
            "module. Using the model on its own: "
            f'`paddlex.create_model("{det["name"]}", model_dir=..., engine_config={det_engine})`.',
            "",
        ]
    else:
        lines += ["No CPU-specific settings were needed.", ""]
    lines += ["## Where it came from", ""]
    for task, info in exported.items():
        lines.append(f"* {task}: " + ", ".join(f"{k} `{v}`" for k, v in info.items() if v is not None))
    for note in other_notes or []:
        lines.append(f"* {note}")
    lines += [
        "",
        "## Verification",
        "",
        f"**{'PASSED' if report.get('passed') else 'FAILED'}** — {report.get('summary', {}).get('checks', 0)} "
        "comparisons of PaddleX (`create_model`, `create_pipeline`, `paddleocr ocr`) against the workbench's own "
        "predictions. Tolerances: " + ", ".join(f"{k}={v}" for k, v in report.get("tolerances", {}).items()) + ".",
        "",
        "| quantity | largest difference |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.3g} |" for k, v in sorted(maxes.items())]
    lines += ["", "Details: `verification.md`.", ""]
    path = Path(folder) / README
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def command_from(folder: str | Path, cwd: str | Path) -> str:
    """The ``paddleocr`` command that runs the export ``folder`` from the directory ``cwd`` (model folders given
    explicitly, relative to ``cwd`` when inside it)."""
    from workbench.export.pipeline_yaml import PIPELINE_YAML, load_pipeline_config
    from workbench.export.verify import paddleocr_command

    folder = Path(folder)
    try:
        rel = folder.resolve().relative_to(Path(cwd).resolve())
    except ValueError:
        rel = folder.resolve()
    from workbench.export.pipeline_yaml import module_dirs

    config = load_pipeline_config(folder / PIPELINE_YAML, resolve_dirs=False)
    return _cmd(paddleocr_command(config, yaml_path=str(rel / PIPELINE_YAML), image="some.jpg",
                                  model_dirs={s: str(rel / d) for s, d in module_dirs(config).items()}))
