"""Paddle's Adam with its step done by one native op over every parameter on CPU (:func:`kernels.adam_update_op`).

Why: Paddle's ``Adam.step`` runs a Python bookkeeping pass, a ``scale`` and an ``add_n`` (L2 decay) and an ``adam_``
kernel per parameter: 52-58 ms a PP-OCRv5_mobile_rec fine-tuning step at 2 threads (582 parameters with gradients,
7.7M values), most of it not arithmetic; this path takes 25-28 ms, 19-22 of them the op's pass over the memory.

Same optimizer otherwise: the moments and beta powers are Paddle's own accumulators (created, saved and restored by
``Adam``'s code, so checkpoints are unchanged and resume reads them back), the learning rate comes from the same
scheduler, the decay is each parameter's own regularizer or the optimizer's (L2 only). Anything this path does not
cover -- GPU, non-float32, gradient clipping, AMP's skipped steps, parameter groups, AMSGrad, L1 decay -- runs
Paddle's ``step``. Per-parameter learning-rate multipliers (``optimize_attr``; PPLCNetV3's affine blocks train at
0.1x) apply as in Paddle. The arithmetic is Paddle's CPU Adam with the roundings of its AVX-512 kernel: on CPUs with
AVX-512 the same values bit for bit (tests; and 8 steps of PP-OCRv5_mobile_rec from imported weights: all 33.4M state
values equal), elsewhere ulp-level differences from Paddle's other kernel."""

from __future__ import annotations

import numpy as np
import paddle

from workbench import kernels


class FusedCPUAdam(paddle.optimizer.Adam):
    def step(self) -> None:
        params_grads = self._native_params_grads()
        if params_grads is None:
            return super().step()
        with paddle.no_grad():
            self._native_step(params_grads)

    def _native_params_grads(self):
        """(parameter, gradient) pairs when the native op serves this step, else None."""
        if (self._grad_clip is not None or self._amsgrad or self._multi_precision or self._lazy_mode
                or not paddle.in_dynamic_mode() or isinstance(self._parameter_list[0], dict)
                or self._get_auxiliary_var("found_inf") is not None
                or not isinstance(self._beta1, float | int) or not isinstance(self._beta2, float | int)):
            return None
        pairs = [(p, p.grad) for p in self._parameter_list if not p.stop_gradient and p.grad is not None]
        if not pairs or kernels.adam_update_op() is None:
            return None
        for p, g in pairs:
            if not (p.place.is_cpu_place() and p.dtype == paddle.float32 and g.dtype == paddle.float32
                    and _l2_coeff(self, p) is not None):
                return None
        return pairs

    def _native_step(self, pairs) -> None:
        params = [p for p, _ in pairs]
        # Paddle's own accumulators (restored from a checkpoint's state when they are first created)
        self._create_accumulators(paddle.static.default_main_program().global_block(), params)
        acc = lambda name: [self._get_accumulator_master(name, p) for p in params]  # noqa: E731
        decay = paddle.to_tensor(np.asarray([_l2_coeff(self, p) for p in params], dtype=np.float32))
        # Paddle's per-parameter rate: the float32 global rate times the parameter's multiplier, in float32
        lr = np.float32(self.get_lr()) * np.asarray([p.optimize_attr.get("learning_rate", 1.0) for p in params],
                                                     dtype=np.float32)
        # detached views share the parameters' memory (a leaf that needs gradients refuses an in-place op)
        kernels.adam_update_op()(
            [p.detach() for p in params], [g for _, g in pairs], acc(self._moment1_acc_str), acc(self._moment2_acc_str),
            acc(self._beta1_pow_acc_str), acc(self._beta2_pow_acc_str), paddle.to_tensor(lr), decay,
            float(self._beta1), float(self._beta2), float(self._epsilon), kernels.native_threads())


def _l2_coeff(optimizer, param):
    """The L2 coefficient Paddle would add to ``param``'s gradient (its own regularizer first), 0.0 for none, or None
    for a regularizer this path does not implement."""
    reg = getattr(param, "regularizer", None) or optimizer.regularization
    if reg is None:
        return 0.0
    if isinstance(reg, paddle.regularizer.L2Decay):
        return float(reg._coeff)
    return None
