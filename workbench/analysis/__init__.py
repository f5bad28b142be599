"""Reports on evaluations: where a model goes wrong, and what changed between two runs.

* ``rec_report.write_rec_report`` / ``det_report.write_det_report`` — module bad-case reports (tables + HTML),
  called by the tasks' ``write_report``;
* ``compare`` — ``wb compare A B`` (runs, run dirs or report dirs);
* ``records`` — the per-sample tables (JSON lines / CSV) and sample keys; ``html`` — the shared page pieces.
"""
