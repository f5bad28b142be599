"""7. The reference: the source model run by its own runtime, and the parity check against it.

Part of ``workbench.weights.importers`` (see its docstring for how an import works)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from workbench.engine.device import cpu_math_threads_kept
from workbench.errors import WeightsError
from workbench.weights.importers.graph import inference_source_kind, paddle_files

class OnnxRuntimeModel:
    """The source ONNX model run by onnxruntime (CPU): the reference an ONNX import must reproduce."""

    def __init__(self, path: str | Path, threads: Optional[int] = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


class PaddleInferenceModel:
    """The source inference folder run by Paddle Inference (CPU), as PaddleX runs it."""

    def __init__(self, folder: str | Path, threads: Optional[int] = None):
        import paddle.inference as pi

        model_file, params_file = paddle_files(Path(folder))
        config = pi.Config(str(model_file), str(params_file))
        config.disable_gpu()
        # Plain CPU kernels: Paddle 3.3's oneDNN executor rejects some attributes of dynamic-shape programs
        # (e.g. nearest_interp's float scales); the numbers are the same function either way.
        config.disable_mkldnn()
        if threads:
            config.set_cpu_math_library_num_threads(threads)
        config.disable_glog_info()
        self.predictor = pi.create_predictor(config)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        handle = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        handle.reshape(list(x.shape))
        handle.copy_from_cpu(np.ascontiguousarray(x, dtype=np.float32))
        with cpu_math_threads_kept():  # the predictor leaves Paddle's math at 1 thread after its run
            self.predictor.run()
        return self.predictor.get_output_handle(self.predictor.get_output_names()[0]).copy_to_cpu()


def source_runtime(source: str | Path, threads: Optional[int] = None):
    """onnxruntime for an .onnx file, Paddle Inference for an inference folder."""
    kind = inference_source_kind(source)
    return OnnxRuntimeModel(source, threads) if kind == "onnx" else PaddleInferenceModel(source, threads)


def compare_with_source(model, runtime: Callable[[np.ndarray], np.ndarray], batches: Iterable[np.ndarray], *,
                        decode: Optional[Callable] = None) -> dict:
    """Run ``model`` (eval) and the source ``runtime`` on the same inputs.

    Returns ``max_abs_diff`` / ``mean_abs_diff`` over all output probabilities, the number of samples and, with
    ``decode`` (rec: ``probs -> [(text, score)]``), how many decoded texts differ (``text_mismatches``) with the
    first few pairs (``mismatched``).
    """
    import paddle

    model.eval()
    worst, total, count, samples, mismatches, shown = 0.0, 0.0, 0, 0, 0, []
    with paddle.no_grad():
        for x in batches:
            ours = model(paddle.to_tensor(x)).numpy()
            theirs = runtime(x)
            if ours.shape != theirs.shape:
                raise WeightsError(f"output shapes differ: imported {ours.shape} vs source {theirs.shape}")
            diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
            worst = max(worst, float(diff.max()))
            total += float(diff.sum())
            count += diff.size
            samples += ours.shape[0]
            if decode is not None:
                for (a, _), (b, _) in zip(decode(ours), decode(theirs)):
                    if a != b:
                        mismatches += 1
                        if len(shown) < 5:
                            shown.append([a, b])
    result = {"samples": samples, "max_abs_diff": worst, "mean_abs_diff": total / max(count, 1)}
    if decode is not None:
        result.update(text_mismatches=mismatches, mismatched=shown)
    return result
