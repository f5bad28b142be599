"""Export coverage follows the zoo: every model of ``zoo.list_models()`` with a PaddleX name is exported here, so a new
model adds its own case. The export path of `wb export` (fuse, ``paddle.jit.save``, ``inference.yml`` from the task's
export writer) runs on a model with deterministic weights, then:

* every model (cheap): ``inference.yml`` names a model the installed PaddleX registers for that task
  (``Global.model_name`` = the zoo's ``paddlex_name``), the export's file checks pass (rec: the dictionary line for
  line; classifiers: label list and resize), and Paddle Inference loads the saved graph and runs it, its output
  within 1e-3 of our model's;
* one representative per (family, task), chosen from the zoo (:data:`REPRESENTATIVES`, so a new family gets one):
  ``paddlex.create_model(<name>, model_dir=...)`` on real ../shared images and crops, compared with our model by the
  verification code `wb export` uses (inputs, det maps + boxes, rec probabilities + texts, classifier probabilities
  + classes).

The trained end-to-end paths (`wb export` from real runs, the PaddleX pipeline and the `paddleocr` CLI) are
``test_export_end_to_end.py`` (v5 families' test configs), ``test_export_end_to_end_v6.py`` (PP-OCRv6) and
``test_orientation_export.py``.

Measured (2-core VM with a benchmark running, ``nice -n 19``): the PaddleX module check of every model would cost
435 s (0.4-11 s a model; 45-126 s each for the server / medium detectors on two full pages), far over the ~120 s
this file may add, hence the representatives. This file: 306 s in all. The 25 representatives took 236 s (the 6
server / medium ones 112 s, their det on one page scaled to 320 px), the 16 other models' export checks 70 s
(0.4-9 s each).
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

#: every zoo model that exports under a PaddleX name
EXPORTED = [name for name in zoo.list_models() if zoo.get_spec(name).paddlex_name]


def _representatives() -> dict[tuple[str, str], str]:
    """(family, task) -> the model whose export is run in PaddleX: an official one (its name is its PaddleX name)
    where the group has one, else the first by name."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name in EXPORTED:
        spec = zoo.get_spec(name)
        groups.setdefault((spec.family, spec.task), []).append(name)
    return {key: min(names, key=lambda n: (zoo.get_spec(n).paddlex_name != n, n)) for key, names in groups.items()}


REPRESENTATIVES = _representatives()
_IN_PADDLEX = set(REPRESENTATIVES.values())
# Large graphs (tens of millions of parameters): the PaddleX check runs one det image, and the case is marked slow.
_BIG_FAMILIES = ("server", "medium")


def _is_big(name: str) -> bool:
    return zoo.get_spec(name).family.endswith(_BIG_FAMILIES)


def _case(name: str):
    marks = [pytest.mark.slow] if name in _IN_PADDLEX and _is_big(name) else []
    return pytest.param(name, marks=marks, id=name + ("-paddlex" if name in _IN_PADDLEX else ""))


def _registered(task: str) -> set[str]:
    """The model names the installed PaddleX registers for a task's module."""
    module = {"det": "text_detection", "rec": "text_recognition"}.get(task, "image_classification")
    return set(pytest.importorskip(f"paddlex.modules.{module}.model_list").MODELS)


def _images(data_dir: Path, folder: str, lines) -> list[Path]:
    rows = (data_dir / folder / "label.txt").read_text(encoding="utf-8").splitlines()
    return [data_dir / folder / rows[i].split("\t", 1)[0] for i in lines]


def test_every_family_and_task_has_a_representative():
    assert set(REPRESENTATIVES) == {(zoo.get_spec(n).family, zoo.get_spec(n).task) for n in EXPORTED}
    assert len(_IN_PADDLEX) == len(REPRESENTATIVES)
    assert {"PP-OCRv5_mobile_rec", "PP-OCRv6_small_det", "PP-LCNet_x1_0_doc_ori", "rec_tiny"} <= _IN_PADDLEX


