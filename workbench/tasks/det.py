"""Text detection as a trainer Task: DB training, evaluation that predicts the deployed pipeline.

Where each piece comes from:
    data         workbench.data.det.DetDataset (label files, policy) + the demo set (workbench.data.synth)
    transforms   workbench.data.augment (flip/rotate/scale/crop) → workbench.data.db_targets → ImageNet normalise
    model, loss  workbench.models.zoo, workbench.losses.db.DBLoss
    evaluation   workbench.data.preprocess.DetResize (pipeline's or upstream's resizing)
                 → workbench.postprocess.db.DBPostProcess (= PaddleX's) → workbench.metrics.det.DetEvaluator
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from workbench.config.schema import DetEvalConfig, TrainConfig
from workbench.data.check.det import DetLabelCheck
from workbench.errors import ConfigError
from workbench.engine.task import EvalResult, WeightsReport
from workbench.tasks.common import LabelFileTask
from workbench.tasks.det_export import DetExportWriter
from workbench.tasks.entry import TaskEntry

log = logging.getLogger("workbench.det")


class DetTrainTransform:
    """Augment (flip, rotate, scale, text-keeping 640 crop), build DB targets, normalise like upstream training."""

    def __init__(self, augment, targets):
        self.augment = augment
        self.targets = targets

    @property
    def ext_data_num(self) -> int:
        return self.augment.ext_data_num

    def __call__(self, data: dict, rng: Optional[np.random.Generator] = None) -> dict:
        from workbench.data.preprocess import normalize_det

        data = self.augment(data, rng=rng)
        data = self.targets(data)
        data["image"] = normalize_det(data["image"], arithmetic="upstream")
        return data


def det_resize(cfg: DetEvalConfig, mode: str, upstream: Optional[dict] = None):
    """``pipeline``: the pipeline YAML's limits (``eval.det``); ``upstream``: the model config's training-time
    evaluation resize (``ModelSpec.upstream_eval_resize``; default short side >= 736)."""
    from workbench.data.preprocess import DetResize

    if mode == "pipeline":
        return DetResize(limit_side_len=cfg.limit_side_len, limit_type=cfg.limit_type, max_side_limit=cfg.max_side_limit)
    if mode == "upstream":
        return DetResize(**upstream) if upstream else DetResize.upstream_eval()
    raise ConfigError(f"eval.det.resize_mode={mode!r}: choose pipeline or upstream")


class DetEvalTransform:
    """Resize as the chosen mode (and, optionally, the other mode too), normalise like PaddleX's predictor."""

    def __init__(self, resizes: dict):
        self.resizes = resizes  # {"main": DetResize, "alt": DetResize?}

    def __call__(self, data: dict, rng=None) -> dict:
        from workbench.data.preprocess import normalize_det

        image = data.pop("image")
        data["height"], data["width"] = image.shape[:2]
        for key, resize in self.resizes.items():
            resized, shape = resize(image)
            data[f"image_{key}"] = normalize_det(resized, arithmetic="paddlex")
            data[f"shape_{key}"] = np.array([shape.src_h, shape.src_w, shape.ratio_h, shape.ratio_w])
        return data


