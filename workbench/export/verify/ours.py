"""The workbench's side and the comparisons: our predictions (:class:`Workbench`) against what PaddleX got and gave
(:class:`TheirDet`, :class:`TheirRec`), each comparison recorded through a :class:`StageCheck`.

Part of ``workbench.export.verify`` (see its docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.export.verify.report import Report, Tolerances


class Workbench:
    """The workbench's own predictions for the exported modules (training graph, unfused, dynamic mode).

    ``det_map`` / ``rec_probs`` / ``cls_probs`` also return how far float32 rounding alone moves that prediction
    (:meth:`_run`), which sets how close two float32 graphs of the same weights can be expected to be.
    ``sources``: the exported modules by task (``ExportSource``).
    """

    def __init__(self, sources: dict):
        from workbench.export.inference_model import build_model

        self.sources = dict(sources)
        self.models = {task: build_model(source) for task, source in self.sources.items()}
        self._f64: dict = {}
        self._rounded: dict = {}
        self.decoder = None
        if self.rec_source is not None:
            from workbench.postprocess.ctc import CTCDecoder

            self.decoder = CTCDecoder(self.rec_source.charset.characters, use_space_char=True)

    # the OCR pipeline's two stages: detection on images, recognition on the crops it cuts
    @property
    def det_source(self):
        return self.sources.get("det")

    @property
    def rec_source(self):
        return self.sources.get("rec")

    def det_input(self, image: np.ndarray, resize) -> tuple[np.ndarray, Any]:
        from workbench.data.preprocess import normalize_det

        resized, shape = resize(image)
        return normalize_det(resized, arithmetic="paddlex")[None], shape

    def _run(self, task: str, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Our prediction on ``x`` and its float32 noise: the largest of its float32 error (max abs difference to
        the same model run in float64, built on first use), its response to a random one-ulp perturbation of
        ``x``, and its response to a random one-ulp perturbation of every weight (max abs differences). The last
        two stand in for the exported graph's own rounding, which no float64 run shows: its BatchNorms and
        branches are folded into rounded float32 weights, and PaddleX's default oneDNN kernels order sums
        differently again. Measured on a 4-step test det model (1280x704 page): our float32 error 1.2e-3, the
        exported graph's in PaddleX (oneDNN) 9.0e-3, one-ulp input response 4.0e-3. On the Xeon of 2026-12-05 the
        tiny test rec model's fused graph was 1.19e-4 from ours, against 2.6e-5 float32 error / input response
        and 5.3e-5 weight response. All three depend on the model only, never on the exported graph, so an
        export bug cannot widen its own bound."""
        import paddle

        from workbench.export.inference_model import build_model

        if task not in self._f64:
            self._f64[task] = float64_copy(build_model(self.sources[task]))
            self._rounded[task] = _weights_moved_one_ulp(build_model(self.sources[task]))
        jitter = np.random.default_rng(0).uniform(-1.0, 1.0, x.shape) * np.finfo(np.float32).eps
        with paddle.no_grad():
            out = self.models[task](paddle.to_tensor(x)).numpy()
            exact = self._f64[task](paddle.to_tensor(x.astype(np.float64))).numpy()
            jittered = self.models[task](paddle.to_tensor((x * (1.0 + jitter)).astype(np.float32))).numpy()
            rounded = self._rounded[task](paddle.to_tensor(x)).numpy()
        return out, max(max_diff(out, exact), max_diff(out, jittered), max_diff(out, rounded))

    def det_map(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        return self._run("det", x)

    def rec_input(self, crops: list[np.ndarray]) -> np.ndarray:
        from workbench.data.preprocess import preprocess_rec_batch

        return preprocess_rec_batch(crops, self.rec_source.image_shape)

    def rec_probs(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        return self._run("rec", x)

    # the orientation modules: classifiers of crops (text lines) or pages (documents)
    def classifiers(self) -> list[str]:
        """The exported tasks whose model is a classifier (its zoo row has ``classes``)."""
        from workbench.models import zoo

        return [t for t, s in self.sources.items() if zoo.get_spec(s.model_name).classes is not None]

    def cls_input(self, task: str, images: list[np.ndarray]) -> np.ndarray:
        from workbench.data.preprocess import ClsPreprocess
        from workbench.models import zoo

        return ClsPreprocess.from_spec(zoo.get_spec(self.sources[task].model_name).preprocess).batch(images)

    def cls_probs(self, task: str, x: np.ndarray) -> tuple[np.ndarray, float]:
        return self._run(task, x)


def float64_copy(model):
    """``model`` (changed in place) cast to float64 for evaluation: its training-only branches go first -- eval
    never runs them, and an LSTM cannot be cast."""
    for layer in model.sublayers(include_self=True):
        drop = getattr(layer, "drop_training_branches", None)
        if callable(drop):
            drop()
    return model.to(dtype="float64")


def _weights_moved_one_ulp(model):
    """``model`` with every float32 weight and buffer moved by a random (seeded) fraction of one ulp: what folding
    BatchNorms and re-param branches into rounded float32 weights does to the exported graph."""
    import paddle

    rng = np.random.default_rng(1)
    for value in model.state_dict().values():
        if value.dtype == paddle.float32:
            v = value.numpy()
            value.set_value((v * (1.0 + rng.uniform(-1.0, 1.0, v.shape) * np.finfo(np.float32).eps)).astype(np.float32))
    return model


@dataclass
class StageCheck:
    """Where the comparisons of one stage go: the report, the stage's name, our side and the tolerances."""

    report: Report
    stage: str
    wb: Workbench
    tol: Tolerances

    def add(self, item: str, what: str, value, limit, passed: bool, detail: str = ""):
        return self.report.add(self.stage, item, what, value, limit, passed, detail)


@dataclass
class TheirDet:
    """What PaddleX's detection model got and gave for one image: input tensor, probability map, boxes, scores."""

    x: Any
    prob_map: Any
    polys: Any
    scores: Any


@dataclass
class TheirRec:
    """What PaddleX's recognition model got and gave for one batch of crops: input, probabilities, texts, scores."""

    x: Any
    probs: Any
    texts: list
    scores: list


@dataclass
class TheirCls:
    """What PaddleX's classifier (an orientation module) got and gave for one batch: input, probabilities, class
    ids."""

    x: Any
    probs: Any
    class_ids: list


@dataclass
class DetSteps:
    """How our side turns an image into boxes at this stage: the resize and the DB post-process."""

    resize: Any  # workbench.data.preprocess.DetResize
    post: Any  # workbench.postprocess.db.DBPostProcess


def max_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max()) if a.size else 0.0


def quads(polys) -> np.ndarray:
    arr = np.asarray(polys if len(polys) else np.zeros((0, 4, 2)), dtype=np.float64)
    return arr.reshape(-1, 4, 2)


def compare_boxes(check: StageCheck, item: str, ours: tuple, theirs: tuple) -> None:
    """``ours`` / ``theirs``: (boxes, box scores)."""
    tol = check.tol
    a, b = quads(ours[0]), quads(theirs[0])
    check.add(item, "det box count (ours vs PaddleX)", f"{len(a)} vs {len(b)}", "equal", len(a) == len(b))
    if len(a) == len(b) and len(a):
        d = float(np.abs(a - b).max())
        check.add(item, "det box vertices max abs diff (px)", d, tol.box_px, d <= tol.box_px)
        s = max_diff(ours[1], theirs[1])
        check.add(item, "det box scores max abs diff", s, tol.score_atol, s <= tol.score_atol)


def compare_det(check: StageCheck, item: str, image: np.ndarray, steps: DetSteps, theirs: TheirDet) -> None:
    """One image: the model input, the probability map, the boxes."""
    wb, tol = check.wb, check.tol
    ours_x, shape = wb.det_input(image, steps.resize)
    d_in = max_diff(ours_x, theirs.x)
    check.add(item, "det input max abs diff", d_in, tol.input_atol, d_in <= tol.input_atol,
              f"shape ours {list(ours_x.shape)} PaddleX {list(np.shape(theirs.x))}")
    prob, f32_noise = wb.det_map(ours_x)
    d = max_diff(prob, theirs.prob_map)
    limit = max(tol.det_map_atol, tol.noise_factor * f32_noise)
    check.add(item, "det probability map max abs diff", d, limit, d <= limit,
              f"float32 noise of our model {f32_noise:.2e}")
    (polys, scores), = steps.post(prob, shape.as_array()[None])
    if len(quads(polys)) != len(quads(theirs.polys)) and d <= limit:
        # Maps equal within float noise can still differ by a box whose score or region sits at a threshold (a
        # briefly trained model has many). Then the post-processing is what to compare: ours on PaddleX's map
        # must give PaddleX's boxes exactly.
        (polys_on_theirs, scores_on_theirs), = steps.post(np.asarray(theirs.prob_map), shape.as_array()[None])
        if len(quads(polys_on_theirs)) == len(quads(theirs.polys)):
            check.add(item, "det boxes from our map (a box at a threshold)",
                      f"{len(quads(polys))} vs {len(quads(theirs.polys))}", "maps within noise", True,
                      "our post-process on PaddleX's map gives its boxes (compared below)")
            polys, scores = polys_on_theirs, scores_on_theirs
    compare_boxes(check, item, (polys, scores), (theirs.polys, theirs.scores))


def _margin(probs: np.ndarray) -> float:
    """Smallest gap between the two most likely classes over all steps (small: a tie float noise can flip)."""
    top2 = np.sort(probs, axis=-1)[..., -2:]
    return float((top2[..., 1] - top2[..., 0]).min()) if probs.size else float("inf")


def _text_agreement(ours: str, theirs: str, p_ours: np.ndarray, p_theirs: np.ndarray) -> tuple[bool, str]:
    """Texts must be identical. The one exception is a *numerical tie*: the two argmax paths differ only at
    steps where our two most likely classes are closer than twice the probability difference between the two
    graphs there — rounding decides such a step, in either graph (our own float32 run is no more "right" there).
    Anything else is a mismatch."""
    gap = f"smallest top-2 probability gap {_margin(p_ours):.1e}"
    if ours == theirs:
        return True, gap
    if p_ours.shape != p_theirs.shape:
        return False, f"ours {ours!r} vs PaddleX {theirs!r}; output shapes differ"
    steps = np.nonzero(p_ours.argmax(-1) != p_theirs.argmax(-1))[0]
    if not len(steps):
        return False, f"ours {ours!r} vs PaddleX {theirs!r} from the same argmax path: the decoders differ"
    top2 = np.sort(p_ours[steps], axis=-1)[:, -2:]
    gaps = top2[:, 1] - top2[:, 0]
    bound = 2 * np.abs(p_ours[steps] - p_theirs[steps]).max(axis=-1)
    where = ", ".join(f"step {s}: gap {g:.1e} vs 2x diff {b:.1e}" for s, g, b in zip(steps, gaps, bound))
    if np.all(gaps <= bound):
        return True, f"numerical tie (ours {ours!r}, PaddleX {theirs!r}) at {where}"
    return False, f"ours {ours!r} vs PaddleX {theirs!r}; argmax differs at {where}"


def compare_rec_batch(check: StageCheck, items: list[str], ours_x: np.ndarray, theirs: TheirRec
                      ) -> list[tuple[str, float]]:
    """Compare one rec batch; returns our decoded (text, score) per crop."""
    wb, tol = check.wb, check.tol
    label = items[0] if len(items) == 1 else f"{items[0]} … {items[-1]} ({len(items)} crops)"
    d_in = max_diff(ours_x, theirs.x)
    check.add(label, "rec input max abs diff", d_in, tol.input_atol, d_in <= tol.input_atol,
              f"shape ours {list(np.shape(ours_x))} PaddleX {list(np.shape(theirs.x))}")
    probs, f32_noise = wb.rec_probs(ours_x)
    d = max_diff(probs, theirs.probs)
    limit = max(tol.rec_prob_atol, tol.noise_factor * f32_noise)
    check.add(label, "rec probabilities max abs diff", d, limit, d <= limit,
              f"float32 noise of our model {f32_noise:.2e}")
    decoded = wb.decoder(probs)
    for i, (item, (text, score)) in enumerate(zip(items, decoded)):
        ok, detail = _text_agreement(text, theirs.texts[i], probs[i], np.asarray(theirs.probs)[i])
        check.add(item, "rec text (ours vs PaddleX)", text, theirs.texts[i], ok, detail)
        ds = abs(float(score) - float(theirs.scores[i]))
        check.add(item, "rec score abs diff", ds, tol.score_atol, ds <= tol.score_atol)
    return decoded


def compare_cls_batch(check: StageCheck, task: str, items: list[str], images: list[np.ndarray], theirs: TheirCls
                      ) -> list[int]:
    """Compare one batch of an orientation module: input, probabilities and the decided class of every image
    (identical, or a numerical tie: our top two classes closer than twice the probability difference).
    Returns our decided classes."""
    wb, tol = check.wb, check.tol
    label = items[0] if len(items) == 1 else f"{items[0]} … {items[-1]} ({len(items)} images)"
    ours_x = wb.cls_input(task, images)
    d_in = max_diff(ours_x, theirs.x)
    check.add(label, f"{task} input max abs diff", d_in, tol.input_atol, d_in <= tol.input_atol,
              f"shape ours {list(ours_x.shape)} PaddleX {list(np.shape(theirs.x))}")
    probs, f32_noise = wb.cls_probs(task, ours_x)
    d = max_diff(probs, theirs.probs)
    limit = max(tol.rec_prob_atol, tol.noise_factor * f32_noise)
    check.add(label, f"{task} probabilities max abs diff", d, limit, d <= limit,
              f"float32 noise of our model {f32_noise:.2e}")
    decided = [int(i) for i in probs.argmax(-1)]
    for i, item in enumerate(items):
        theirs_id = int(theirs.class_ids[i])
        top2 = np.sort(probs[i])[-2:]
        tie = (top2[1] - top2[0]) <= 2 * d
        ok = decided[i] == theirs_id or bool(tie)
        detail = "" if decided[i] == theirs_id else f"numerical tie (gap {top2[1] - top2[0]:.1e})" if tie else ""
        check.add(item, f"{task} class (ours vs PaddleX)", decided[i], theirs_id, ok, detail)
    return decided