def _small_page(path: Path, folder: Path, long_side: int = 320) -> Path:
    """A real page scaled to a long side of 320 (the size the BatchNorm statistics are calibrated at): the det check
    of the large models, whose float64 reference run costs most of their time."""
    import cv2

    from workbench.data.images import read_image

    image = read_image(path)
    scale = long_side / max(image.shape[:2])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    out = folder / f"small_{path.stem}.png"
    cv2.imwrite(str(out), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    return out


def _calibrate(model, spec, data_dir: Path) -> None:
    """BatchNorm statistics of real inputs, so that maps / probabilities are not degenerate."""
    from workbench.data.images import read_image
    from workbench.data.preprocess import ClsPreprocess, DetResize, normalize_det, preprocess_rec_batch

    if spec.task == "det":
        page = read_image(_images(data_dir, "icdar2015_det", [5])[0])
        calibrate_running_stats(model, normalize_det(DetResize(limit_side_len=320, limit_type="max")(page)[0],
                                                     arithmetic="paddlex")[None])
    elif spec.task == "rec":
        crops = [read_image(p) for p in _images(data_dir, "icdar2015_rec", range(40, 48))]
        head = model.head
        ctc = (lambda m, x: m.head.ctc_head(m.head.ctc_encoder(m.backbone(x)))) if hasattr(head, "ctc_encoder") \
            else None
        calibrate_running_stats(model, preprocess_rec_batch(crops, spec.image_shape), forward=ctc)
    else:
        folder = "icdar2015_rec" if spec.task == "textline_ori" else "icdar2015_det"
        samples = [read_image(p) for p in _images(data_dir, folder, range(0, 4))]
        calibrate_running_stats(model, ClsPreprocess.from_spec(spec.preprocess).batch(samples))


def _run_saved_graph(model_dir: Path, x: np.ndarray) -> np.ndarray:
    """The saved graph in Paddle Inference (the engine PaddleX's ``paddle`` run mode uses), on CPU."""
    graph = next(model_dir / f for f in ("inference.json", "inference.pdmodel") if (model_dir / f).is_file())
    config = paddle.inference.Config(str(graph), str(model_dir / "inference.pdiparams"))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(1)
    config.switch_ir_optim(False)  # loading and running the graph is the point here, not its optimisation passes
    predictor = paddle.inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


@pytest.mark.parametrize("name", [_case(n) for n in EXPORTED])
def test_export_loads_under_its_paddlex_name(name, data_dir, fixtures_dir, tmp_path):
    from workbench.data.charset import Charset
    from workbench.export import inference_yml, pipeline_yaml, verify
    from workbench.export.inference_model import ExportSource, save_inference_model
    from workbench.export.verify.ours import StageCheck, Workbench
    from workbench.export.verify.stages import verify_files, verify_modules

    spec = zoo.get_spec(name)
    in_paddlex = name in _IN_PADDLEX
    # rec: any dictionary sizes the head; the en one of the fixtures (its characters go into inference.yml)
    charset = Charset.from_file(fixtures_dir / "parity" / "ppocrv5_en_dict.txt") if spec.task == "rec" else None
    paddle.seed(0)
    model = zoo.build_model(name, **({"charset": charset} if charset else {}))
    if in_paddlex:
        apply_synthetic_state(model, seed=3)
        _calibrate(model, spec, data_dir)
    checkpoint = SimpleNamespace(path=tmp_path, meta={}, state=SimpleNamespace(global_step=0))
    source = ExportSource(task=spec.task, checkpoint=checkpoint, model_name=name, paddlex_name=spec.paddlex_name,
                          arch={}, state_dict=dict(model.state_dict()), weights_file="synthetic", charset=charset,
                          image_shape=tuple(spec.image_shape or (3, 48, 320)))
    folder = tmp_path / "export"
    save_inference_model(source, folder / spec.task)
    settings = {**zoo.det_postprocess(name), "score_mode": "fast"} if spec.task == "det" else {}
    inference_yml.write_inference_yml(folder / spec.task, source.writer.inference_config(source, settings))

    # cheap: the name PaddleX will look up, the files, and the graph in Paddle Inference
    assert inference_yml.model_name_of(folder / spec.task) == spec.paddlex_name
    assert spec.paddlex_name in _registered(spec.task), (spec.paddlex_name, spec.task)
    report = verify.Report(verify.Tolerances())
    wb = Workbench({spec.task: source})
    verify_files(report, folder, wb)
    assert report.passed, [(c.item, c.what, c.value, c.limit) for c in report.failures()]
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64) if spec.task == "det" else (1, *source.image_shape))
    x = x.astype(np.float32)
    out = _run_saved_graph(folder / spec.task, x)
    with paddle.no_grad():
        ours = wb.models[spec.task](paddle.to_tensor(x)).numpy()
    width = {"det": 1, "rec": charset.num_ctc_classes if charset else 0}.get(spec.task, len(spec.classes or ()))
    assert out.shape == ours.shape and out.shape[0] == 1 and out.shape[-1 if spec.task != "det" else 1] == width
    # probabilities: the fused graph computes what the training graph does (measured: at most 1.5e-4 apart)
    np.testing.assert_allclose(out, ours, rtol=0, atol=1e-3)
    if not in_paddlex:
        return

    # one per (family, task): PaddleX's own module on real images and crops, against our model
    engine = (pipeline_yaml.PADDLE_RUN_MODE if spec.task == "det"
              and pipeline_yaml.graph_needs_paddle_run_mode(folder / "det") else None)
    images = _images(data_dir, "icdar2015_det", [0]) + _images(data_dir, "sroie_det", [1])
    if _is_big(name):  # tens of millions of parameters, run by PaddleX and by us in float32 and float64
        images = [_small_page(images[0], tmp_path)]
    upright = {"textline_ori": _images(data_dir, "icdar2015_rec", range(0, 2)),
               "doc_ori": _images(data_dir, "icdar2015_det", [0])}
    probes = verify.Probes(images=images, crops=_images(data_dir, "icdar2015_rec", range(0, 4)),
                           upright={spec.task: upright[spec.task]} if spec.task in upright else {})
    verify_modules(StageCheck(report, "module", wb, verify.Tolerances()), folder, probes, "cpu",
                   {"det": engine} if engine else None)
    assert {"files", "module"} <= {c.stage for c in report.checks}
    assert report.passed, [(c.item, c.what, c.value, c.limit) for c in report.failures()]
    if spec.task == "det":
        maps = [c for c in report.checks if c.what == "det probability map max abs diff"]
        assert len(maps) == len(probes.images)
    elif spec.task == "rec":
        texts = [c for c in report.checks if c.what == "rec text (ours vs PaddleX)"]
        assert len(texts) == 4 and np.all([c.passed for c in texts])
    else:
        module = [c for c in report.checks if c.stage == "module"]
        assert module and all(c.passed for c in module)
