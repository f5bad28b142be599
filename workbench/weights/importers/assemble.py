"""5. Assembling: a unit's tensors put into our slot (BatchNorms the graph folded away are un-folded).

Part of ``workbench.weights.importers`` (see its docstring for how an import works)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from workbench.errors import WeightsError
from workbench.weights.importers.slots import Slot
from workbench.weights.importers.units import Unit

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


def assign(slot: Slot, unit: Unit) -> Optional[str]:
    """Copy ``unit`` into ``slot``'s layers. Returns the BN path if a folded BN had to be un-folded."""
    from workbench.models.rep import set_identity_affine

    layer, t = slot.layer, unit.tensors
    if slot.kind in ("conv", "conv_transpose"):
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
