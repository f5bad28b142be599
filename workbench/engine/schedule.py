"""Learning-rate schedules, stepped once per optimizer step (not per epoch), so warmup and decay are smooth
however small the dataset is."""

from __future__ import annotations

import math

from paddle.optimizer.lr import LRScheduler


class WarmupCosine(LRScheduler):
    """Linear warmup from 0 to ``base_lr`` over ``warmup_steps``, then cosine decay to ``min_lr`` at ``total_steps``.

    Matches upstream's ``Cosine`` + ``warmup_epoch`` (linear warmup, then 0.5·(1+cos(π·t/T))), but counted in steps.
    """

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0):
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = max(int(warmup_steps), 0)
        self.min_lr = float(min_lr)
        super().__init__(learning_rate=base_lr, last_epoch=-1, verbose=False)

    def get_lr(self) -> float:
        step = self.last_epoch  # paddle's counter of step() calls
        if self.warmup_steps and step < self.warmup_steps:
            return self.base_lr * step / self.warmup_steps
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        t = min(max(step - self.warmup_steps, 0), decay_steps)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t / decay_steps))


class WarmupConstant(LRScheduler):
    def __init__(self, base_lr: float, warmup_steps: int = 0):
        self.warmup_steps = max(int(warmup_steps), 0)
        super().__init__(learning_rate=base_lr, last_epoch=-1, verbose=False)

    def get_lr(self) -> float:
        if self.warmup_steps and self.last_epoch < self.warmup_steps:
            return self.base_lr * self.last_epoch / self.warmup_steps
        return self.base_lr


def build_scheduler(name: str, base_lr: float, total_steps: int, warmup_steps: int, min_lr: float) -> LRScheduler:
    if name == "cosine":
        return WarmupCosine(base_lr, total_steps, warmup_steps, min_lr)
    if name == "constant":
        return WarmupConstant(base_lr, warmup_steps)
    from workbench.errors import ConfigError

    raise ConfigError(f"optim.scheduler={name!r}: choose cosine or constant")
