"""2. Units: each parameterised op grouped with the ops that complete it (:class:`Unit`).

Part of ``workbench.weights.importers`` (see its docstring for how an import works)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

import numpy as np

from workbench.errors import WeightsError
from workbench.weights.importers.graph import InferenceGraph, Node

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
        return signature(self.kind, self.tensors["weight"].shape if "weight" in self.tensors else None, self.attrs,
                          self.tensors)

    def describe(self) -> str:
        return f"{self.kind} {format_signature(self.signature)} ({', '.join(self.names[:2])}...)"


def signature(kind: str, weight_shape, attrs: dict, tensors: dict) -> tuple:
    if kind in ("conv", "conv_transpose"):
        return (kind, tuple(int(s) for s in weight_shape), tuple(attrs["stride"]), int(attrs["groups"]),
                tuple(attrs["dilation"]), tuple(attrs["pads"]))
    if kind == "linear":
        return (kind, tuple(int(s) for s in weight_shape))
    if kind in ("layer_norm", "batch_norm"):
        return (kind, int(tensors["scale"].size if "scale" in tensors else tensors["weight"].size))
    return (kind,)


def format_signature(signature: tuple) -> str:
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


def _is_nearest_upsampling(node: Node, weight: np.ndarray) -> bool:
    """A depthwise transposed conv with an ``f x f`` kernel of ones, stride ``f``, no padding and no bias: nearest
    upsampling by ``f`` (how wb's exported graphs upsample, ``models.ops.upsample_nearest``), not a learned layer."""
    channels, per_group, kh, kw = weight.shape
    return (node.op == "conv_transpose" and per_group == 1 and kh == kw and int(node.attrs["groups"]) == channels
            and tuple(node.attrs["stride"]) == (kh, kw) and not any(node.attrs["pads"])
            and (len(node.inputs) < 3 or node.inputs[2] is None) and bool(np.all(weight == 1.0)))


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
            if _is_nearest_upsampling(node, weight):
                continue
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
