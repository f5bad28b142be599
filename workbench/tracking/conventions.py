"""How workbench runs look in MLflow, so that the UI shows what an ML engineer expects to find there.

* **Experiment kind.** MLflow 3's UI opens an experiment without the ``mlflow.experimentKind`` tag in its GenAI
  view (traces, evaluations); the value ``custom_model_development`` ("Machine learning" in the UI's experiment
  type selector) makes it open on runs and charts. Experiments are created with it, and an existing experiment
  without the tag gets it (one that has a kind keeps it: someone chose it).
* **Run names** a person can scan: ``rec PP-OCRv5_mobile_rec receipts lr2e-4`` — task, model, data and the
  command-line overrides (:func:`run_name`); ``tracking.run_name`` wins.
* **Datasets** as MLflow dataset inputs (:class:`DatasetInfo`: name, label files, digest, sample count), so two
  runs on different data are told apart in the runs table.
* **System metrics** (CPU, memory, disk, network; GPU with ``nvidia-ml-py``) sampled by MLflow's own monitor,
  which needs ``psutil``.
* **The baseline link**: a run fine-tuned against ``tracking.baseline_run`` carries the tag ``wb.baseline_run``
  and a description (``mlflow.note.content``, shown on the run page) linking the baseline run.

Nothing here imports mlflow at module level; the functions that talk to MLflow take a client or a URI.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

log = logging.getLogger("workbench.tracking")

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"  # the UI's "Machine learning" experiment type
# MLflow 3.17's UI keeps a GenAI / Model training switch of its own (browser storage, GenAI at first) and shows the
# GenAI pages even for a model-training experiment when a link lands on it directly (seen in headless Chromium):
# links wb writes carry the view.
ML_VIEW = "?workflowType=machine_learning"
NOTE_TAG = "mlflow.note.content"  # a run's description (markdown) on its page
BASELINE_TAG = "wb.baseline_run"
DATASET_CONTEXT_TAG = "mlflow.data.context"  # train / validation / eval, shown next to the dataset in the UI


# --- experiments --------------------------------------------------------------------------------------------------
def ensure_experiment(client, name: str) -> str:
    """The id of experiment ``name``, created as a model-training experiment when missing; an existing one
    without a kind is marked as one."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        from mlflow.exceptions import MlflowException

        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
        except MlflowException:  # created meanwhile by another process (a parallel sweep trial)
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if EXPERIMENT_KIND_TAG not in (exp.tags or {}):
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    return exp.experiment_id


# --- run names ----------------------------------------------------------------------------------------------------
# Overrides that the name shows elsewhere (task, model, data) or that say nothing about the run's settings.
_NOT_IN_NAME = ("recipe", "task", "model", "model.name", "data.train", "data.val", "data.root", "checkpoint",
                "trainer.output_dir", "trainer.resume", "data.check", "seed")
_NOT_IN_NAME_PREFIXES = ("tracking.", "hydra.", "hydra/", "trainer.master", "trainer.node_rank")
_GENERIC_STEMS = {"train", "val", "valid", "validation", "test", "eval", "labels", "label", "gt", "list", "det",
                  "rec", "data", "dataset", "images", "crops"}
MAX_RUN_NAME = 120


def data_name(files: Sequence[str | Path], *, demo: bool = False) -> str:
    """A short name for the data in label files: ``/data/receipts/train.txt`` → ``receipts``, ``shop_train.txt`` →
    ``shop``; several files → their names joined with ``+``; the built-in demo set → ``demo``."""
    if demo:
        return "demo"
    names: list[str] = []
    for f in files:
        p = Path(f)
        words = [w for w in re.split(r"[_\-.\s]+", p.stem) if w and w.lower() not in _GENERIC_STEMS]
        name = "_".join(words) if words else (p.parent.name or p.stem)
        if name not in names:
            names.append(name)
    return "+".join(names) or "?"


def _override_label(item: str) -> Optional[str]:
    key, _, value = item.partition("=")
    key = key.lstrip("+~").strip()
    if key in _NOT_IN_NAME or key.startswith(_NOT_IN_NAME_PREFIXES) or not value:
        return None
    short = key.rsplit(".", 1)[-1]
    value = value.strip().strip("'\"")
    if "/" in value or "\\" in value:  # a path: its file or folder name says enough
        value = Path(value).stem or Path(value).name
    if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value):
        return f"{short}{value}"  # lr2e-4, epochs20
    return f"{short}={value}"


def run_name(task: str, model: str, data: str, overrides: Sequence[str] = (), *, kind: str = "",
             weights: str = "") -> str:
    """``[kind] task model [weights] data overrides...``: e.g. ``rec PP-OCRv5_mobile_rec receipts lr2e-4`` or
    ``eval rec PP-OCRv5_mobile_rec stock receipts``. ``overrides``: Hydra command-line overrides; the ones the name
    already shows, and paths, are left out."""
    parts = [p for p in (kind, task, model, weights, data) if p]
    parts += [label for label in map(_override_label, overrides) if label]
    name = " ".join(parts)
    return name if len(name) <= MAX_RUN_NAME else name[: MAX_RUN_NAME - 1] + "…"