class DetTask(LabelFileTask):
    name = "det"
    sample_unit = "images"

    def __init__(self, cfg: TrainConfig):
        if cfg.data.eval_batch_size != 1:
            raise ConfigError("data.eval_batch_size must be 1 for detection (images keep their own sizes)")
        super().__init__(cfg)

    # --- model ---------------------------------------------------------------------------------------------
    def build_model(self):
        from workbench.models import zoo

        return zoo.build_model(self.cfg.model.name, **dict(self.cfg.model.arch))

    def load_initial_weights(self, model) -> WeightsReport:
        return self.load_pretrained(model)

    # --- data ----------------------------------------------------------------------------------------------
    def build_dataset(self, files, *, train: bool):
        from workbench.data.det import DetDataset

        d = self.cfg.data
        if train:
            from workbench.data.augment import build_det_augment
            from workbench.data.db_targets import DBTargets

            transform = DetTrainTransform(build_det_augment(dict(d.augment), seed=self.cfg.seed),
                                          DBTargets(**dict(d.targets)))
        else:
            e = self.cfg.eval.det
            upstream = dict(self.spec.upstream_eval_resize)
            resizes = {"main": det_resize(e, e.resize_mode, upstream)}
            if e.also_upstream_mode:
                resizes["alt"] = det_resize(e, "upstream" if e.resize_mode == "pipeline" else "pipeline", upstream)
            transform = DetEvalTransform(resizes)
        return DetDataset(files, transform, self.policy, root=d.root, seed=self.cfg.seed, shuffle=False)

    def collate_train(self, samples):
        from workbench.data.det import collate_det

        return collate_det(samples)

    collate_eval = collate_train

    @staticmethod
    def make_demo(demo):
        from workbench.data import synth

        return synth.generate_det_demo(demo.dir, demo.n_train, demo.n_val, demo.seed)

    def label_check(self):
        return DetLabelCheck(self.cfg.data.targets.get("min_text_size", 8))

    # --- training ------------------------------------------------------------------------------------------
    def build_loss(self):
        from workbench.losses.db import DBLoss

        return DBLoss(**dict(self.spec.loss))  # the official config's Loss section (v6: Dice + focal, aux weights)

    def training_step(self, model, loss_fn, batch):
        import paddle

        tensors = {k: paddle.to_tensor(batch[k]) for k in
                   ("image", "shrink_map", "shrink_mask", "threshold_map", "threshold_mask")}
        preds = model(tensors["image"])
        return loss_fn(preds, tensors), len(batch["image"])

    # --- evaluation ----------------------------------------------------------------------------------------
    def postprocess_settings(self) -> dict:
        """thresh / box_thresh / unclip_ratio / max_candidates: ``eval.det`` where set, else the model's defaults."""
        from workbench.models import zoo

        e = self.cfg.eval.det
        return zoo.det_postprocess(self.cfg.model.name, thresh=e.thresh, box_thresh=e.box_thresh,
                                   unclip_ratio=e.unclip_ratio, max_candidates=e.max_candidates)

    def postprocess(self):
        from workbench.postprocess.db import DBPostProcess

        e = self.cfg.eval.det
        return DBPostProcess(**self.postprocess_settings(), score_mode=e.score_mode, box_type=e.box_type)

    def predict(self, model, batch) -> list[dict]:
        import paddle

        post = self.postprocess()
        out = []
        for i in range(len(batch["index"])):
            rec = {
                "index": int(batch["index"][i]), "image_path": batch["path"][i], "label_file": batch["file"][i],
                "line": int(batch["line"][i]), "width": int(batch["width"][i]), "height": int(batch["height"][i]),
                "gt_polys": [np.asarray(p).tolist() for p in batch["polys"][i]], "gt_texts": list(batch["texts"][i]),
                "gt_ignore": [bool(t) for t in batch["ignore_tags"][i]],
            }
            for key, prefix in (("main", ""), ("alt", "alt_")):
                if f"image_{key}" not in batch:
                    continue
                prob = model(paddle.to_tensor(batch[f"image_{key}"][i : i + 1])).numpy()
                polys, scores = post(prob, batch[f"shape_{key}"][i : i + 1])[0]
                rec[f"{prefix}pred_polys"] = [np.asarray(p).tolist() for p in polys]
                rec[f"{prefix}pred_scores"] = [float(s) for s in scores]
            out.append(rec)
        return out

    def score(self, records: list[dict]) -> EvalResult:
        from workbench.metrics.det import DetEvaluator

        e = self.cfg.eval.det
        ev = DetEvaluator(iou_threshold=e.iou_thresh, matching=e.matching)
        for r in records:
            ev.update(r["gt_polys"], r["gt_ignore"], r["pred_polys"], r["pred_scores"], image_id=r["index"])
        metrics = ev.compute()
        rows = [{**r, **m} for r, m in zip(records, ev.records())]
        if records and "alt_pred_polys" in records[0]:
            alt = DetEvaluator(iou_threshold=e.iou_thresh, matching=e.matching)
            for r in records:
                alt.update(r["gt_polys"], r["gt_ignore"], r["alt_pred_polys"], r["alt_pred_scores"])
            alt_name = "upstream" if e.resize_mode == "pipeline" else "pipeline"
            metrics.update({f"{k}_{alt_name}_resize": v for k, v in alt.compute().items()
                            if k in ("precision", "recall", "hmean")})
        return EvalResult(metrics, rows)

    def write_report(self, result: EvalResult, out_dir: Path, info: Optional[dict] = None) -> list[Path]:
        from workbench.reports.det_report import write_det_report

        return write_det_report(result.records, result.metrics, out_dir, title=f"{self.cfg.model.name} detection",
                                info=info)

    # --- checkpoints ---------------------------------------------------------------------------------------
    def checkpoint_meta(self) -> dict:
        e = self.cfg.eval.det
        return {
            "task": self.name,
            "model_name": self.cfg.model.name,
            "arch": dict(self.cfg.model.arch),
            "postprocess": self.postprocess_settings(),
            "resize": {"limit_type": e.limit_type, "limit_side_len": e.limit_side_len,
                       "max_side_limit": e.max_side_limit},
        }


ENTRY = TaskEntry(
    name="det", title="text detection", task=DetTask, export_writer=DetExportWriter(), label_check=DetLabelCheck,
    pipeline_module="TextDetection", stock_model="PP-OCRv5_mobile_det", select_metric="hmean",
    recipe="det_finetune",
    # paddleocr 3.7 runs PP-OCRv6 medium by default: `stock-v6`; the other sizes are spelled out
    stock_variants={"stock-v5": "PP-OCRv5_mobile_det", "stock-v6": "PP-OCRv6_medium_det",
                    "stock-v6-medium": "PP-OCRv6_medium_det", "stock-v6-small": "PP-OCRv6_small_det",
                    "stock-v6-tiny": "PP-OCRv6_tiny_det"},
)
