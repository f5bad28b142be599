"""The MLflow adapter: the only module of the workbench that imports mlflow.

Training must never wait on, or die with, the tracking server, and no metric may be lost on the way:

* every call only appends the operation to a local journal (``<run dir>/tracking_journal.jsonl``, one JSON line,
  flushed before the call returns) and puts it on a queue; a background thread sends the queue (retrying while the
  server is away) and records in ``tracking_sent.json`` how far it got;
* the server down at start: the run is created on MLflow when the server comes back (the worker keeps trying), and
  everything logged meanwhile follows; still down when training ends: the journal keeps it, and the warning prints
  the command that sends it, ``wb tracking replay <run dir>`` (:func:`replay`);
* a killed process: its resume (``trainer.resume``) re-queues what was journaled but not sent; the steps it trains
  again are not logged twice (a metric key is recorded once per step), so the run's history equals an
  uninterrupted run's. Re-sending a metric already received is harmless: the store ignores an identical row
  (same key, step, value and timestamp, which the journal keeps);
* a run is found again by its ``wb.journal_id`` tag, so a process killed between creating the run and recording
  its id does not create a second one.

Several processes may log to one sqlite store at once: "database is locked" is just another failure the sender
retries.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger("workbench.tracking")

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
RUN_DIR_TAG = "wb.run_dir"
JOURNAL_TAG = "wb.journal_id"
JOURNAL_FILE = "tracking_journal.jsonl"
SENT_FILE = "tracking_sent.json"
RUN_FILE = "mlflow_run.json"

# mlflow's own HTTP client retries for minutes by default; ours retries in the background instead.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def resolve_tracking_uri(uri: Optional[str]) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _absolute_uri(uri: str) -> str:
    """A relative sqlite path made absolute, so a replay from another folder reaches the same store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and ":memory:" not in uri:
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def _client(uri: str):
    """An MlflowClient. For a sqlite store its creation creates / migrates the database: two processes doing that
    at once race (one fails with "table already exists" half-way), so workbench processes take turns on a lock
    file beside the database."""
    from mlflow.tracking import MlflowClient

    prefix = "sqlite:///"
    if not uri.startswith(prefix) or ":memory:" in uri:
        return MlflowClient(tracking_uri=uri)
    try:
        import fcntl
    except ImportError:  # not POSIX
        return MlflowClient(tracking_uri=uri)
    db = Path(uri[len(prefix):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".wb-lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            return MlflowClient(tracking_uri=uri)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class _Op:
    kind: str
    payload: Any
    seq: Optional[int] = None  # position in the journal (None: no journal)


class _Journal:
    """The local, append-only record of a run's tracking operations, and how far the sender got."""

    def __init__(self, folder: Path, *, fresh: bool):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / JOURNAL_FILE
        self.sent_path = self.folder / SENT_FILE
        if fresh and self.path.exists():  # a new run in a used folder: keep the old record aside, unsent or not
            stamp = time.strftime("%Y%m%d-%H%M%S")
            os.replace(self.path, self.folder / f"tracking_journal.{stamp}.jsonl")
            if self.sent_path.exists():
                os.replace(self.sent_path, self.folder / f"tracking_sent.{stamp}.json")
        self.loaded = read_journal(self.path)  # what an earlier process of this run journaled
        self.next_seq = (self.loaded[-1]["seq"] + 1) if self.loaded else 1
        self.sent_seq = _read_json(self.sent_path).get("seq", 0)
        self.start = next((e["payload"] for e in self.loaded if e["kind"] == "start"), None)
        self._fh = None
        self._failed = False

    def append(self, kind: str, payload: Any) -> Optional[int]:
        seq = self.next_seq
        self.next_seq += 1
        line = json.dumps({"seq": seq, "kind": kind, "payload": payload}, default=str)
        try:
            if self._fh is None:
                self._fh = open(self.path, "a", encoding="utf-8")
            self._fh.write(line + "\n")
            self._fh.flush()
        except OSError as exc:  # disk full: the queue still holds the operation; say once that it is not kept
            if not self._failed:
                log.warning("cannot write the tracking journal %s (%s): operations not sent to MLflow may be lost",
                            self.path, exc.strerror or exc)
                self._failed = True
        if kind == "start":
            self.start = payload
        return seq

    def mark_sent(self, seq: int) -> None:
        if seq <= self.sent_seq:
            return
        self.sent_seq = seq
        tmp = self.sent_path.with_name(f".{SENT_FILE}.tmp")
        try:
            tmp.write_text(json.dumps({"seq": seq}))
            os.replace(tmp, self.sent_path)
        except OSError:
            pass  # re-sending is harmless (see module doc)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_journal(path: Path) -> list[dict]:
    """The entries of a journal; a last line cut off by a kill is dropped (and cut from the file, so the next
    append starts on a line of its own)."""
    path = Path(path)
    if not path.is_file():
        return []
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        keep = raw.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(keep)
        raw = raw[:keep]
    out = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


class Tracker:
    """One MLflow run, written asynchronously through a local journal. ``Tracker.disabled()`` does nothing.

    ``backlog_dir``: the run directory holding the journal (None: no journal; what cannot be sent is lost, with a
    warning). ``resume``: continue the journal there (a resumed training) instead of starting a new one.
    ``system_metrics``: MLflow's CPU / memory / GPU monitor on the run (``conventions.SystemMetrics``), from the
    moment the run exists on the server."""

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
        resume: bool = False,
        system_metrics: bool = False,
    ):
        self.enabled = enabled
        self.uri = _absolute_uri(resolve_tracking_uri(tracking_uri))
        self.experiment = experiment
        self.run_id: Optional[str] = None
        self._queue: "queue.Queue[_Op]" = queue.Queue()
        self._journal: Optional[_Journal] = None
        self._seen: set[tuple[str, int]] = set()
        self._unsent = 0
        self._warned = False
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._give_up_at = float("inf")
        self._lock = threading.Lock()
        self._want_system_metrics = system_metrics and enabled
        self._system_metrics = None
        self._finishing = False
        if not enabled:
            return
        start = {"experiment": experiment, "run_name": run_name, "run_id": run_id, "parent_run_id": parent_run_id,
                 "tags": {str(k): str(v) for k, v in (tags or {}).items()}, "journal_id": uuid.uuid4().hex,
                 "start_time": int(time.time() * 1000), "uri": self.uri}
        if backlog_dir is not None:
            self._journal = j = _Journal(Path(backlog_dir), fresh=not resume)
            if j.start is not None:  # resumed: the same run, the (metric, step) pairs it holds, what is unsent
                recorded = _read_json(j.folder / RUN_FILE).get("run_id")
                start = {**j.start, "run_id": run_id or j.start.get("run_id") or recorded}
                for e in j.loaded:
                    if e["kind"] == "metrics":
                        self._seen.update((k, int(e["payload"][1])) for k in e["payload"][0])
                    if e["seq"] > j.sent_seq and e["kind"] != "start":
                        self._queue.put(_Op(e["kind"], e["payload"], e["seq"]))
            else:
                j.append("start", start)
            j.loaded = []
        self._start = start
        try:
            self._ensure_run(_client(self.uri))
        except Exception as exc:  # server down at start: train anyway; the worker creates the run later
            from workbench.tracking.hints import failure_text

            self._warn(f"{failure_text(exc, self.uri)}; training goes on, {self._kept_where()}")
        self._thread = threading.Thread(target=self._worker, name="mlflow-tracker", daemon=True)
        self._thread.start()

    @classmethod
    def disabled(cls) -> "Tracker":
        return cls(None, "", enabled=False)

    # --- public API (never raises, never blocks on the network) ---------------------------------------------
    def log_params(self, params: dict) -> None:
        clean = {k: _param_value(v) for k, v in params.items()}
        self._put("params", clean)

    def log_metrics(self, metrics: dict, step: Optional[int] = None) -> None:
        step = int(step or 0)
        with self._lock:
            clean = {k: float(v) for k, v in metrics.items() if _is_number(v) and (k, step) not in self._seen}
            self._seen.update((k, step) for k in clean)
        if clean:
            self._put("metrics", (clean, step, int(time.time() * 1000)))

    def set_tags(self, tags: dict) -> None:
        self._put("tags", {k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        self._put("artifact", (str(Path(path).resolve()), artifact_path))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._put("text", (text, artifact_file))

    def log_dict(self, data: dict, artifact_file: str) -> None:
        self._put("text", (json.dumps(data, indent=1, default=str), artifact_file))

    def log_inputs(self, datasets: list[dict]) -> None:
        """Dataset inputs (``conventions.DatasetInfo.to_dict()`` records)."""
        self._put("inputs", list(datasets))

    def finish(self, status: Optional[str] = "FINISHED", timeout: float = 120.0, retry_for: float = 15.0) -> None:
        """Flush what is queued (up to ``timeout`` s; a server that does not answer is retried for ``retry_for`` s),
        end the run with ``status`` (None: leave it open). What could not be sent stays in the journal, and a
        warning prints the command that sends it."""
        if not self.enabled:
            return
        with self._lock:  # (the worker may be starting the monitor of a run it created late: it stops it then)
            monitor, self._system_metrics, self._want_system_metrics = self._system_metrics, None, False
            self._finishing = True
        if monitor is not None:
            monitor.stop()
        if status is not None:
            self._put("end", status)
        self._give_up_at = time.monotonic() + retry_for
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        left = self._queue.qsize() + self._unsent
        if self._journal is not None:
            self._journal.close()
        self.enabled = False
        if left:
            if self._journal is not None:
                log.warning("%d tracking operations could not be sent to %s; they are kept in %s. Send them when "
                            "the server is back: wb tracking replay %s", left, self.uri, self._journal.path,
                            self._journal.folder)
            else:
                log.warning("%d tracking operations could not be sent to %s and are lost (no run directory)",
                            left, self.uri)

    @property
    def journal_path(self) -> Optional[Path]:
        return self._journal.path if self._journal is not None else None

    # --- internals -------------------------------------------------------------------------------------------
    def _put(self, kind: str, payload: Any) -> None:
        if not self.enabled:
            return
        seq = self._journal.append(kind, payload) if self._journal is not None else None
        self._queue.put(_Op(kind, payload, seq))

    def _kept_where(self) -> str:
        return (f"metrics are kept in {self._journal.path} and sent when the server is back"
                if self._journal is not None else "metrics are queued in memory until the server is back")

    def _warn(self, msg: str) -> None:
        if not self._warned:
            log.warning(msg)
            self._warned = True

    def _ensure_run(self, client) -> None:
        if self.run_id is None:
            resumed = bool(self._start.get("run_id"))
            self.run_id = ensure_run(client, self._start)
            if self._journal is not None:
                from workbench.files.atomic import write_text_atomic

                write_text_atomic(self._journal.folder / RUN_FILE, json.dumps(
                    {"run_id": self.run_id, "tracking_uri": self.uri,
                     "parent_run_id": self._start.get("parent_run_id")}))
            self._start_system_metrics(resumed)

    def _start_system_metrics(self, resumed: bool) -> None:
        """MLflow's monitor logs straight to the run (not through the journal: a sample lost while the server is
        away is no loss), so it starts once the run exists: here, or in the worker when the run is created late."""
        from workbench.tracking.conventions import SystemMetrics

        with self._lock:
            if not self._want_system_metrics:
                return
            self._want_system_metrics = False  # once
        monitor = SystemMetrics(self.run_id, self.uri, resume=resumed)  # (may talk to the server: not locked)
        with self._lock:
            finished = self._finishing
            if not finished:
                self._system_metrics = monitor
        if finished:  # finish() ran meanwhile: it did not see this monitor
            monitor.stop()

    def _drain(self):
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return

    def _worker(self) -> None:
        from workbench.faults import fault_point

        client = None
        retry: list[_Op] = []
        backoff, failing = 1.0, False
        while True:
            ops = retry + list(self._drain())
            retry = []
            try:
                client = client or _client(self.uri)
                self._ensure_run(client)
                sent_all = True
                for i, op in enumerate(ops):
                    try:
                        send(client, self.run_id, op.kind, op.payload)
                    except Exception as exc:
                        if not is_permanent(exc):
                            retry = ops[i:]
                            raise
                        # refused for good (e.g. a parameter logged again with another value): sending it again
                        # cannot succeed, and it must not hold back what follows
                        log.warning("MLflow refused a %s operation (%s); it is not retried (it stays in %s)",
                                    op.kind, str(exc).splitlines()[0][:300],
                                    self._journal.path if self._journal is not None else "no journal")
                    fault_point("tracking_send")  # the drill kills here: sent, not yet marked as sent
                    if op.seq is not None and self._journal is not None:
                        self._journal.mark_sent(op.seq)
                    if op.kind == "end" and self._queue.empty() and i == len(ops) - 1:
                        return
            except Exception as exc:  # server away: keep the ops, try later
                sent_all = False
                retry = retry or ops
                if not failing:
                    from workbench.tracking.hints import failure_text

                    self._warn(f"{failure_text(exc, self.uri)}; retrying in the background, {self._kept_where()}")
                failing = True
                if self._stop.is_set() and time.monotonic() > self._give_up_at:
                    self._unsent = len(retry)
                    return
                self._stop.wait(backoff) if not self._stop.is_set() else time.sleep(min(backoff, 2.0))
                backoff = min(backoff * 2, 30.0)
                continue
            if failing and sent_all and ops:
                log.info("MLflow at %s is reachable again: the operations kept meanwhile are sent", self.uri)
                failing, self._warned, backoff = False, False, 1.0
            if not ops:
                if self._stop.is_set() and self._queue.empty():  # (checked after stop: nothing put meanwhile)
                    return
                self._stop.wait(0.2)


_PERMANENT = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE", "RESOURCE_DOES_NOT_EXIST"}


def is_permanent(exc: Exception) -> bool:
    """An MLflow refusal that retrying cannot fix (as opposed to a server away, a timeout, a locked database)."""
    code = getattr(exc, "error_code", None)
    return code in _PERMANENT


def ensure_run(client, start: dict, reopen: bool = True) -> str:
    """The MLflow run of a journal's ``start`` entry: the recorded run (set RUNNING again when ``reopen``), the run
    already tagged with its journal id, or a new one. Returns its id."""
    if start.get("run_id"):
        if reopen:
            client.update_run(start["run_id"], status="RUNNING")
        return start["run_id"]
    from workbench.tracking.conventions import ensure_experiment

    exp_id = ensure_experiment(client, start["experiment"])
    jid = start["journal_id"]
    found = client.search_runs([exp_id], filter_string=f"tags.`{JOURNAL_TAG}` = '{jid}'", max_results=1)
    if found:
        return found[0].info.run_id
    tags = {**start.get("tags", {}), JOURNAL_TAG: jid}
    if start.get("parent_run_id"):
        tags["mlflow.parentRunId"] = start["parent_run_id"]
    if start.get("run_name"):
        tags["mlflow.runName"] = start["run_name"]
    run = client.create_run(exp_id, start_time=start.get("start_time"), run_name=start.get("run_name"), tags=tags)
    return run.info.run_id


def send(client, run_id: str, kind: str, payload: Any) -> None:
    """One journaled operation to MLflow."""
    from mlflow.entities import Metric, Param, RunTag

    if kind == "params":
        items = [Param(k, v) for k, v in payload.items()]
        for i in range(0, len(items), 100):
            client.log_batch(run_id, params=items[i : i + 100])
    elif kind == "metrics":
        metrics, step, ts = payload
        client.log_batch(run_id, metrics=[Metric(k, v, ts, step) for k, v in metrics.items()])
    elif kind == "tags":
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in payload.items()])
    elif kind == "artifact":
        path, artifact_path = payload
        if not Path(path).exists():
            log.warning("artifact %s no longer exists; not sent", path)
        elif Path(path).is_dir():
            client.log_artifacts(run_id, path, artifact_path)
        else:
            client.log_artifact(run_id, path, artifact_path)
    elif kind == "text":
        text, artifact_file = payload
        client.log_text(run_id, text, artifact_file)
    elif kind == "inputs":
        from workbench.tracking.conventions import dataset_inputs

        client.log_inputs(run_id, datasets=dataset_inputs(payload))
    elif kind == "end":
        client.set_terminated(run_id, status=payload)


def replay(run_dir: str | Path, tracking_uri: Optional[str] = None) -> dict:
    """Send what ``<run_dir>/tracking_journal.jsonl`` holds and the store has not received (``wb tracking replay``).

    Synchronous; raises on the first failure (run it again later: nothing is recorded twice). ``tracking_uri``:
    send the whole run to another store instead of the one it was logging to. A run whose process never ended it
    (killed, never resumed) is marked KILLED. Run it when the training has ended, not while it still logs.
    Returns ``{"run_id", "uri", "operations", "metric_rows"}``."""
    from workbench.files.atomic import write_text_atomic
    from workbench.errors import WorkbenchError

    run_dir = Path(run_dir)
    path = run_dir / JOURNAL_FILE
    entries = read_journal(path)
    start = next((e["payload"] for e in entries if e["kind"] == "start"), None)
    if start is None:
        raise WorkbenchError(f"{path}: no tracking journal here (was the run logged with tracking on?)")
    same_store = tracking_uri is None or _absolute_uri(tracking_uri) == start["uri"]
    uri = start["uri"] if same_store else _absolute_uri(tracking_uri)
    sent_seq = _read_json(run_dir / SENT_FILE).get("seq", 0) if same_store else 0
    run_start = {**start, "run_id": (start.get("run_id") or _read_json(run_dir / RUN_FILE).get("run_id"))
                 if same_store else None}
    client = _client(uri)
    try:
        run_id = ensure_run(client, run_start, reopen=False)
    except Exception as exc:
        from workbench.tracking.hints import failure_text

        raise WorkbenchError(f"{failure_text(exc, uri)}; nothing was sent: run the command again later") from None
    write_text_atomic(run_dir / RUN_FILE, json.dumps({"run_id": run_id, "tracking_uri": uri,
                                                      "parent_run_id": start.get("parent_run_id")}))
    pending = [e for e in entries if e["seq"] > sent_seq and e["kind"] != "start"]
    rows = 0
    for e in pending:
        try:
            send(client, run_id, e["kind"], e["payload"])
        except Exception as exc:
            if is_permanent(exc):
                log.warning("MLflow refused entry %d (%s): skipped", e["seq"], str(exc).splitlines()[0][:300])
                continue
            raise WorkbenchError(f"sending {path} entry {e['seq']} to {uri} failed ({exc.__class__.__name__}: "
                                 f"{str(exc)[:200]}); run the command again: nothing is recorded twice") from None
        rows += len(e["payload"][0]) if e["kind"] == "metrics" else 0
        if same_store:
            write_text_atomic(run_dir / SENT_FILE, json.dumps({"seq": e["seq"]}))
    if not any(e["kind"] == "end" for e in entries):
        client.set_terminated(run_id, status="KILLED")  # its process never ended it: do not leave it RUNNING
    return {"run_id": run_id, "uri": uri, "operations": len(pending), "metric_rows": rows}


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
