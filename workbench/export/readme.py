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


def curl_example(url: str = "http://localhost:8080", image: str = "some.jpg") -> list[str]:
    """A shell pipeline that sends ``image`` to a served pipeline's ``POST /ocr`` and prints the texts. The JSON
    body goes through stdin (``-d @-``): a base64 image passed as one argument would hit the kernel's 128 kB
    limit on a single argument."""
    return [
        f"printf '{{\"file\": \"%s\", \"fileType\": 1, \"visualize\": false}}' \"$(base64 -w0 {image})\" \\",
        f"  | curl -s -X POST {url}/ocr -H 'Content-Type: application/json' -d @- \\",
        "  | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"result\"][\"ocrResults\"][0]"
        "[\"prunedResult\"][\"rec_texts\"])'",
    ]


def write_readme(folder: str | Path, *, name: str, published: str | Path, config: dict, modules: dict,
                 report: dict, exported: dict, other_notes: Optional[list[str]] = None) -> Path:
    """``published``: where the folder is published (the YAML's model folders are absolute paths into it);
    ``modules``: ``{"det": {"name": ..., "dir": "det" | None}, "rec": {...}}`` (the module sub-folders);
    ``exported``: provenance per exported task (``ExportSource.describe()``); ``report``: the verification
    report dict."""
    from workbench.export.pipeline_yaml import OPTIONAL_MODULES, PIPELINE_YAML, enabled_sections
    from workbench.export.verify import paddleocr_command
    from workbench.export.verify.serving import serve_command

    det, rec = modules["det"], modules["rec"]
    yaml_path = f"{published}/{PIPELINE_YAML}"
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
        f"The YAML names the model folders by absolute path (this folder was written at `{published}`), so it works "
        "from any working directory:",
        "",
        "```bash",
        _cmd(paddleocr_command(config, yaml_path=yaml_path, image="some.jpg")),
        "```",
        "",
        "Keep both `--text_*_model_name` flags: without them `paddleocr` replaces the YAML's models with its "
        "PP-OCRv6 defaults (PaddleOCR #15707).",
        "",
        "Python:",
        "",
        "```python",
        "from paddleocr import PaddleOCR",
        "",
        "ocr = PaddleOCR(",
        f'    paddlex_config="{yaml_path}",',
        f'    text_detection_model_name="{det["name"]}",',
        f'    text_recognition_model_name="{rec["name"]}",',
        ")",
        'for res in ocr.predict("some.jpg"):',
        '    print(res["rec_texts"], res["rec_scores"])',
        "```",
        "",
        "or PaddleX directly (`create_pipeline` keeps the YAML's model names):",
        "",
        "```python",
        "from paddlex import create_pipeline",
        "",
        f'pipeline = create_pipeline("{yaml_path}")',
        'for res in pipeline.predict("some.jpg"):',
        '    print(res["rec_texts"])',
        "```",
        "",
        "## Serve it over HTTP",
        "",
        "PaddleX's serving app (`pip install \"paddlex[serving]\"`, or the workbench's `.[serve]` extra):",
        "",
        "```bash",
        _cmd(serve_command(yaml_path, host="0.0.0.0", port=8080, device="cpu")),
        "```",
        "",
        "then, from another shell (`POST /ocr`: the image as base64, `fileType` 1 for an image; the answer's "
        "`result.ocrResults[0].prunedResult` holds `rec_texts`, `rec_scores`, `dt_polys`, ...):",
        "",
        "```bash",
        *curl_example(),
        "```",
        "",
        "`wb export` ran this server on a loopback port and sent it the probe images: its texts and boxes equal "
        "the pipeline's (stage `serve` in `verification.md`). Drop `--device cpu` on a GPU machine.",
        "",
        "## Moving or copying this folder",
        "",
        "The YAML names this folder by its absolute path. After moving or copying it (another machine included), "
        "run `wb export repoint=<new folder>` (rewrites the `model_dir` lines) and `wb export check=<new folder>` "
        "(the pipeline, the CLI and the served pipeline on `probes/` must give the texts and boxes recorded at "
        f"export). Without the workbench, replace `{published}` by the new path in the `model_dir` lines of "
        f"`{PIPELINE_YAML}`, or pass each module's folder (`--text_detection_model_dir`, `--text_recognition_model_dir`, "
        "`--textline_orientation_model_dir`, ...).",
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
        "comparisons of PaddleX (`create_model`, `create_pipeline`, `paddleocr ocr`, `paddlex --serve`) against the "
        "workbench's own "
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
    """The ``paddleocr`` command that runs the export ``folder`` from the directory ``cwd`` (the YAML relative to
    ``cwd`` when inside it; its model folders are absolute)."""
    from workbench.export.pipeline_yaml import PIPELINE_YAML, load_pipeline_config
    from workbench.export.verify import paddleocr_command

    folder = Path(folder)
    try:
        rel = folder.resolve().relative_to(Path(cwd).resolve())
    except ValueError:
        rel = folder.resolve()
    config = load_pipeline_config(folder / PIPELINE_YAML, resolve_dirs=False)
    return _cmd(paddleocr_command(config, yaml_path=str(rel / PIPELINE_YAML), image="some.jpg"))
