"""Deterministic, sensibly scaled weights for forward-parity checks against other implementations.

A parity check needs the *same* weights in two implementations (ours and a reference: PaddleX's own inference
models, or upstream PaddleOCR for fixtures made elsewhere) and weights that keep activations in a normal range:
a freshly initialised network with random BatchNorm statistics blows up (activations ~1e11 after 30 layers), and
then any comparison is noise. So:

* :func:`synthetic_state` draws every parameter from its *state-dict key* and shape alone -- a generator seeded
  by ``(seed, crc32(key))`` -- so any implementation with the official state-dict layout gets identical values,
  without sharing code or RNG state: conv / linear weights ``N(0, 1/fan_in)``, biases ``N(0, 0.05)``, BatchNorm
  scales ``U(0.8, 1.2)``, LayerNorm / affine scales ``1 + N(0, 0.05)``. Running statistics are left alone.
* :func:`calibrate_running_stats` then sets every BatchNorm's running mean / variance to the statistics of its
  input on a calibration batch (one train-mode forward with momentum 0), so eval-mode activations stay
  normalised. A reference without our code receives these statistics as values (they are part of the state).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping

import numpy as np
import paddle
import paddle.nn as nn

__all__ = ["apply_synthetic_state", "calibrate_running_stats", "synthetic_state", "synthetic_value"]

_BATCH_NORMS = (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D)


def synthetic_value(key: str, shape, seed: int, has_running_stats: bool) -> np.ndarray | None:
    """The value of state-dict entry ``key`` (``None``: not drawn -- running statistics and buffers)."""
    shape = tuple(int(s) for s in shape)
    leaf = key.rsplit(".", 1)[-1]
    if leaf not in ("weight", "bias", "scale"):
        return None  # running statistics, buffers (positional tables): the model's own values
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    if len(shape) >= 2 and leaf == "weight":
        fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[0]  # conv [O, I, k...]; Paddle linear [in, out]
        return rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), shape).astype(np.float32)
    if leaf == "bias":
        return rng.normal(0.0, 0.05, shape).astype(np.float32)
    if has_running_stats:  # BatchNorm scale
        return rng.uniform(0.8, 1.2, shape).astype(np.float32)
    return (1.0 + rng.normal(0.0, 0.05, shape)).astype(np.float32)  # LayerNorm / affine scale


def synthetic_state(shapes: Mapping[str, tuple], seed: int) -> dict[str, np.ndarray]:
    """``{key: value}`` for every drawable entry of a state-dict layout ``{key: shape}``."""
    prefixes = {key.rsplit(".", 1)[0] for key in shapes if key.endswith("._mean")}
    out = {}
    for key, shape in shapes.items():
        value = synthetic_value(key, shape, seed, key.rsplit(".", 1)[0] in prefixes)
        if value is not None:
            out[key] = value
    return out


@paddle.no_grad()
def apply_synthetic_state(model: nn.Layer, seed: int) -> int:
    """Set ``model``'s parameters to :func:`synthetic_state` of its own layout; returns how many were set."""
    state = model.state_dict()
    values = synthetic_state({k: tuple(v.shape) for k, v in state.items()}, seed)
    for key, value in values.items():
        state[key].set_value(value)
    return len(values)


@paddle.no_grad()
def calibrate_running_stats(model: nn.Layer, batch, forward: Callable | None = None) -> int:
    """Running mean / variance of every BatchNorm := the statistics of its input on ``batch`` (one train-mode
    forward with momentum 0; dropout off). ``forward(model, x)`` runs the path to calibrate (default
    ``model(x)``). Returns the number of BatchNorm layers updated. The model is left in eval mode."""
    norms = [layer for layer in model.sublayers(include_self=True) if isinstance(layer, _BATCH_NORMS)]
    saved = [layer._momentum for layer in norms]
    dropouts = [layer for layer in model.sublayers() if isinstance(layer, nn.Dropout)]
    x = batch if isinstance(batch, paddle.Tensor) else paddle.to_tensor(batch)
    try:
        for layer in norms:
            layer._momentum = 0.0
        model.train()
        for layer in dropouts:
            layer.eval()
        (forward or (lambda m, t: m(t)))(model, x)
    finally:
        for layer, momentum in zip(norms, saved):
            layer._momentum = momentum
        model.eval()
    return len(norms)
