"""Verification: the exported folder, run by the real PaddleX, must behave like the model the workbench trained.

Upstream users learn in production that an exported model behaves differently (#17538, #16080, #17425). Here
the export is run through PaddleX itself and compared, number for number, with the workbench's own predictions
(the training graph, unfused, in dynamic mode, with the workbench's preprocessing and post-processing):

``module`` stage — ``paddlex.create_model`` on each exported folder:
    rec: the run's validation crops; det: the probe images (PaddleX's standalone resize, long side ≤ 960).
``pipeline`` stage — ``paddlex.create_pipeline`` with the exported ``PaddleOCR.yaml`` on the probe images:
    det with the YAML's limits and thresholds, rec on the crops the pipeline cut from its own boxes.
``cli`` stage — ``paddleocr ocr`` in a subprocess, run inside the export folder with the printed model-name
    flags: its texts and boxes must equal the pipeline's.

In every stage the model input PaddleX built, the model output it got (det probability map, rec CTC
probabilities — read by wrapping the predictor's runner) and its decoded result are compared with ours:

=====================  ===========================================  ==============================
quantity               compared                                     pass when
=====================  ===========================================  ==============================
model input            our preprocessing vs PaddleX's tensor        max abs diff ≤ ``input_atol``
det probability map    our model vs the exported graph in PaddleX   max abs diff ≤ max(``det_map_atol``, F·e)
det boxes              our DB post-process vs PaddleX's boxes       same count, vertices ≤ ``box_px``
rec probabilities      our model vs the exported graph in PaddleX   max abs diff ≤ max(``rec_prob_atol``, F·e)
rec text               our CTC decode vs PaddleX's text             identical (or a numerical tie)
scores                 box / text scores                            abs diff ≤ ``score_atol``
=====================  ===========================================  ==============================

``e`` is the float32 noise of the workbench model on that very input: the largest of its float32 error (max abs
difference to a float64 run of it) and its responses to a random one-ulp perturbation of the input and of every
weight (which stand in for the exported graph's own rounding: folded weights, oneDNN's kernels); ``F`` =
``noise_factor`` (4). Two float32 evaluations of one function cannot be expected to agree better than their own
rounding allows, and a barely trained model can amplify rounding a lot (the tiny test models reach e ≈ 2-7e-3 on det
maps). ``e`` depends on the workbench model only, so an export bug cannot widen its own bound. A real export bug
(wrong normalisation, fusion, dictionary) is orders of magnitude larger.

A *numerical tie* is a text difference that comes only from steps where our two most likely classes are closer
than twice the difference between the two graphs' probabilities there (see :func:`_text_agreement`); it is
reported as such. PaddleX against PaddleX (pipeline vs ``paddleocr`` CLI, same settings) must be identical.

Cropping and box sorting are PaddleX's own geometry (not something an export can change); the rec comparison
runs on the crops PaddleX cut, after its boxes were checked equal to ours.

The report (``verification.json`` + ``verification.md`` in the export folder) lists every comparison; any
failure raises :class:`~workbench.errors.ExportError` naming where the two sides differ. The pipeline's
results are kept as ``expected`` so :func:`recheck` can prove a moved or copied folder still gives them.

Where things are: ``report`` (tolerances, checks, the report), ``probes``, ``recording`` (PaddleX's side),
``ours`` (the workbench's side and the comparisons), ``stages`` (files, module, pipeline), ``paddleocr_cli``
(the ``cli`` stage), ``run`` (:func:`verify_export`, :func:`recheck`).
"""

from __future__ import annotations

from workbench.export.verify.paddleocr_cli import local_font, paddleocr_command, run_cli, subprocess_env
from workbench.export.verify.probes import PROBES_DIR, Probes, copy_probes, select_probes, validation_files
from workbench.export.verify.report import REPORT_JSON, REPORT_MD, Check, Report, Tolerances
from workbench.export.verify.run import recheck, verify_export
from workbench.export.verify.stages import compare_with_expected, run_pipeline

__all__ = [
    "PROBES_DIR", "REPORT_JSON", "REPORT_MD", "Check", "Probes", "Report", "Tolerances", "compare_with_expected",
    "copy_probes", "local_font", "paddleocr_command", "recheck", "run_cli", "run_pipeline", "select_probes",
    "subprocess_env", "validation_files", "verify_export",
]
