"""Inputs: synthetic text images and real ones, preprocessed as training / the pipeline does.

Part of ``workbench.weights.importers`` (see its docstring for how an import works)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def synthetic_inputs(task: str, *, count: Optional[int] = None, seed: int = 0, batch_size: int = 8,
                     spec=None) -> list[np.ndarray]:
    """Preprocessed model inputs rendered by the demo-data generator (text on varied backgrounds): the default
    calibration and self-check data when the user gives no images. Rec: ``[B, 3, 48, 320]``; det: ``[1, 3, H, W]``;
    a classifier (``spec`` with ``classes``): text lines (2 classes) or pages (4 classes) turned through every
    class's angle, ``[B, 3, H, W]`` as its zoo preprocessing makes them."""
    from workbench.data import synth
    from workbench.data.preprocess import DetResize, preprocess_det, resize_norm_rec_fixed

    fonts = synth.demo_font_paths()
    rng = np.random.default_rng([seed, 7])
    if spec is not None and spec.classes is not None:
        count = count or 16
        if len(spec.classes) == 2:
            images = [synth.render_rec_image(rng, fonts)[0] for _ in range(count)]
        else:
            images = [synth.render_det_image(rng, fonts, 6)[0] for _ in range(count)]
        return preprocess_images(task, images, batch_size=batch_size, spec=spec, turned=True)
    if task == "rec":
        count = count or 16
        images = [resize_norm_rec_fixed(synth.render_rec_image(rng, fonts)[0])[0] for _ in range(count)]
        return [np.stack(images[i:i + batch_size]) for i in range(0, count, batch_size)]
    count = count or 2
    resize = DetResize.paddlex_module()
    return [preprocess_det(synth.render_det_image(rng, fonts, 6)[0], resize)[0][None] for _ in range(count)]


def preprocess_images(task: str, images: Sequence[np.ndarray], *, batch_size: int = 8, pipeline: bool = False,
                      spec=None, turned: bool = False) -> list[np.ndarray]:
    """Real BGR images as model inputs. Rec: fixed 48x320 (``pipeline``: PaddleX's keep-ratio resize, one crop per
    batch); det: PaddleX's single-model resize (long side <= 960), one image per batch; a classifier (``spec`` with
    ``classes``): its zoo preprocessing (= PaddleX's classifier predictor), in batches, and with ``turned`` each
    image also turned through every class's angle (90° steps: 180° for text lines, 90/180/270° for pages)."""
    from workbench.data.preprocess import (
        ClsPreprocess, DetResize, preprocess_det, resize_norm_rec, resize_norm_rec_fixed,
    )

    if spec is not None and spec.classes is not None:
        prep = ClsPreprocess.from_spec(spec.preprocess)
        steps = [0, 2] if len(spec.classes) == 2 else [0, 1, 2, 3]
        arrays = [prep(np.ascontiguousarray(np.rot90(image, k))) for image in images
                  for k in (steps if turned else [0])]
        return [np.stack(arrays[i:i + batch_size]) for i in range(0, len(arrays), batch_size)]
    if task == "rec":
        if pipeline:
            return [resize_norm_rec(image)[None] for image in images]
        arrays = [resize_norm_rec_fixed(image)[0] for image in images]
        return [np.stack(arrays[i:i + batch_size]) for i in range(0, len(arrays), batch_size)]
    resize = DetResize.paddlex_module()
    return [preprocess_det(image, resize)[0][None] for image in images]
