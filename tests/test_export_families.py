"""Every official family's export is accepted by PaddleX under its registered name and computes what our model
computes: the export path of `wb export` (fuse, ``paddle.jit.save``, ``inference.yml``) on a model with deterministic
weights, then ``paddlex.create_model(<name>, model_dir=...)`` on real ../shared images and crops, compared by the
verification code `wb export` uses (inputs, det maps + boxes, rec probabilities + texts).

The trained end-to-end paths (`wb export` from real runs, the PaddleX pipeline and the `paddleocr` CLI) are
``test_export_end_to_end.py`` (v5 families' test configs) and ``test_export_end_to_end_v6.py`` (PP-OCRv6). Here one
model per family: the det and rec graphs of PP-OCRv3 mobile, PP-OCRv4 server, PP-OCRv5 per-language, PP-OCRv6.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import paddle
import pytest

from workbench.models import zoo
from workbench.models.synthetic_weights import apply_synthetic_state, calibrate_running_stats

pytest.importorskip("paddlex")

FAMILIES = [
    pytest.param("PP-OCRv3_mobile_det", id="PP-OCRv3_mobile_det"),
    pytest.param("en_PP-OCRv3_mobile_rec", id="en_PP-OCRv3_mobile_rec"),
    pytest.param("PP-OCRv4_server_det", marks=pytest.mark.slow, id="PP-OCRv4_server_det"),
    pytest.param("PP-OCRv4_server_rec", marks=pytest.mark.slow, id="PP-OCRv4_server_rec"),
    pytest.param("korean_PP-OCRv5_mobile_rec", id="korean_PP-OCRv5_mobile_rec"),
    pytest.param("PP-OCRv6_small_det", id="PP-OCRv6_small_det"),
    pytest.param("PP-OCRv6_medium_rec", marks=pytest.mark.slow, id="PP-OCRv6_medium_rec"),
]


def _images(data_dir: Path, folder: str, lines) -> list[Path]:
    rows = (data_dir / folder / "label.txt").read_text(encoding="utf-8").splitlines()
    return [data_dir / folder / rows[i].split("\t", 1)[0] for i in lines]


@pytest.mark.parametrize("name", FAMILIES)
def test_export_is_accepted_by_paddlex_and_matches(name, data_dir, fixtures_dir, tmp_path):
    from workbench.data.charset import Charset
    from workbench.data.images import read_image
    from workbench.data.preprocess import DetResize, normalize_det, preprocess_rec_batch
    from workbench.export import inference_yml, pipeline_yaml, verify
    from workbench.export.inference_model import ExportSource, save_inference_model
    from workbench.export.verify.ours import StageCheck, Workbench
    from workbench.export.verify.stages import verify_files, verify_modules
    from workbench.tasks.det_export import det_inference_config
    from workbench.tasks.rec_export import rec_inference_config

    spec = zoo.get_spec(name)
    charset = Charset.from_file(fixtures_dir / "parity" / "ppocrv5_en_dict.txt") if spec.task == "rec" else None
    paddle.seed(0)
    model = zoo.build_model(name, **({"charset": charset} if charset else {}))
    apply_synthetic_state(model, seed=3)
    # BN statistics of real inputs, so that the maps / probabilities are not degenerate
    if spec.task == "det":
        calib = normalize_det(DetResize(limit_side_len=320, limit_type="max")(
            read_image(_images(data_dir, "icdar2015_det", [5])[0]))[0], arithmetic="paddlex")[None]
        calibrate_running_stats(model, calib)
    else:
        crops = [read_image(p) for p in _images(data_dir, "icdar2015_rec", range(40, 48))]
        calibrate_running_stats(model, preprocess_rec_batch(crops, spec.image_shape),
                                forward=lambda m, x: m.head.ctc_head(m.head.ctc_encoder(m.backbone(x))))
    checkpoint = SimpleNamespace(path=tmp_path, meta={}, state=SimpleNamespace(global_step=0))
    source = ExportSource(task=spec.task, checkpoint=checkpoint, model_name=name, paddlex_name=spec.paddlex_name,
                          arch={}, state_dict=dict(model.state_dict()), weights_file="synthetic", charset=charset,
                          image_shape=spec.image_shape or (3, 48, 320))
    folder = tmp_path / "export"
    save_inference_model(source, folder / spec.task)
    if spec.task == "det":
        content = det_inference_config(spec.paddlex_name, preprocess=dict(spec.preprocess),
                                       postprocess=zoo.det_postprocess(name))
    else:
        content = rec_inference_config(spec.paddlex_name, image_shape=spec.image_shape,
                                       characters=charset.characters)
    inference_yml.write_inference_yml(folder / spec.task, content)

    report = verify.Report(verify.Tolerances())
    wb = Workbench({spec.task: source})
    verify_files(report, folder, wb)
    engine = (pipeline_yaml.PADDLE_RUN_MODE if spec.task == "det"
              and pipeline_yaml.graph_needs_paddle_run_mode(folder / "det") else None)
    big = name == "PP-OCRv4_server_det"  # 28 M parameters at 960 px, run twice (float32 and float64): one image
    probes = verify.Probes(images=_images(data_dir, "icdar2015_det", [0]) + ([] if big else _images(
        data_dir, "sroie_det", [1])), crops=_images(data_dir, "icdar2015_rec", range(0, 4)))
    verify_modules(StageCheck(report, "module", wb, verify.Tolerances()), folder, probes, "cpu",
                   {"det": engine} if engine else None)
    stages = {c.stage for c in report.checks}
    assert {"files", "module"} <= stages
    assert report.passed, [(c.item, c.what, c.value, c.limit) for c in report.failures()]
    if spec.task == "det":
        maps = [c for c in report.checks if c.what == "det probability map max abs diff"]
        assert len(maps) == len(probes.images)
    else:
        texts = [c for c in report.checks if c.what == "rec text (ours vs PaddleX)"]
        assert len(texts) == 4 and np.all([c.passed for c in texts])
