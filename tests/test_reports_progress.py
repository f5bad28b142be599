"""Long loops report progress with an ETA: a bar on a terminal, log lines elsewhere."""

from __future__ import annotations

import logging

from workbench.reports.progress import Progress


def test_log_lines_every_tenth_with_eta(caplog):
    log = logging.getLogger("test.progress")
    caplog.set_level(logging.INFO, logger="test.progress")
    with Progress(50, "evaluate", "batch", log, tty=False) as p:
        for _ in range(50):
            p.update()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10 and lines[-1].startswith("evaluate: 50/50 batch,")
    assert all("ETA" in ln and "batch/s" in ln for ln in lines)


def test_disabled_or_empty_is_silent(caplog):
    caplog.set_level(logging.INFO)
    with Progress(10, "x", log=logging.getLogger("t"), enabled=False, tty=False) as p:
        p.update(10)
    with Progress(0, "y", log=logging.getLogger("t"), tty=False) as p:
        p.update()
    assert caplog.records == []
