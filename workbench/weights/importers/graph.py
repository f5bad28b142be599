"""1. The graph: ONNX files and Paddle inference folders, read into one small representation
(:class:`InferenceGraph`).

Part of ``workbench.weights.importers`` (see its docstring for how an import works)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from workbench.errors import WeightsError

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
            if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
                raise WeightsError(f"{path}: {node.name}: auto_pad={attrs['auto_pad']!r} is not supported")
            norm = {
                "stride": tuple(attrs.get("strides", (1, 1))),
                "groups": int(attrs.get("group", 1)),
                "dilation": tuple(attrs.get("dilations", (1, 1))),
                "pads": tuple(attrs.get("pads", (0, 0, 0, 0))),  # ONNX: top, left, bottom, right
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


def paddle_files(folder: Path) -> tuple[Path, Path]:
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


def paddle_pads(paddings: Sequence[int]) -> tuple[int, int, int, int]:
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
    model_file, _ = paddle_files(folder)
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
                    "pads": (0, 0, 0, 0) if algorithm == "VALID" else paddle_pads(attrs.get("paddings", (0, 0))),
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
    """``inference.yml`` of a Paddle inference folder (model name, pre/post-processing, rec dictionary); None when
    the folder has none."""
    from workbench.paddlex_files import INFERENCE_YML, read_inference_yml as read

    path = Path(folder) / INFERENCE_YML
    return read(path, error=WeightsError) if path.is_file() else None


def inference_source_kind(source: str | Path) -> str:
    """``"onnx"`` for an .onnx file, ``"paddle"`` for an inference folder; raises otherwise."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() == ".onnx":
        return "onnx"
    if path.is_dir():
        paddle_files(path)
        return "paddle"
    if path.is_file() and path.name in ("inference.json", "inference.pdmodel", "inference.pdiparams", "inference.yml"):
        raise WeightsError(f"{path}: pass the folder that holds it ({path.parent}), not the file")
    raise WeightsError(f"{path}: not an .onnx file or a Paddle inference folder" + ("" if path.exists() else
                                                                                     " (it does not exist)"))


def read_graph(source: str | Path) -> InferenceGraph:
    return read_onnx(source) if inference_source_kind(source) == "onnx" else read_paddle_inference(source)
