"""Activation recompute: chosen sublayers keep only their input for the backward pass and run their forward again
there, instead of keeping every intermediate tensor from the forward.

Why: a PP-OCRv5_mobile_det training step at batch 4, 640^2 holds about 1.2 GB of saved tensors at the end of its
forward, two thirds of them in the backbone; on a CPU that memory is the process's peak. Each
recomputed block holds one tensor (its input) instead of a dozen, for one more forward of the block. Measured
(``benchmarks/bench_det_training.py --only wb``, batch 4, 640^2, 2 threads): every backbone block and the neck's
convs recomputed, peak RSS 2.50-2.70 -> 1.94-2.02 GB for 1.28-1.30 -> 1.03-1.04 samples/s; the README's "How fast"
has the settings between. Off by default: the speed is worth more than the memory on most machines.

How: a :class:`paddle.autograd.PyLayer` per block. Its forward runs the block with gradients recorded -- so the
same kernels run as in an ordinary training step (wb's CPU kernels serve recorded computations only) -- and keeps
nothing of that graph. Its backward runs the block again from the saved input, with the random-number state of
the first run, and differentiates it. The second run must not count twice in the BatchNorms' running statistics:
they (and any buffer) are restored after it. The values are those of an ordinary step up to float32 summation
order: the second forward sees the same input and weights (the optimizer steps after the backward pass). A block
whose input needs no gradient (the first conv, on the image) runs as it is: a PyLayer would not reach its
parameters.

A layer can also offer *parts* of its forward that are not sublayers (their parameters keep upstream's state-dict
names): it lists them in ``recompute_parts`` and runs each through :func:`recompute_part`; ``model.recompute``
names them ``<layer>.<part>`` (the DB head's branches: ``head.binarize.tail``, ``head.thresh.tail``).
"""

from __future__ import annotations

import fnmatch
import logging
from typing import Sequence

import paddle
import paddle.nn as nn
from paddle.autograd import PyLayer

from ..errors import ConfigError

__all__ = ["recompute_part", "recompute_sublayers"]

log = logging.getLogger("workbench.models")


class _Recompute(PyLayer):
    @staticmethod
    def forward(ctx, x, block_forward, state, name):
        ctx.block_forward, ctx.state = block_forward, state
        ctx.rng_state = paddle.get_rng_state()
        ctx.save_for_backward(x)
        with paddle.set_grad_enabled(True):
            y = block_forward(_fresh_leaf(x))
        if not isinstance(y, paddle.Tensor):
            raise ConfigError(f"model.recompute: {name} returns a {type(y).__name__}, not one tensor; name its blocks "
                              f"instead (e.g. {name}.*)")
        return y.detach()

    @staticmethod
    def backward(ctx, grad_y):
        (x,) = ctx.saved_tensor()
        rng_after = paddle.get_rng_state()
        statistics = [t.clone() for t in ctx.state]
        paddle.set_rng_state(ctx.rng_state)
        x_again = _fresh_leaf(x)
        with paddle.set_grad_enabled(True):
            y = ctx.block_forward(x_again)
            paddle.autograd.backward([y], [grad_y])
        for tensor, kept in zip(ctx.state, statistics):
            paddle.assign(kept, output=tensor)
        paddle.set_rng_state(rng_after)
        return x_again.grad


def _fresh_leaf(x: paddle.Tensor) -> paddle.Tensor:
    """``x`` without its graph, as a leaf whose gradient the inner backward pass computes."""
    out = x.detach()
    out.stop_gradient = False
    return out


class _RecomputedForward:
    """Mixed into a chosen sublayer's class (a subclass made once per class, so ``copy.deepcopy`` -- fused and
    compiled evaluation copies -- copies a layer that recomputes its own forward, not the original's)."""

    _wb_plain_class: type
    _wb_recompute_name: str  # the sublayer's name in the model, for messages

    def forward(self, x, *args, **kwargs):
        plain_forward = self._wb_plain_class.forward
        if (args or kwargs or not self.training or not paddle.is_grad_enabled() or not isinstance(x, paddle.Tensor)
                or x.stop_gradient):
            # not a one-tensor block; nothing to differentiate; or an input without gradient (the image), whose
            # block's parameters a PyLayer would not reach: the ordinary forward
            return plain_forward(self, x, *args, **kwargs)
        return _Recompute.apply(x, lambda inp: plain_forward(self, inp), _state_a_forward_may_update(self),
                                self._wb_recompute_name)


