"""Reading PaddleX's side: stand-ins for a predictor's runner and a pipeline's predictors that keep every
input, output and result.

Part of ``workbench.export.verify`` (see its docstring)."""

from __future__ import annotations

import numpy as np

from workbench.engine.device import cpu_math_threads_kept
from workbench.errors import ExportError


class RunnerRecorder:
    """Stands in for a PaddleX predictor's runner and keeps every input batch and output."""

    def __init__(self, runner):
        self._runner = runner
        self.calls: list[tuple[list[np.ndarray], list[np.ndarray]]] = []

    def __call__(self, x):
        with cpu_math_threads_kept():  # Paddle Inference leaves 1 thread after a run; wb's side runs next
            out = self._runner(x)
        self.calls.append(([np.array(a) for a in x], [np.array(o) for o in out]))
        return out

    def __getattr__(self, name):
        return getattr(self._runner, name)


class PredictorRecorder:
    """Stands in for a pipeline's predictor: keeps the images it was given and the results it yielded."""

    def __init__(self, predictor):
        self._predictor = predictor
        self.calls: list[tuple[list, list]] = []

    def __call__(self, inputs, *args, **kwargs):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        results = []
        self.calls.append((inputs, results))
        for r in self._predictor(inputs, *args, **kwargs):
            results.append(r)
            yield r

    def __getattr__(self, name):
        return getattr(self._predictor, name)


def record_runner(predictor) -> RunnerRecorder:
    target = getattr(predictor, "_predictor", predictor)  # paddlex.create_model wraps the predictor
    if not hasattr(target, "runner"):
        raise ExportError(f"PaddleX predictor {type(target).__name__} has no 'runner': this paddlex version is not "
                          "supported by the verification")
    rec = RunnerRecorder(target.runner)
    target.runner = rec
    return rec


def inner_pipeline(pipeline):
    inner = getattr(pipeline, "_pipeline", pipeline)
    if not (hasattr(inner, "text_det_model") and hasattr(inner, "text_rec_model")):
        raise ExportError(f"PaddleX OCR pipeline {type(inner).__name__} has no text_det_model/text_rec_model: this "
                          "paddlex version is not supported by the verification")
    return inner
