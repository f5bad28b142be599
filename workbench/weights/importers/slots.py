"""3.-4. Slots: the parameterised layers our fused model calls, in call order (:class:`Slot`), matched to the
units by signature.

Part of ``workbench.weights.importers`` (see its docstring for how an import works)."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Optional

from workbench.errors import WeightsError
from workbench.weights.importers.graph import paddle_pads
from workbench.weights.importers.units import Unit, format_signature, signature

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
        if self.kind in ("conv", "conv_transpose"):
            pads = _layer_pads(layer)
            return signature(self.kind, layer.weight.shape, {"stride": tuple(layer._stride), "groups": layer._groups,
                                                              "dilation": tuple(layer._dilation), "pads": pads}, {})
        if self.kind == "linear":
            return signature("linear", layer.weight.shape, {}, {})
        if self.kind in ("layer_norm", "batch_norm"):
            return (self.kind, int(layer.weight.shape[0]))
        return (self.kind,)


def _layer_pads(layer) -> tuple[int, int, int, int]:
    if layer._padding_algorithm != "EXPLICIT":
        raise WeightsError(f"{type(layer).__name__} with padding {layer._padding_algorithm} is not supported")
    return paddle_pads(layer._updated_padding)


def _traced_kinds():
    import paddle.nn as nn

    from workbench.models.backbones.pplcnetv3 import LearnableAffineBlock

    return (
        (nn.Conv2DTranspose, "conv_transpose"),
        (nn.Conv2D, "conv"),
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
            lines += [f"    {s.path}: {s.kind} {format_signature(s.signature)}" for s in missing[:15]]
        if left:
            lines.append(f"  {len(left)} parameterised ops of the graph have no counterpart in the model:")
            lines += [f"    {u.describe()}" for u in sorted(left, key=lambda u: u.position)[:15]]
        lines.append("  (is --model the right architecture? for rec, does the dictionary size match?)")
        raise WeightsError("\n".join(lines))
    return pairs
