"""Fault points: named places where the kill -9 drill (``benchmarks/drill_kill9.py``) stops a real training.

``WB_FAULT=<point>:<n>`` makes the process SIGKILL itself the ``n``-th time it reaches ``<point>`` (1-based), so
a drill hits a phase — mid-step, mid-evaluation, mid-checkpoint-write, mid-MLflow-log — deterministically instead
of by luck of timing. Unset (always, outside the drill) a fault point costs one dictionary lookup.

Points: ``train_step`` (after the backward pass, before the optimizer step), ``eval_batch`` (between evaluation
batches), ``checkpoint_write`` (a checkpoint's first file written, the others not), ``tracking_send`` (the MLflow
sender between two batches of operations, some sent, some not).

``WB_FAULT_TRACE=<file>`` appends the name of every point reached to that file (the drill counts the visits of
an uninterrupted run to draw its kill points, and reads which phase a timed kill interrupted).
"""

from __future__ import annotations

import os
import signal
import threading

_counts: dict[str, int] = {}
_lock = threading.Lock()


def _target() -> tuple[str, int] | None:
    spec = os.environ.get("WB_FAULT")
    if not spec:
        return None
    point, _, n = spec.partition(":")
    return point, int(n or 1)


def fault_point(name: str) -> None:
    """SIGKILL this process when ``WB_FAULT`` names this point and this is its n-th visit."""
    trace = os.environ.get("WB_FAULT_TRACE")
    if trace:
        with _lock, open(trace, "a") as fh:
            fh.write(name + "\n")
    target = _target()
    if target is None or target[0] != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        hit = _counts[name] == target[1]
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)
