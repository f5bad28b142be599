"""Analysis across modules and runs: where the pipeline goes wrong, and what changed between two evaluations.

* ``run`` + ``pipeline`` + ``attribution`` + ``pipeline_report`` + ``next_training_set`` — ``wb analyze pipeline``:
  the whole OCR pipeline on labeled images, every error attributed to a module, the next training set;
* ``compare`` — ``wb compare A B`` (runs, run dirs or report dirs); ``baseline`` — a training run compared with
  its baseline (``tracking.baseline_run``).

The per-module reports (tables + HTML) and the page pieces are in ``workbench.reports``.
"""
