"""A run's checkpoints: a run dir, a checkpoint dir or an MLflow run id → a checkpoint dir.

The engine owns the checkpoint layout (``checkpoint.py``) and asks tracking only for what MLflow knows (a run's
recorded directory, its logged artifacts). ``trainer.resume`` is answered here; every other reference to weights
(official names, ``.pdparams`` files, export folders, ...) by ``workbench.weights.refs``, which uses this too."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

from workbench.engine.checkpoint import find_checkpoint, is_checkpoint_dir
from workbench.errors import WorkbenchError
from workbench.tracking.mlflow import download_artifacts, looks_like_run_id, run_dir_of


def resolve_checkpoint(ref: str, prefer: str = "best", tracking_uri: Optional[str] = None) -> Path:
    """``ref`` → a checkpoint directory.

    * a checkpoint dir, or a run dir holding ``checkpoints/<prefer>`` (falls back to the other of best/latest);
    * an MLflow run id: its recorded run dir if it exists on this machine, else the run's logged checkpoint
      artifact is downloaded.
    """
    p = Path(ref)
    if p.exists():
        if is_checkpoint_dir(p):
            return p
        for name in (prefer, "latest" if prefer == "best" else "best"):
            try:
                return find_checkpoint(p, prefer=name)
            except WorkbenchError:
                continue
        raise WorkbenchError(f"{ref}: no checkpoints/{prefer} (nor the other of best/latest) in this directory")
    if looks_like_run_id(ref):
        from workbench.tracking.hints import mlflow_call
        from workbench.tracking.mlflow import resolve_tracking_uri

        with mlflow_call(resolve_tracking_uri(tracking_uri), f"MLflow run {ref}"):
            run_dir = run_dir_of(ref, tracking_uri)
        if run_dir is not None:
            return resolve_checkpoint(str(run_dir), prefer, tracking_uri)
        for name in (prefer, "latest" if prefer == "best" else "best"):
            try:
                dst = Path(tempfile.mkdtemp(prefix=f"wb-{ref[:8]}-"))
                path = download_artifacts(ref, f"checkpoints/{name}", dst, tracking_uri)
                if is_checkpoint_dir(path):
                    return path
            except Exception:
                continue
        raise WorkbenchError(f"MLflow run {ref}: no local run dir and no checkpoints/{prefer} artifact")
    raise WorkbenchError(f"{ref!r} is neither an existing path nor an MLflow run id")


def resume_run_dir(ref: Optional[str], tracking_uri: Optional[str] = None) -> Optional[Path]:
    """The directory of the run ``trainer.resume=<ref>`` continues, when it is on this machine: a resumed run
    keeps writing its checkpoints, tracking journal, ``metrics.json`` and report there, so it ends with the same
    outputs as a run that never stopped. None: no ``ref``, or only a downloaded checkpoint."""
    if not ref:
        return None
    path = Path(ref)
    if path.is_dir() and not is_checkpoint_dir(path):
        return path  # a run dir
    try:
        ckpt = resolve_checkpoint(ref, prefer="latest", tracking_uri=tracking_uri)
    except WorkbenchError:
        return None
    if ckpt.parent.name == "checkpoints":  # <run>/checkpoints/<latest | best | step-...>
        return ckpt.parent.parent
    return None
