"""What a user names as weights, resolved in one place.

``wb train model.pretrained=``, ``wb eval checkpoint=``, ``wb export det= / rec=``, ``wb analyze det= / rec=`` and
``wb compare`` accept the same references; :func:`resolve` says what each one is and what goes with it, as a
:class:`WeightsRef`. The kinds, tried in this order:

==================  ============================================================================================
kind                what it is, and what comes with it
==================  ============================================================================================
``stock``           ``stock`` or a ``stock-*`` shortcut (``stock-v6``, ``stock-v6-small`` ...): the official
                    model the task says it means (``TaskEntry.stock_models``; the caller passes them)
``registered``      ``models:/<name>/<version>`` or ``models:/<name>@<alias>``: a version registered by
                    ``wb export register=`` (``workbench.tracking.registry``); for the module ``task`` asked
                    for: the checkpoint it was exported from (its folder, else its training run's), a stock
                    module's official name; ``run_id`` is the training run
``checkpoint``      a checkpoint directory (``model.pdparams`` + ``state.json``): the weights the run stands
                    for (its EMA average when it kept one, else ``model.pdparams``); or one of its weights files
                    by name (``model.pdparams`` / ``ema.pdparams``): that file. ``meta.json`` gives model name,
                    task, arch; ``dict.txt`` the training dictionary
``pipeline``        an export folder holding ``PaddleOCR.yaml``, or a pipeline YAML file (no weights to load:
                    PaddleX runs it)
``inference model`` a PaddleX inference model folder (no weights to load: PaddleX runs it, ``wb weights import``
                    turns it into weights)
``run dir``         a run directory: its ``checkpoints/<prefer>`` (else the other of best / latest)
``weights file``    any other file (a ``.pdparams``), with the sidecars ``wb weights import`` writes next to it:
                    ``<stem>.import.json`` (model name, what was initialised) and ``<stem>.dict.txt`` (dictionary)
``mlflow run``      an MLflow run id (32 hex digits): its run directory on this machine, else its logged
                    checkpoint
``official``        an official model name (``workbench.models.zoo``): its ``*_pretrained.pdparams``, fetched
                    into the cache
==================  ============================================================================================
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Mapping, Optional

from workbench.errors import WeightsError

log = logging.getLogger("workbench.weights")

STOCK = "stock"
STOCK_VARIANT_PREFIX = "stock-"  # stock-v6, stock-v6-small, ...: which ones a task answers is its registry entry's
REGISTRY_PREFIX = "models:/"


class RefKind(str, Enum):
    STOCK = "stock"
    REGISTERED = "registered model"
    CHECKPOINT = "checkpoint"
    PIPELINE = "pipeline"
    INFERENCE_MODEL = "inference model"
    RUN_DIR = "run dir"
    WEIGHTS_FILE = "weights file"
    RUN_ID = "mlflow run"
    OFFICIAL = "official"

    @property
    def described(self) -> str:
        return _DESCRIBED[self]


_DESCRIBED = {
    RefKind.STOCK: "the stock model", RefKind.REGISTERED: "a registered model", RefKind.CHECKPOINT: "a checkpoint",
    RefKind.PIPELINE: "an exported pipeline", RefKind.INFERENCE_MODEL: "a PaddleX inference model folder",
    RefKind.RUN_DIR: "a run directory", RefKind.WEIGHTS_FILE: "a weights file",
    RefKind.OFFICIAL: "an official model name", RefKind.RUN_ID: "an MLflow run",
}


@dataclass(frozen=True)
class WeightsRef:
    """A resolved reference. ``weights_file`` is what to load (None for folders PaddleX runs); ``checkpoint``
    the workbench checkpoint it belongs to (``workbench.engine.checkpoint.Checkpoint``: meta, config, dict.txt);
    ``model_name`` / ``task`` / ``dictionary`` / ``arch`` what the reference itself says about the model (None /
    empty when it says nothing: a bare ``.pdparams``)."""

    ref: str
    kind: RefKind
    weights_file: Optional[Path] = None
    checkpoint: object = None
    model_name: Optional[str] = None
    task: Optional[str] = None
    dictionary: Optional[Path] = None
    import_record: Optional[dict] = None
    arch: dict = field(default_factory=dict)
    folder: Optional[Path] = None  # the inference model folder / export folder
    run_id: Optional[str] = None  # the MLflow run that trained the weights (an MLflow run, a registered version)

    @property
    def checkpoint_dir(self) -> Optional[Path]:
        return self.checkpoint.path if self.checkpoint is not None else None

    def require_weights(self, what: str) -> Path:
        """``weights_file``, or a :class:`WeightsError` saying why ``what=<ref>`` has none."""
        if self.weights_file is None:
            raise WeightsError(f"{what}={self.ref} is {self.kind.described}, not weights: "
                               + _NOT_WEIGHTS.get(self.kind, ""))
        return self.weights_file

    def require_checkpoint(self, what: str):
        """``checkpoint``, or a :class:`WeightsError` saying why ``what=<ref>`` is not a training checkpoint."""
        if self.checkpoint is None:
            hint = _NOT_A_CHECKPOINT.get(self.kind, "")
            raise WeightsError(f"{what}={self.ref} is {self.kind.described}, not a training checkpoint (a run, "
                               f"run dir or checkpoint dir){': ' + hint if hint else ''}")
        return self.checkpoint


_NOT_WEIGHTS = {
    RefKind.INFERENCE_MODEL: "turn it into training weights with `wb weights import <folder> --out w.pdparams`",
    RefKind.PIPELINE: "an exported pipeline runs in PaddleX; name its module folders, or the runs they came from",
}
_NOT_A_CHECKPOINT = {
    RefKind.WEIGHTS_FILE: "it carries no training record (meta.json) to check; fine-tune from it first "
                          "(model.pretrained=...)",
    RefKind.OFFICIAL: "for a stock module name the model instead (<task>_model_name=)",
    RefKind.STOCK: "for a stock module name the model instead (<task>_model_name=)",
    RefKind.INFERENCE_MODEL: "give it as a model folder (<task>_model_dir=)",
}


# --- what kind of reference ---------------------------------------------------------------------------------------
def classify(ref: str) -> Optional[RefKind]:
    """The kind of ``ref`` from its text and the file system alone (no download, no MLflow call); None when it
    is none of them. ``official`` is decided by the model zoo."""
    from workbench.engine.checkpoint import is_checkpoint_dir, weights_file_of_checkpoint
    from workbench.paddlex_files import is_inference_model_dir, is_pipeline_export
    from workbench.tracking.mlflow import looks_like_run_id

    if ref == STOCK:
        return RefKind.STOCK
    if ref.startswith(REGISTRY_PREFIX):
        return RefKind.REGISTERED
    p = Path(ref).expanduser()
    if ref.startswith(STOCK_VARIANT_PREFIX) and not p.exists():
        return RefKind.STOCK
    if is_checkpoint_dir(p) or weights_file_of_checkpoint(p):
        return RefKind.CHECKPOINT
    if is_pipeline_export(p):
        return RefKind.PIPELINE
    if is_inference_model_dir(p):
        return RefKind.INFERENCE_MODEL
    if p.is_dir():
        return RefKind.RUN_DIR
    if p.is_file():
        return RefKind.WEIGHTS_FILE
    if looks_like_run_id(ref):  # before the zoo: no official name is 32 hex digits, and the zoo imports Paddle
        return RefKind.RUN_ID
    from workbench.models import zoo

    if ref in zoo.list_models():
        return RefKind.OFFICIAL
    return None


# --- resolution ---------------------------------------------------------------------------------------------------
def resolve(ref: str, *, stock: Optional[Mapping[str, str]] = None, prefer: str = "best",
            tracking_uri: Optional[str] = None, fetch: bool = True, what: str = "",
            task: Optional[str] = None) -> WeightsRef:
    """``ref`` → :class:`WeightsRef` (see the module's table). ``stock``: the official name each ``stock``
    shortcut stands for (the task's ``TaskEntry.stock_models``); ``prefer``: which checkpoint of a run (best /
    latest); ``fetch``: download official weights now (else ``weights_file`` stays None); ``what``: the key it was
    given as, for messages (``model.pretrained``); ``task``: the module asked for (a registered version holds
    several)."""
    ref = str(ref)
    kind = classify(ref)
    if kind is RefKind.STOCK:
        if stock is None:
            raise WeightsError(f"{ref!r} needs a task to name its stock model here; give an official model name")
        if ref not in stock:
            raise WeightsError(f"{what + '=' if what else ''}{ref!r} is not a stock shortcut here; choose "
                               f"{', '.join(stock)} or an official model name")
        return _official(stock[ref], fetch, ref=ref, kind=RefKind.STOCK)
    if kind is RefKind.REGISTERED:
        return _registered_model(ref, tracking_uri, task=task, prefer=prefer, fetch=fetch, what=what)
    if kind is RefKind.CHECKPOINT:
        p = Path(ref).expanduser()
        if p.is_dir():
            return _from_checkpoint(ref, p, RefKind.CHECKPOINT)
        return replace(_from_checkpoint(ref, p.parent, RefKind.CHECKPOINT), weights_file=p)  # the file named
    if kind in (RefKind.PIPELINE, RefKind.INFERENCE_MODEL):
        return WeightsRef(ref, kind, folder=Path(ref).expanduser())
    if kind in (RefKind.RUN_DIR, RefKind.RUN_ID):
        from workbench.engine.runs import resolve_checkpoint

        w = _from_checkpoint(ref, resolve_checkpoint(ref, prefer=prefer, tracking_uri=tracking_uri), kind)
        return replace(w, run_id=ref) if kind is RefKind.RUN_ID else w
    if kind is RefKind.WEIGHTS_FILE:
        return _weights_file(ref, Path(ref).expanduser())
    if kind is RefKind.OFFICIAL:
        return _official(ref, fetch)
    from workbench.models import zoo

    with_weights = ", ".join(n for n in zoo.list_models() if zoo.get_spec(n).pretrained_url)
    raise WeightsError(f"{what + '=' if what else ''}{ref!r} is neither an existing path (run dir, checkpoint, weights "
                       f"file, export folder), an MLflow run id, 'stock' nor an official model name ({with_weights})")


def _from_checkpoint(ref: str, path: Path, kind: RefKind) -> WeightsRef:
    from workbench.engine.checkpoint import read_checkpoint

    c = read_checkpoint(path)
    return WeightsRef(ref, kind, weights_file=c.weights_file, checkpoint=c, model_name=c.meta.get("model_name"),
                      task=c.meta.get("task"), dictionary=c.dict_file, arch=dict(c.meta.get("arch") or {}),
                      run_id=c.meta.get("mlflow_run_id"))


def _weights_file(ref: str, path: Path) -> WeightsRef:
    """A weights file and the sidecars ``wb weights import`` wrote next to it."""
    from workbench.models import zoo

    record_file = path.with_name(path.stem + ".import.json")
    record, name, task = None, None, None
    if record_file.is_file():
        try:
            record = json.loads(record_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WeightsError(f"{record_file}: unreadable import record ({exc})") from None
        name = record.get("model_name")
        if name in zoo.MODELS:
            task = zoo.get_spec(name).task
    dictionary = path.with_name(path.stem + ".dict.txt")
    return WeightsRef(ref, RefKind.WEIGHTS_FILE, weights_file=path, model_name=name, task=task,
                      dictionary=dictionary if dictionary.is_file() else None, import_record=record)


def _official(name: str, fetch: bool, *, ref: Optional[str] = None, kind: RefKind = RefKind.OFFICIAL) -> WeightsRef:
    from workbench.models import zoo

    spec = zoo.get_spec(name)
    weights = None
    if fetch:
        from workbench.weights.pretrained import fetch_official_pretrained

        weights = fetch_official_pretrained(name)
    return WeightsRef(ref or name, kind, weights_file=weights, model_name=name, task=spec.task)


def _registered_model(ref: str, tracking_uri: Optional[str], *, task: Optional[str], prefer: str, fetch: bool,
                      what: str) -> WeightsRef:
    """``models:/<name>/<version>`` / ``models:/<name>@<alias>``: a version ``wb export register=`` made (see
    ``workbench.tracking.registry``). For the module ``task`` (None: the one module the version fine-tuned):
    the checkpoint folder it was exported from when it is on this machine, else the same checkpoint (best /
    latest) of its training run (downloaded from MLflow when the run directory is elsewhere); a stock module: its
    official name. ``run_id`` is the training run, ``folder`` stays None (the exported pipeline itself:
    ``workbench.export.registered``)."""
    from workbench.tracking.registry import get_version

    version = get_version(ref, tracking_uri)
    tuned = version.fine_tuned()
    key = f"{what}=" if what else ""
    if task is None:
        if len(tuned) != 1:
            raise WeightsError(f"{key}{ref} holds fine-tuned {' and '.join(tuned) or 'no'} module(s): say which "
                               "module (e.g. wb compare --task, or the det= / rec= key)")
        task = tuned[0]
    if task in tuned:
        checkpoint, run = version.checkpoint(task), version.training_run(task)
        if checkpoint and _is_checkpoint(Path(checkpoint)):
            w = _from_checkpoint(ref, Path(checkpoint), RefKind.REGISTERED)
        elif run:
            from workbench.engine.runs import resolve_checkpoint

            which = Path(checkpoint).name if checkpoint and Path(checkpoint).name in ("best", "latest") else prefer
            w = _from_checkpoint(ref, resolve_checkpoint(run, prefer=which, tracking_uri=tracking_uri),
                                 RefKind.REGISTERED)
        else:
            raise WeightsError(f"{key}{ref}: its {task} module came from {checkpoint}, which is not on this machine, "
                               "and no MLflow run recorded it")
        return replace(w, run_id=run or w.run_id)
    model = version.module_model(task)
    from workbench.models import zoo

    if version.module_kind(task) == "stock" and model in zoo.list_models():
        return replace(_official(model, fetch), ref=ref, kind=RefKind.REGISTERED)
    what_it_is = {"folder": "a model folder copied in at export", "stock": "a stock model"}.get(
        version.module_kind(task) or "", "not one the workbench fine-tuned")
    raise WeightsError(f"{key}{ref}: its {task} module ({model or 'unknown'}) is {what_it_is}, not workbench weights "
                       f"(fine-tuned in it: {', '.join(tuned) or 'none'}); the whole registered pipeline runs with "
                       f"pipeline={ref}")


def _is_checkpoint(path: Path) -> bool:
    from workbench.engine.checkpoint import is_checkpoint_dir

    return is_checkpoint_dir(path)
