"""`wb export`: trained checkpoints → a verified PaddleOCR general-OCR-pipeline folder.

    wb export det=<run id | run dir | checkpoint> rec=<run id | run dir | checkpoint> out=export/my_receipts
    wb export det=runs/det/... rec_model_dir=path/to/a/rec/inference/model        # one module fine-tuned
    wb export rec=runs/rec/... det_model_name=PP-OCRv5_mobile_det                    # stock det (downloaded)
    wb export det=... rec=... textline_ori=runs/textline_ori/... doc_ori=runs/doc_ori/...   # orientation modules on
    wb export det=... rec=... textline_ori_model_name=PP-LCNet_x1_0_textline_ori        # a stock one (downloaded)
    wb export det=... rec=... box_thresh=0.5 probe_images=[a.jpg,b.jpg] register=receipts-ocr
    wb export check=export/my_receipts                                               # re-verify a moved copy

Writes ``<out>/<module>/inference.{json,pdiparams,yml}`` (det, rec; textline_ori / doc_ori when given: the
orientation modules are switched on only then), ``<out>/PaddleOCR.yaml``, a README with the exact
commands, ``verification.{json,md}`` and ``probes/``. Every export is verified in the real PaddleX before it
is published at ``out``: a failed verification leaves the folder at ``<out>.FAILED`` with the report and exits
non-zero. Arguments are ``key=value`` (OmegaConf dotlist, typed by ``workbench.export.config.ExportConfig``; a
typo is an error). The work is ``workbench.export.run.run_export``; this module parses and prints.
"""

from __future__ import annotations

from pathlib import Path


def main(argv: list[str]) -> int:
    from workbench.export.config import ExportConfig, parse_args

    if any(a in ("-h", "--help", "help") for a in argv):
        from omegaconf import OmegaConf

        print(__doc__)
        print("keys and defaults:\n" + OmegaConf.to_yaml(OmegaConf.structured(ExportConfig)))
        return 0
    cfg = parse_args(argv)
    if cfg.check:
        from workbench.export.verify import recheck

        report = recheck(cfg.check, device=cfg.device, cli=cfg.cli)
        print(report.to_markdown())
        report.raise_if_failed()
        print(f"{cfg.check}: behaves as at export time")
        return 0
    from workbench.export.readme import command_from
    from workbench.export.run import run_export

    result = run_export(cfg)
    maxes = result.report["summary"]["max"]
    print(f"\nexport verified and written to {result.folder} in {result.seconds:.1f} s "
          f"({result.report['summary']['checks']} checks passed):")
    for k, v in sorted(maxes.items()):
        print(f"  {k:<55} {v:.3g}")
    if result.tracking.get("run_id"):
        print(f"MLflow: run {result.tracking['run_id']} ({result.tracking['tracking_uri']})"
              + (f", model {result.tracking['registered_model']} version {result.tracking['version']}"
                 if result.tracking.get("version") else ""))
    print("\nrun it:\n  " + command_from(result.folder, Path.cwd()))
    print(f"(inside {result.folder} the short form works: see {result.folder / 'README.md'})")
    return 0