def recompute_part(layer: nn.Layer, part: str, part_forward, x, sublayers: Sequence[nn.Layer]):
    """``part_forward(x)``, one of ``layer.recompute_parts``, which runs ``sublayers``: recomputed in the backward
    pass when ``model.recompute`` chose ``<layer>.<part>`` (and, as for blocks, in training, with gradients, on an
    input that needs one); otherwise run as it is. Only ``sublayers``' running statistics are restored after the
    second run: the rest of ``layer`` is not run again, and its BatchNorms' gradients still need theirs untouched."""
    if (part in getattr(layer, "_wb_recomputed_parts", ()) and layer.training and paddle.is_grad_enabled()
            and isinstance(x, paddle.Tensor) and not x.stop_gradient):
        state = [t for sub in sublayers for t in _state_a_forward_may_update(sub)]
        return _Recompute.apply(x, part_forward, state, f"{layer._wb_recompute_name}.{part}")
    return part_forward(x)


def _state_a_forward_may_update(layer: nn.Layer) -> list:
    """Buffers, and parameters without gradient: Paddle's BatchNorms keep their running statistics as parameters
    (``_mean``, ``_variance``, ``stop_gradient``), not buffers."""
    tensors = [b for b in layer.buffers() if b is not None]
    return tensors + [p for p in layer.parameters() if p.stop_gradient]


_RECOMPUTED_CLASSES: dict[type, type] = {}


def _recomputed_class(cls: type) -> type:
    if issubclass(cls, _RecomputedForward):
        return cls
    if cls not in _RECOMPUTED_CLASSES:
        _RECOMPUTED_CLASSES[cls] = type(f"Recomputed{cls.__name__}", (_RecomputedForward, cls),
                                        {"_wb_plain_class": cls, "__module__": cls.__module__})
    return _RECOMPUTED_CLASSES[cls]


def recompute_sublayers(model: nn.Layer, patterns) -> list[str]:
    """``model.recompute``: the sublayers whose names match one of ``patterns`` (``fnmatch``: ``*`` spans dots,
    e.g. ``backbone.blocks2.*``), outermost only, each recompute their forward in the backward pass; a layer's
    named part (``head.binarize.tail``) is chosen the same way when the layer itself is not. Blocks called with
    more than one input run as they are; one that returns anything but one tensor is a ConfigError when it runs,
    as is a pattern matching nothing now. Returns the names chosen."""
    if not patterns:
        return []
    layers = [(n, layer) for n, layer in model.named_sublayers() if n]
    parts = [(f"{n}.{part}", n, layer, part) for n, layer in layers for part in getattr(layer, "recompute_parts", ())]
    names = [n for n, _ in layers] + [full for full, *_ in parts]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unmatched:
        tops = sorted({".".join(n.split(".")[:2]) for n, _ in layers})
        raise ConfigError(f"model.recompute: {', '.join(unmatched)} matches no sublayer of this model "
                          f"(names look like: {', '.join(tops[:12])})")

    def matched(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    chosen: list[str] = []
    for name, layer in layers:
        if not matched(name) or any(name.startswith(c + ".") for c in chosen):
            continue  # not chosen, or inside a block already recomputed as a whole
        layer.__class__ = _recomputed_class(type(layer))
        layer._wb_recompute_name = name
        chosen.append(name)
    for full, name, layer, part in parts:
        if not matched(full) or any(full.startswith(c + ".") for c in chosen):
            continue
        layer._wb_recompute_name = name
        layer._wb_recomputed_parts = (*getattr(layer, "_wb_recomputed_parts", ()), part)
        chosen.append(full)
    log.info("model.recompute: %d sublayers or parts recompute their forward in the backward pass (%s)",
             len(chosen), ", ".join(chosen[:8]) + (" ..." if len(chosen) > 8 else ""))
    return chosen
