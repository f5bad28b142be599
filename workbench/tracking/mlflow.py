"""The MLflow adapter: the only module of the workbench that imports mlflow.

Training must never wait on, or die with, the tracking server. Every call here only puts an operation on a queue;
a background thread sends them (metrics batched with ``log_batch``) and retries while the server is away. What
still cannot be sent when the run ends is written to ``tracking_backlog.jsonl`` in the run directory, so nothing is
lost, and a warning says so.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger("workbench.tracking")

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
RUN_DIR_TAG = "wb.run_dir"

# mlflow's own HTTP client retries for minutes by default; ours retries in the background instead.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def resolve_tracking_uri(uri: Optional[str]) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@dataclass
class _Op:
    kind: str
    payload: Any


class Tracker:
    """One MLflow run, written asynchronously. ``Tracker.disabled()`` gives a tracker that does nothing."""

    def __init__(
        self,
        tracking_uri: Optional[str],
        experiment: str,
        *,
        run_name: Optional[str] = None,
        run_id: Optional[str] = None,
        parent_run_id: Optional[str] = None,
        tags: Optional[dict] = None,
        backlog_dir: Optional[str | Path] = None,
        enabled: bool = True,
        system_metrics: bool = False,
    ):
        self.enabled = enabled
        self.uri = resolve_tracking_uri(tracking_uri)
        self.experiment = experiment
        self.run_id: Optional[str] = None
        self._backlog_dir = Path(backlog_dir) if backlog_dir else None
        self._queue: "queue.Queue[_Op]" = queue.Queue()
        self._pending_metrics: list = []
        self._failed: list[_Op] = []
        self._warned = False
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._system_metrics = None
        if not enabled:
            return
        try:
            self._start_run(run_name, run_id, parent_run_id, tags or {})
        except Exception as exc:  # server down at start: train anyway, keep a backlog
            from workbench.tracking.hints import failure_text

            self._warn(f"{failure_text(exc, self.uri)}; training goes on without tracking")
            self.enabled = False
            return
        self._thread = threading.Thread(target=self._worker, name="mlflow-tracker", daemon=True)
        self._thread.start()
        if system_metrics:
            from workbench.tracking.conventions import SystemMetrics

            self._system_metrics = SystemMetrics(self.run_id, self.uri, resume=bool(run_id))

    @classmethod
    def disabled(cls) -> "Tracker":
        return cls(None, "", enabled=False)

    # --- public API (never raises, never blocks on the network) ---------------------------------------------
    def log_params(self, params: dict) -> None:
        clean = {k: _param_value(v) for k, v in params.items()}
        self._put("params", clean)

    def log_metrics(self, metrics: dict, step: Optional[int] = None) -> None:
        ts = int(time.time() * 1000)
        clean = {k: float(v) for k, v in metrics.items() if _is_number(v)}
        self._put("metrics", (clean, step or 0, ts))

    def set_tags(self, tags: dict) -> None:
        self._put("tags", {k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        self._put("artifact", (str(path), artifact_path))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._put("text", (text, artifact_file))

    def log_dict(self, data: dict, artifact_file: str) -> None:
        self._put("text", (json.dumps(data, indent=1, default=str), artifact_file))

    def log_inputs(self, datasets: list[dict]) -> None:
        """Dataset inputs (``conventions.DatasetInfo.to_dict()`` records)."""
        self._put("inputs", list(datasets))

    def finish(self, status: Optional[str] = "FINISHED", timeout: float = 120.0) -> None:
        """Flush what is queued (up to ``timeout`` s), end the run with ``status`` (None: leave it open), and write
        a backlog of what was not sent."""
        if self.run_id is None:
            return
        if self._system_metrics is not None:
            self._system_metrics.stop()
            self._system_metrics = None
        if status is not None:
            self._put("end", status)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        leftover = self._failed + list(self._drain())
        if leftover and self._backlog_dir is not None:
            self._backlog_dir.mkdir(parents=True, exist_ok=True)
            f = self._backlog_dir / "tracking_backlog.jsonl"
            with f.open("a") as fh:
                for op in leftover:
                    fh.write(json.dumps({"kind": op.kind, "payload": op.payload}, default=str) + "\n")
            self._warn(f"{len(leftover)} tracking operations could not be sent to {self.uri}; saved in {f}")

    # --- internals -------------------------------------------------------------------------------------------
    def _put(self, kind: str, payload: Any) -> None:
        if self.enabled and self.run_id is not None:
            self._queue.put(_Op(kind, payload))

    def _warn(self, msg: str) -> None:
        if not self._warned:
            log.warning(msg)
            self._warned = True

    def _start_run(self, run_name, run_id, parent_run_id, tags) -> None:
        client = _client(self.uri)
        if run_id:
            client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
            return
        from workbench.tracking.conventions import ensure_experiment

        exp_id = ensure_experiment(client, self.experiment)
        tags = dict(tags)
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        if run_name:
            tags["mlflow.runName"] = run_name
        run = client.create_run(exp_id, run_name=run_name, tags=tags)
        self.run_id = run.info.run_id

    def _drain(self):
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return

    def _worker(self) -> None:
        client = _client(self.uri)
        retry: list[_Op] = []
        backoff = 1.0
        while True:
            ops = retry + list(self._drain())
            retry = []
            if not ops:
                if self._stop.is_set():
                    return
                time.sleep(0.2)
                continue
            ended = False
            for i, op in enumerate(ops):
                try:
                    self._send(client, op)
                    backoff = 1.0
                    ended = ended or op.kind == "end"
                except Exception as exc:  # server away: keep the op, try later
                    self._warn(f"MLflow tracking failed ({exc.__class__.__name__}); retrying in the background")
                    retry = ops[i:]
                    if self._stop.is_set() and backoff > 8:
                        self._failed.extend(retry)
                        return
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    break
            if ended and not retry:
                return

    def _send(self, client, op: _Op) -> None:
        from mlflow.entities import Metric, Param, RunTag

        if op.kind == "params":
            items = [Param(k, v) for k, v in op.payload.items()]
            for i in range(0, len(items), 100):
                client.log_batch(self.run_id, params=items[i : i + 100])
        elif op.kind == "metrics":
            metrics, step, ts = op.payload
            client.log_batch(self.run_id, metrics=[Metric(k, v, ts, step) for k, v in metrics.items()])
        elif op.kind == "tags":
            client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in op.payload.items()])
        elif op.kind == "artifact":
            path, artifact_path = op.payload
            if Path(path).is_dir():
                client.log_artifacts(self.run_id, path, artifact_path)
            else:
                client.log_artifact(self.run_id, path, artifact_path)
        elif op.kind == "text":
            text, artifact_file = op.payload
            client.log_text(self.run_id, text, artifact_file)
        elif op.kind == "inputs":
            from workbench.tracking.conventions import dataset_inputs

            client.log_inputs(self.run_id, datasets=dataset_inputs(op.payload))
        elif op.kind == "end":
            client.set_terminated(self.run_id, status=op.payload)


def _is_number(v: Any) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f  # drop NaN


def _param_value(v: Any) -> str:
    s = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return s if len(s) <= 6000 else s[:5997] + "..."


# --- reading runs back (resume, eval, export, compare) --------------------------------------------------------
def get_run(run_id: str, tracking_uri: Optional[str] = None):
    return _client(resolve_tracking_uri(tracking_uri)).get_run(run_id)


def looks_like_run_id(ref: str) -> bool:
    return len(ref) == 32 and all(c in "0123456789abcdef" for c in ref)


def run_dir_of(run_id: str, tracking_uri: Optional[str] = None) -> Optional[Path]:
    """The local run directory recorded on an MLflow run (tag ``wb.run_dir``), if it still exists here."""
    run = get_run(run_id, tracking_uri)
    d = run.data.tags.get(RUN_DIR_TAG)
    return Path(d) if d and Path(d).is_dir() else None


def download_artifacts(run_id: str, artifact_path: str, dst: str | Path, tracking_uri: Optional[str] = None) -> Path:
    from mlflow.artifacts import download_artifacts as _dl

    uri = resolve_tracking_uri(tracking_uri)
    return Path(_dl(run_id=run_id, artifact_path=artifact_path, dst_path=str(dst), tracking_uri=uri))


def run_summary(run_id: str, tracking_uri: Optional[str] = None) -> dict:
    """What ``wb compare`` needs of a run: latest metric values, params, tags, status and name."""
    run = get_run(run_id, tracking_uri)
    return {
        "run_id": run.info.run_id,
        "name": run.info.run_name,
        "status": run.info.status,
        "experiment_id": run.info.experiment_id,
        "metrics": dict(run.data.metrics),
        "params": dict(run.data.params),
        "tags": dict(run.data.tags),
    }


def list_artifacts(run_id: str, path: Optional[str] = None, tracking_uri: Optional[str] = None) -> list[str]:
    """Paths of the artifacts directly under ``path`` of a run (``[]`` when there are none)."""
    client = _client(resolve_tracking_uri(tracking_uri))
    return [a.path for a in client.list_artifacts(run_id, path)]


# --- export bundles (wb export): synchronous, so the caller knows whether they arrived ----------------------------
def create_run(experiment: str, run_name: str, tags: dict, tracking_uri: Optional[str] = None) -> str:
    """A new run in ``experiment`` (created when missing); returns its id."""
    from workbench.tracking.conventions import ensure_experiment

    client = _client(resolve_tracking_uri(tracking_uri))
    exp_id = ensure_experiment(client, experiment)
    run = client.create_run(exp_id, run_name=run_name, tags={"mlflow.runName": run_name, **tags})
    return run.info.run_id


def experiment_of(run_id: str, tracking_uri: Optional[str] = None) -> str:
    """The name of the experiment a run belongs to."""
    client = _client(resolve_tracking_uri(tracking_uri))
    return client.get_experiment(client.get_run(run_id).info.experiment_id).name


def log_run_bundle(run_id: str, *, folder: str | Path, artifact_path: str, params: dict, metrics: dict,
                   tags: dict, tracking_uri: Optional[str] = None, end: bool = True) -> None:
    """Params, metrics, tags and a folder of artifacts on one run, then end it (status FINISHED)."""
    from mlflow.entities import Metric, Param, RunTag

    client = _client(resolve_tracking_uri(tracking_uri))
    ts = int(time.time() * 1000)
    items = [Param(k, _param_value(v)) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])
    client.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items() if _is_number(v)],
                     tags=[RunTag(k, str(v)) for k, v in tags.items()])
    client.log_artifacts(run_id, str(folder), artifact_path)
    if end:
        client.set_terminated(run_id, status="FINISHED")


def set_tags(run_id: str, tags: dict, tracking_uri: Optional[str] = None) -> None:
    from mlflow.entities import RunTag

    _client(resolve_tracking_uri(tracking_uri)).log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def register_model_version(name: str, run_id: str, artifact_path: str, *, description: str = "",
                           tags: Optional[dict] = None, tracking_uri: Optional[str] = None) -> str:
    """Register ``runs:/<run_id>/<artifact_path>`` as a new version of registered model ``name``; returns the
    version number."""
    from mlflow.exceptions import MlflowException

    client = _client(resolve_tracking_uri(tracking_uri))
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    mv = client.create_model_version(name, source=f"runs:/{run_id}/{artifact_path}", run_id=run_id,
                                     description=description or None, tags={k: str(v) for k, v in (tags or {}).items()})
    return str(mv.version)
