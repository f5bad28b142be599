"""Exponential moving average of the weights (optional; PP-OCRv6 det recipes train with it)."""

from __future__ import annotations

import paddle

from workbench.engine.checkpoint import EMA_COUNTER_KEY  # part of the checkpoint's ema.pdparams format


class ModelEMA:
    """Keeps ``shadow = decay·shadow + (1-decay)·param`` for every float state-dict entry.

    The decay ramps up as ``min(decay, (1+n)/(10+n))`` so that early, mostly-random weights do not dominate.
    BatchNorm statistics are averaged too (they are state-dict entries), which is what evaluation wants.
    """

    def __init__(self, model: paddle.nn.Layer, decay: float = 0.999):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype in (paddle.float32,)}

    @paddle.no_grad()
    def update(self, model: paddle.nn.Layer) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].set_value(self.shadow[k] * d + v.detach() * (1.0 - d))

    def state_dict(self) -> dict:
        return {EMA_COUNTER_KEY: self.updates, **self.shadow}

    def set_state_dict(self, state: dict) -> None:
        self.updates = int(state.pop(EMA_COUNTER_KEY, 0))
        for k, v in state.items():
            if k in self.shadow:
                self.shadow[k].set_value(paddle.to_tensor(v) if not isinstance(v, paddle.Tensor) else v)

    def weights(self) -> dict:
        return dict(self.shadow)
