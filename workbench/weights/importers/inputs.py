"""Inputs: synthetic text images and real ones, preprocessed as training / the pipeline does.

Part of ``workbench.weights.importers`` (see its docstring for how an import works)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def synthetic_inputs(task: str, *, count: Optional[int] = None, seed: int = 0, batch_size: int = 8) -> list[np.ndarray]:
    """Preprocessed model inputs rendered by the demo-data generator (text on varied backgrounds): the default
    calibration and self-check data when the user gives no images. Rec: ``[B, 3, 48, 320]``; det: ``[1, 3, H, W]``."""
    from workbench.data import synth
    from workbench.data.preprocess import DetResize, preprocess_det, resize_norm_rec_fixed

    fonts = synth.demo_font_paths()
    rng = np.random.default_rng([seed, 7])
    if task == "rec":
        count = count or 16
        images = [resize_norm_rec_fixed(synth.render_rec_image(rng, fonts)[0])[0] for _ in range(count)]
        return [np.stack(images[i:i + batch_size]) for i in range(0, count, batch_size)]
    count = count or 2
    resize = DetResize.paddlex_module()
    return [preprocess_det(synth.render_det_image(rng, fonts, 6)[0], resize)[0][None] for _ in range(count)]


def preprocess_images(task: str, images: Sequence[np.ndarray], *, batch_size: int = 8, pipeline: bool = False
                      ) -> list[np.ndarray]:
    """Real BGR images as model inputs. Rec: fixed 48x320 (``pipeline``: PaddleX's keep-ratio resize, one crop per
    batch); det: PaddleX's single-model resize (long side <= 960), one image per batch."""
    from workbench.data.preprocess import DetResize, preprocess_det, resize_norm_rec, resize_norm_rec_fixed

    if task == "rec":
        if pipeline:
            return [resize_norm_rec(image)[None] for image in images]
        arrays = [resize_norm_rec_fixed(image)[0] for image in images]
        return [np.stack(arrays[i:i + batch_size]) for i in range(0, len(arrays), batch_size)]
    resize = DetResize.paddlex_module()
    return [preprocess_det(image, resize)[0][None] for image in images]
