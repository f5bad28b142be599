"""From a training checkpoint to a PaddleX 3.x inference model (``inference.json`` + ``inference.pdiparams``).

Upstream's exporter "succeeds" with random weights when the checkpoint path is wrong (#5225, #7521) and skips a
head whose shape no longer matches the dictionary with only a warning (#10666). Here every way a checkpoint can
be unfit for deployment is an :class:`~workbench.errors.ExportError` naming the file and the reason:

* not a workbench checkpoint, or a checkpoint of the other task;
* never trained (``trained_steps`` / ``global_step`` is 0);
* its starting weights did not load completely (``meta.json: weights_complete`` is false);
* rec: no dictionary, a dictionary whose sha256 is not the one the run trained with, a dictionary whose size does
  not fit the CTC head, or a model trained without the space class (PaddleX's decoder always appends one);
* weights that do not fit the architecture exactly (missing, unexpected or differently shaped tensors).

Export itself: the model is rebuilt from ``meta.json`` (zoo name + arch overrides), loaded strictly, PPLCNetV3
rep-layers are fused and the training-only branches dropped (DB threshold branch, NRTR), and the eval forward
is saved with ``paddle.jit.save`` with dynamic shapes: det ``x [None, 3, -1, -1]``, rec ``x [None, 3, 48, -1]``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from workbench.engine.checkpoint import Checkpoint
from workbench.errors import ExportError, WorkbenchError
from workbench.paddlex_files import MODEL_FILE_PREFIX  # inference.json / .pdiparams / .yml

log = logging.getLogger("workbench.export")


__all__ = ["ExportSource", "load_export_source", "build_model", "save_inference_model", "MODEL_FILE_PREFIX"]


@dataclass
class ExportSource:
    """A checkpoint that passed every check, with what the export needs to know about it."""

    task: str  # a registered task name (workbench.tasks.registry)
    checkpoint: Checkpoint
    model_name: str  # the workbench zoo name (e.g. rec_tiny, PP-OCRv5_mobile_rec)
    paddlex_name: str  # Global.model_name in inference.yml: a name PaddleX has registered
    arch: dict
    state_dict: dict  # the weights to export (EMA weights when the run evaluated with them)
    weights_file: str  # which file they came from (model.pdparams / ema.pdparams)
    charset: object = None  # rec: workbench.data.charset.Charset of the training dictionary
    image_shape: tuple = (3, 48, 320)  # rec input (C, H, W)

    @property
    def path(self) -> Path:
        return self.checkpoint.path

    @property
    def writer(self):
        """The task's :class:`~workbench.tasks.export_writer.ExportWriter`."""
        from workbench.tasks import registry

        return registry.get(self.task).export_writer

    def describe(self) -> dict:
        """Provenance written into inference.yml, the README and the verification report."""
        c = self.checkpoint
        info = {
            "checkpoint": str(c.path.resolve()),
            "model": self.model_name,
            "paddlex_name": self.paddlex_name,
            "weights": self.weights_file,
            "trained_steps": int(c.meta.get("trained_steps", c.state.global_step)),
            "select_metric": c.meta.get("select_metric"),
            "metric_value": c.meta.get("metric_value"),
            "mlflow_run_id": c.meta.get("mlflow_run_id"),
        }
        if self.charset is not None:
            info["dictionary_sha256"] = self.charset.sha256
            info["dictionary_size"] = len(self.charset)
        return info


# ----------------------------------------------------------------------------------------------- loading + checks


def load_export_source(
    ref: str | Path,
    task: str,
    *,
    prefer: str = "best",
    weights: Literal["auto", "model", "ema"] = "auto",
    dictionary: Optional[str | Path] = None,
    tracking_uri: Optional[str] = None,
) -> ExportSource:
    """Resolve ``ref`` (run id / run dir / checkpoint dir: ``workbench.weights.refs``) and check that it is fit
    for export.

    ``weights="auto"`` takes the EMA weights when the checkpoint has them (training evaluated, and chose ``best``,
    with them), else the raw weights. ``dictionary`` (rec) is only needed for a checkpoint without ``dict.txt``;
    when both exist they must be the same dictionary.
    """
    from workbench.tasks import registry
    from workbench.weights import refs

    try:
        ckpt = refs.resolve(str(ref), stock=registry.get(task).stock_models, prefer=prefer, tracking_uri=tracking_uri,
                            fetch=False, task=task).require_checkpoint(task)
    except WorkbenchError as exc:
        raise ExportError(f"{task}={ref}: {exc}") from None
    path = ckpt.path
    where = f"{task}={ref} ({path})"
    meta = ckpt.meta

    if not meta:
        raise ExportError(f"{where}: meta.json is missing; cannot tell which model or dictionary it holds")
    if meta.get("task") != task:
        raise ExportError(f"{where}: meta.json says task={meta.get('task')!r}, but it was given as the {task} model")
    trained = int(meta.get("trained_steps", 0) or 0)
    if trained <= 0 or ckpt.state.global_step <= 0:
        raise ExportError(
            f"{where}: this checkpoint was never trained (meta.json trained_steps={trained}, state.json "
            f"global_step={ckpt.state.global_step}); exporting it would ship its initial weights"
        )
    if meta.get("weights_complete") is not True:
        w = meta.get("weights") or {}
        raise ExportError(
            f"{where}: its starting weights did not load completely (meta.json weights_complete="
            f"{meta.get('weights_complete')!r}; source {w.get('source')!r}, {w.get('loaded_keys')} of "
            f"{w.get('total_keys')} tensors loaded). Fix the pretrained weights and train again."
        )

    from workbench.models import zoo

    name = meta.get("model_name")
    try:
        spec = zoo.get_spec(str(name))
    except WorkbenchError as exc:
        raise ExportError(f"{where}: meta.json model_name: {exc}") from None
    if spec.paddlex_name is None:
        raise ExportError(f"{where}: model {name} has no PaddleX name (ModelSpec.paddlex_name); PaddleX cannot load it")
    from workbench.paddlex_files import require_registered_model

    require_registered_model(spec.paddlex_name, f"{where}: model {name} exports as", ExportError)
    arch = dict(meta.get("arch") or {})

    from workbench.tasks import registry

    facts = registry.get(task).export_writer.checkpoint_facts(ckpt, spec, where, dictionary)
    state, weights_file = _pick_weights(ckpt, weights, where)
    source = ExportSource(task=task, checkpoint=ckpt, model_name=str(name), paddlex_name=spec.paddlex_name,
                          arch=arch, state_dict=state, weights_file=weights_file, **facts)
    build_model(source)  # loads strictly: refuses weights that do not fit the architecture / dictionary
    return source


