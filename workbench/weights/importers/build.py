"""6. The import: our model built, matched, assembled, un-fused and calibrated (:func:`import_inference_model`).

Part of ``workbench.weights.importers`` (see its docstring for how an import works)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from workbench.errors import WeightsError
from workbench.weights.importers.assemble import assign
from workbench.weights.importers.graph import inference_source_kind, read_graph, read_inference_yml
from workbench.weights.importers.inputs import synthetic_inputs
from workbench.weights.importers.slots import match_slots, trace_slots
from workbench.weights.importers.units import Unit, extract_units

log = logging.getLogger("workbench.weights")


@dataclass
class ImportReport:
    """What an import did; written next to the imported weights (``<out>.import.json``) and logged to MLflow."""

    source: str
    source_format: str  # onnx | paddle
    model_name: str
    task: str
    num_classes: Optional[int] = None
    mapped_units: int = 0
    graph_tensors: int = 0
    unfused_rep_layers: int = 0
    unfolded_batch_norms: list = field(default_factory=list)
    calibrated_batch_norms: int = 0
    calibration: str = ""
    # parts of the training graph the inference graph does not have: {"group": ..., "tensors": n, "params": n, ...}
    initialised: list = field(default_factory=list)
    parity: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"imported {self.source} ({self.source_format}) as {self.model_name}"
            + (f" ({self.num_classes} CTC classes)" if self.num_classes else ""),
            f"  {self.mapped_units} parameterised ops mapped ({self.graph_tensors} graph tensors); "
            f"{self.unfused_rep_layers} rep layers un-fused; {len(self.unfolded_batch_norms)} folded BatchNorms "
            f"un-folded; {self.calibrated_batch_norms} BatchNorms calibrated on {self.calibration}",
        ]
        for part in self.initialised:
            lines.append(f"  initialised (not in the inference graph): {part['group']}: {part['tensors']} tensors, "
                         f"{part['params']:,} values -- {part['why']}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)


@dataclass
class ImportedModel:
    model: Any  # the training-graph model (eval mode) holding the imported weights
    report: ImportReport
    inference_yml: Optional[dict] = None
    dictionary: Optional[list] = None  # rec: dictionary lines from inference.yml, when the folder has them

    def state_dict(self) -> dict:
        return self.model.state_dict()


_WHY = {
    "gtc_head": "NRTR branch: training only, never exported; fine-tuning trains it from scratch (and, through it, "
                "the backbone -- the CTC branch detaches its input)",
    "before_gtc": "NRTR branch input projection: training only",
    "sar_head": "SAR branch (PP-OCRv3): training only, never exported; fine-tuning trains it from scratch",
    "thresh": "DB threshold branch: training only (eval uses the probability map)",
    "aux_binarize_p4": "PP-OCRv6 auxiliary DB branch (deep supervision): training only",
    "aux_thresh_p4": "PP-OCRv6 auxiliary DB branch (deep supervision): training only",
    "aux_binarize_p3": "PP-OCRv6 auxiliary DB branch (deep supervision): training only",
    "aux_thresh_p3": "PP-OCRv6 auxiliary DB branch (deep supervision): training only",
    "aux_binarize_p2": "PP-OCRv6 auxiliary DB branch (deep supervision): training only",
    "aux_thresh_p2": "PP-OCRv6 auxiliary DB branch (deep supervision): training only",
    "act.lab": "activation affine of a stride-2 rep layer: such layers skip the activation, so it is never used",
}


def _why(key: str) -> tuple[str, str]:
    for token, why in _WHY.items():
        if f".{token}." in f".{key}":
            group = key.split(f"{token}.", 1)[0] + token
            if token == "act.lab":
                group = "backbone *.act.lab of stride-2 rep layers"
            return group, why
    return key.rsplit(".", 1)[0], "not in the inference graph"


def _default_example(spec) -> np.ndarray:
    rng = np.random.default_rng(0)
    if spec.classes is not None:  # a classifier: its own fixed input size
        shape = (1, *spec.image_shape)
    else:
        shape = (1, 3, 64, 64) if spec.task == "det" else (1, 3, 48, 64)
    return rng.standard_normal(shape).astype(np.float32)


def resolve_model_name(kind: str, source: Path, model_name: Optional[str], yml: Optional[dict]) -> str:
    """``model_name`` if given, else ``Global.model_name`` of an inference folder, else an .onnx file's stem
    when it is a model name of the zoo."""
    from workbench.models import zoo

    names = zoo.list_models()
    from_yml = ((yml or {}).get("Global") or {}).get("model_name")
    if model_name:
        if model_name not in names:
            raise WeightsError(f"--model {model_name!r} is not a known model ({', '.join(names)})")
        if from_yml and from_yml != model_name:
            log.warning("%s says model_name=%s; importing as %s as asked", source, from_yml, model_name)
        return model_name
    if from_yml:
        if from_yml not in names:
            raise WeightsError(f"{source}/inference.yml: Global.model_name={from_yml!r} is not a model the "
                               f"workbench knows; pass --model with one of: {', '.join(names)}")
        return from_yml
    if kind == "onnx" and source.stem in names:
        return source.stem
    raise WeightsError(f"{source}: cannot tell which model this is; pass --model (one of: {', '.join(names)})")


def ctc_classes(units: list[Unit]) -> Optional[int]:
    linear = [u for u in units if u.kind == "linear"]
    return int(linear[-1].tensors["weight"].shape[1]) if linear else None


def import_inference_model(
    source: str | Path,
    *,
    model_name: Optional[str] = None,
    num_classes: Optional[int] = None,
    calibration: Optional[Iterable[np.ndarray]] = None,
    calibration_name: str = "",
    seed: int = 0,
    jitter: float = 0.1,
) -> ImportedModel:
    """Import an ONNX file or a Paddle inference folder into the training graph of ``model_name``.

    ``num_classes`` (rec): CTC classes to expect (dictionary lines + 2); None = whatever the graph has.
    ``calibration``: batches of preprocessed model inputs for the BN statistics (see the module docstring);
    None = synthetic text images (:func:`synthetic_inputs`). ``seed`` seeds the fresh initialisation of the parts
    the graph lacks (through Paddle's and numpy's global generators, which the model builders draw from) and the
    branch split, so an import is reproducible.
    """
    import paddle

    from workbench.models import zoo
    from workbench.models.rep import calibrate_batch_norms, fuse_for_inference, rep_layers, unfuse_rep_layer

    source = Path(source).expanduser()
    kind = inference_source_kind(source)
    yml = read_inference_yml(source) if kind == "paddle" else None
    name = resolve_model_name(kind, source, model_name, yml)
    spec = zoo.get_spec(name)
    graph = read_graph(source)
    units = extract_units(graph)

    build_kwargs = {}
    if spec.task == "rec":
        graph_classes = ctc_classes(units)
        if graph_classes is None:
            raise WeightsError(f"{source}: no linear layer found: this is not a recognition model")
        if num_classes is not None and num_classes != graph_classes:
            raise WeightsError(f"{source}: the graph outputs {graph_classes} classes but the dictionary gives "
                               f"{num_classes} (lines + blank + space): wrong dictionary?")
        build_kwargs["num_classes"] = graph_classes

    # Same seed for both builds: the fused copy is only traced, the training model keeps its fresh init where
    # the graph has nothing to say.
    paddle.seed(seed)
    np.random.seed(seed)
    model = zoo.build_model(name, **build_kwargs)
    paddle.seed(seed)
    np.random.seed(seed)
    fused = fuse_for_inference(zoo.build_model(name, **build_kwargs), drop_training_branches=True)

    slots, called = trace_slots(fused, _default_example(spec))
    pairs = match_slots(slots, units, str(source))
    unfolded = [path for path in (assign(slot, unit) for slot, unit in pairs) if path]

    # --- fused state -> training state
    fused_state = fused.state_dict()
    train_state = model.state_dict()
    assigned = set()
    for slot, _ in pairs:
        for path in (slot.path, slot.bn_path):
            if path:
                assigned.update(k for k in fused_state if k.startswith(path + "."))
    rng = np.random.default_rng(seed)
    named = dict(model.named_sublayers())
    rep_ids = {id(layer) for layer in rep_layers(model)}
    rep_paths = [p for p, layer in named.items() if id(layer) in rep_ids]
    for path in rep_paths:
        kernel = fused_state[f"{path}.reparam_conv.weight"].numpy()
        bias = fused_state[f"{path}.reparam_conv.bias"].numpy()
        # a layer family with its own training form (PP-OCRv6's RepDWConv, DilatedReparamBlock) un-fuses itself
        own = getattr(named[path], "unfuse", None)
        if callable(own):
            own(kernel, bias, rng=rng, jitter=jitter)
        else:
            unfuse_rep_layer(named[path], kernel, bias, rng=rng, jitter=jitter)
    covered = {k for p in rep_paths for k in train_state if k.startswith(p + ".") and not
               k.startswith((p + ".lab.", p + ".act."))}
    for key, value in fused_state.items():
        if ".reparam_conv." in key or key not in assigned:
            continue
        if key not in train_state:
            raise WeightsError(f"internal: fused key {key} has no training counterpart")
        train_state[key].set_value(value)  # state_dict() tensors share storage with the parameters / buffers
        covered.add(key)

    initialised: dict[str, dict] = {}
    for key, value in train_state.items():
        if key in covered:
            continue
        owner = key.rsplit(".", 1)[0]
        if owner in called and key in fused_state:
            raise WeightsError(f"internal: {key} is used by the forward but was not imported")
        group, why = _why(key)
        entry = initialised.setdefault(group, {"group": group, "tensors": 0, "params": 0, "why": why})
        entry["tensors"] += 1
        entry["params"] += int(np.prod(value.shape))

    # --- BN statistics
    named_train = dict(model.named_sublayers())
    extra_bns = [named_train[p] for p in unfolded]
    batches = list(calibration) if calibration is not None else synthetic_inputs(spec.task, seed=seed, spec=spec)
    calibrated = calibrate_batch_norms(model, batches, batch_norms=extra_bns)
    model.eval()

    report = ImportReport(
        source=str(source),
        source_format=kind,
        model_name=name,
        task=spec.task,
        num_classes=build_kwargs.get("num_classes"),
        mapped_units=len(pairs),
        graph_tensors=sum(len(u.names) for u in units),
        unfused_rep_layers=len(rep_paths),
        unfolded_batch_norms=unfolded,
        calibrated_batch_norms=calibrated,
        calibration=calibration_name or ("synthetic text images" if calibration is None else "given inputs"),
        initialised=list(initialised.values()),
    )
    dictionary = None
    if yml is not None and spec.task == "rec":
        dictionary = ((yml.get("PostProcess") or {}).get("character_dict")) or None
    log.debug(report.summary())
    return ImportedModel(model, report, yml, dictionary)
