"""Export: training checkpoints → a PaddleOCR general-OCR-pipeline folder that provably runs in PaddleX.

The flow (driven by ``workbench.commands.export``, ``wb export``):

1. ``inference_model.load_export_source`` — resolve a run / checkpoint and refuse what must not ship (untrained,
   incompletely loaded weights, dictionary ≠ training dictionary or ≠ head size, weights ≠ architecture).
2. ``inference_model.save_inference_model`` — fuse rep-layers, drop training branches, ``paddle.jit.save`` with
   dynamic shapes → ``inference.json`` + ``inference.pdiparams``.
3. ``inference_yml`` — ``inference.yml``: registered ``Global.model_name``, preprocessing, post-processing with the
   training dictionary / DB parameters.
4. ``pipeline_yaml`` — ``PaddleOCR.yaml`` from the installed paddlex's default OCR config, relocatable
   (``model_dir`` relative to the folder), CPU-safe detection engine settings.
5. ``verify`` — PaddleX (``create_model``, ``create_pipeline``, ``paddleocr ocr``) against the workbench's own
   predictions; a failed comparison fails the export. ``verify.recheck`` re-proves a moved copy.
6. ``readme`` — the folder's README with the exact commands.
"""