def weights_label(ref: Optional[str]) -> str:
    """What a run's name says about the weights it evaluates: ``stock``, an official name, a run dir's name, a
    run id's first 8 digits, a file's stem."""
    if not ref:
        return ""
    ref = str(ref)
    if ref.startswith("models:/"):
        return ref[len("models:/"):]
    if "/" in ref or "\\" in ref or ref.endswith(".pdparams"):
        p = Path(ref)
        if p.name in ("best", "latest") and p.parent.name == "checkpoints":
            p = p.parent.parent
        return p.stem or p.name
    if len(ref) == 32 and all(c in "0123456789abcdef" for c in ref):
        return ref[:8]
    return ref


# --- datasets -----------------------------------------------------------------------------------------------------
@dataclass
class DatasetInfo:
    """One split a run trained or evaluated on, as an MLflow dataset input: ``context`` train / validation /
    eval; ``files`` the label files; ``digest`` what the data's order and content hash to (the dataset's
    fingerprint); ``samples`` how many samples were kept."""

    name: str
    context: str
    files: list[str]
    digest: str
    samples: int
    extra: dict = field(default_factory=dict)  # e.g. skipped lines, sampling ratios

    def to_dict(self) -> dict:
        return asdict(self)


def dataset_inputs(infos: Sequence[dict]) -> list:
    """``DatasetInfo.to_dict()`` records → MLflow ``DatasetInput`` entities (source type ``local``, source
    ``{"uri": first label file, "files": [...]}``, profile ``{"num_samples": n, ...}``)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    out = []
    for d in infos:
        files = [str(Path(f).resolve()) if Path(f).exists() else str(f) for f in d["files"]]
        source = {"uri": files[0] if files else ""}
        if len(files) > 1:
            source["files"] = files
        profile = {"num_samples": int(d["samples"]), **(d.get("extra") or {})}
        out.append(DatasetInput(
            Dataset(name=d["name"], digest=str(d["digest"])[:36], source_type="local", source=json.dumps(source),
                    profile=json.dumps(profile, default=str)),
            tags=[InputTag(DATASET_CONTEXT_TAG, d["context"])]))
    return out


# --- system metrics -------------------------------------------------------------------------------------------
class SystemMetrics:
    """MLflow's system-metrics monitor for one run (``system/cpu_utilization_percentage``,
    ``system/system_memory_usage_megabytes``, ...). Sampling every ``$MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL``
    seconds (default 10). Never raises; stopping never waits more than ``timeout`` seconds for the server."""

    def __init__(self, run_id: str, tracking_uri: str, *, resume: bool = False):
        self.monitor = None
        try:
            import psutil  # noqa: F401 - MLflow's CPU monitor needs it; say so here rather than in a thread
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self.monitor = SystemMetricsMonitor(run_id, resume_logging=resume, tracking_uri=tracking_uri)
            self.monitor.start()
        except Exception as exc:  # noqa: BLE001 - system metrics are a nicety: training goes on without them
            log.warning("system metrics are off (%s: %s); `pip install psutil` turns them on",
                        type(exc).__name__, exc)
            self.monitor = None

    def stop(self, timeout: float = 15.0) -> None:
        if self.monitor is None:
            return
        stopper = threading.Thread(target=self.monitor.finish, name="mlflow-system-metrics-stop", daemon=True)
        stopper.start()
        stopper.join(timeout)
        self.monitor = None


# --- the baseline link ----------------------------------------------------------------------------------------
def baseline_tags(ref: str, tracking_uri: str, experiment: str) -> dict:
    """Tags that link a run to its baseline ``ref`` (a run id, or a run dir holding ``mlflow_run.json``): the
    baseline's run id and a description with a link to it. A baseline in another experiment is a warning (the
    UI compares runs of one experiment)."""
    run_id = ref
    marker = Path(ref) / "mlflow_run.json"
    if marker.is_file():
        try:
            run_id = json.loads(marker.read_text()).get("run_id") or ref
        except (OSError, ValueError):
            pass
    tags = {BASELINE_TAG: run_id}
    if not (len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id)):
        return tags
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        base = client.get_run(run_id)
        base_exp = client.get_experiment(base.info.experiment_id)
    except Exception as exc:  # noqa: BLE001 - the comparison at the end says what is wrong with the baseline
        log.warning("baseline run %s: %s: %s", run_id, type(exc).__name__, str(exc).splitlines()[0][:200])
        return tags
    if base_exp.name != experiment:
        log.warning("baseline run %s is in experiment %r, this run goes to %r: set tracking.experiment=%s to see "
                    "both in one chart", run_id, base_exp.name, experiment, base_exp.name)
    name = base.info.run_name or run_id[:8]
    link = f"#/experiments/{base.info.experiment_id}/runs/{run_id}{ML_VIEW}"
    tags[NOTE_TAG] = (f"Fine-tuned against the baseline run [{name}]({link}) (`{run_id}`): its metrics are logged "
                      "here as `baseline/*`, the differences as `vs_baseline/*`, and the per-sample comparison "
                      "is in the artifacts under `compare_baseline/`.")
    return tags
