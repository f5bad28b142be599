"""Export verification's float32-noise bound (``workbench.export.verify.ours.Workbench``): wide enough for the graph
export writes (fused re-param layers, folded BatchNorms), too narrow for a fusion bug. The bound comes from the
workbench model alone (its float32 error and its responses to one-ulp input and weight perturbations), so a wrong
exported graph cannot widen it."""

from __future__ import annotations

import cv2
import numpy as np
import paddle

from workbench.data.preprocess import normalize_det
from workbench.export.inference_model import build_model, load_export_source
from workbench.export.verify.ours import Workbench, max_diff
from workbench.export.verify.report import Tolerances
from workbench.models.rep import fuse_for_inference


def _page(shared_dir) -> np.ndarray:
    label = shared_dir / "data" / "icdar2015_det" / "label.txt"
    image = cv2.imread(str(label.parent / label.read_text(encoding="utf-8").split("\t", 1)[0]))
    return normalize_det(cv2.resize(image, (640, 352)), arithmetic="paddlex")[None].astype(np.float32)


def _fused_map(source, x, scale_param: str | None = None) -> np.ndarray:
    # as save_inference_model does
    model = fuse_for_inference(build_model(source), drop_training_branches=True, fold_for_deployment=True)
    if scale_param is not None:
        param = dict(model.named_parameters())[scale_param]
        param.set_value(param.numpy() * 1.01)
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def test_fused_graph_within_the_bound_a_one_percent_fusion_bug_outside(tiny_det_run, shared_dir):
    source = load_export_source(tiny_det_run, "det")
    wb = Workbench({"det": source})
    x = _page(shared_dir)
    ours, noise = wb.det_map(x)
    tol = Tolerances()
    limit = max(tol.det_map_atol, tol.noise_factor * noise)

    exact = wb._f64["det"](paddle.to_tensor(x.astype(np.float64))).numpy()
    assert noise >= max_diff(ours, exact) > 0  # at least our own float32 error

    assert max_diff(_fused_map(source, x), ours) <= limit
    # one folded conv of the backbone 1 % off: what a BatchNorm folded with a wrong scale would give
    assert max_diff(_fused_map(source, x, "backbone.blocks6.3.pw_conv.reparam_conv.weight"), ours) > 10 * limit