def _pick_weights(ckpt: Checkpoint, weights: str, where: str) -> tuple[dict, str]:
    from workbench.engine.checkpoint import CheckpointError

    try:
        state, f = ckpt.load_weights(weights)
    except CheckpointError as exc:
        raise ExportError(f"{where}: {exc}") from None
    return state, f.name


# ----------------------------------------------------------------------------------------------- model


def build_model(source: ExportSource):
    """A fresh model of ``source`` with its weights loaded strictly, in eval mode, *not* fused (the training
    graph, as the workbench evaluates it)."""
    from workbench.models import zoo

    try:  # a dictionary-sized head (rec) is sized by the training dictionary; other heads have their own size
        model = zoo.build_model(source.model_name, charset=source.charset, **source.arch)
    except WorkbenchError as exc:
        raise ExportError(f"{source.path}: cannot rebuild {source.model_name} from meta.json: {exc}") from None
    load_exactly(model, source.state_dict, where=str(source.path / source.weights_file), source=source)
    model.eval()
    return model


def load_exactly(model, state: dict, *, where: str, source: Optional[ExportSource] = None) -> None:
    """Load ``state`` into ``model`` only if every tensor is there with the right shape, and nothing else is
    (``weights.pretrained.load_strict`` with no exceptions), naming a dictionary/head mismatch as such."""
    from workbench.errors import WeightsError
    from workbench.weights.pretrained import load_strict

    try:
        load_strict(model, state, source=where)
    except WeightsError as exc:
        lines = [str(exc)]
        if source is not None and source.charset is not None and "head." in str(exc) and "mismatch" in str(exc):
            lines.append(
                f"  the dictionary ({source.charset.source}: {len(source.charset)} lines → "
                f"{source.charset.num_ctc_classes} CTC classes) does not match the trained head: this checkpoint "
                "was trained with another dictionary"
            )
        raise ExportError("\n".join(lines)) from None


def input_spec(source: ExportSource):
    """Dynamic input shapes, as the task's writer says: any batch and image size for det, any batch and width for
    rec (height fixed)."""
    return source.writer.input_spec(source)


def save_inference_model(source: ExportSource, out_dir: str | Path) -> dict:
    """Fuse and ``jit.save`` ``source`` into ``out_dir/inference.{json,pdiparams}``; returns file facts."""
    import paddle

    from workbench.models.rep import fuse_for_inference, is_fused

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(source)
    fuse_for_inference(model, drop_training_branches=True, fold_for_deployment=True)
    if not is_fused(model):
        raise ExportError(f"{source.model_name}: some re-parameterisable layers did not fuse")
    static = paddle.jit.to_static(model, input_spec=input_spec(source), full_graph=True)
    paddle.jit.save(static, str(out_dir / MODEL_FILE_PREFIX))
    graph = out_dir / f"{MODEL_FILE_PREFIX}.json"
    if not graph.is_file():  # Paddle without PIR writes inference.pdmodel, which PaddleX 3.x also reads
        graph = out_dir / f"{MODEL_FILE_PREFIX}.pdmodel"
    params = out_dir / f"{MODEL_FILE_PREFIX}.pdiparams"
    if not (graph.is_file() and params.is_file()):
        raise ExportError(f"paddle.jit.save wrote no inference graph/params into {out_dir}")
    return {
        "graph": graph.name,
        "params": params.name,
        "params_sha256": _sha256(params),
        "num_parameters": int(sum(int(p.size) for p in model.parameters())),
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
