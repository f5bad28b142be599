"""Reports for people: self-contained HTML pages (``html``), per-sample record files (``records``) and each task's
evaluation report (``rec_report``, ``det_report``; a task's ``Task.write_report`` names its own). Rendering only:
nothing here trains, loads or tracks."""
