"""What the two orientation tasks share (text lines: 0° / 180°; documents: 0° / 90° / 180° / 270°): a PP-LCNet
classifier trained with cross-entropy on orientation samples, scored by top-1 accuracy with a confusion table.

Where each piece comes from:
    data         workbench.data.orientation.OrientationDataset: class lists, or rec crops / det pages turned through
                 every class (see its docstring); the demo set is the rec / det demo generator's (turned likewise)
    transforms   OrientationAugment (no flips, small rotations) → workbench.data.preprocess.ClsPreprocess (PaddleX's
                 classifier preprocessing, from the model's zoo row; pages: a random crop in training)
    model, loss  workbench.models.zoo (models/classifiers/), workbench.losses.cls.ClassificationLoss
    evaluation   softmax → arg-max → workbench.metrics.cls.ClassificationMetric → reports/cls_report.py
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Optional

from workbench.config.schema import TrainConfig
from workbench.engine.task import EvalResult, WeightsReport
from workbench.errors import ConfigError
from workbench.tasks.common import LabelFileTask


class OrientationTask(LabelFileTask):
    """A classifier of which way is up. Subclasses set ``name``, ``classes`` (a
    ``workbench.data.orientation.OrientationClasses``), ``derive`` (the label formats whose upright images are
    turned into samples), ``label_check_class`` and ``make_demo``."""

    classes: ClassVar = None
    derive: ClassVar[tuple[str, ...]] = ()
    label_check_class: ClassVar[type] = None

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        from workbench.data.preprocess import ClsPreprocess

        if tuple(self.spec.classes or ()) != tuple(self.classes.names):
            raise ConfigError(f"model {cfg.model.name} classifies {self.spec.classes}, the {self.name} task needs "
                              f"{self.classes.names}")
        self.preprocess = ClsPreprocess.from_spec(self.spec.preprocess)

    # --- model ---------------------------------------------------------------------------------------------
    def build_model(self):
        from workbench.models import zoo

        return zoo.build_model(self.cfg.model.name, **dict(self.cfg.model.arch))

    def load_initial_weights(self, model) -> WeightsReport:
        return self.load_pretrained(model)

    # --- data ----------------------------------------------------------------------------------------------
    def build_dataset(self, files, *, train: bool):
        from workbench.data.orientation import (
            OrientationAugment, OrientationDataset, OrientationEvalTransform, OrientationTrainTransform,
        )

        d = self.cfg.data
        if train:
            transform = OrientationTrainTransform(self.preprocess, OrientationAugment.from_config(dict(d.augment)))
        else:
            transform = OrientationEvalTransform(self.preprocess)
        return OrientationDataset(files, self.classes, transform, self.policy, derive=self.derive,
                                  label_format=d.label_format, task=self.name, root=d.root, seed=self.cfg.seed,
                                  shuffle=False)

    def collate_train(self, samples):
        from workbench.data.orientation import collate_orientation

        return collate_orientation(samples)

    collate_eval = collate_train

    def label_check(self):
        return self.label_check_class(self.cfg.data.label_format)

    def summary_extras(self) -> dict:
        train, val = self.train_dataset(), self.val_dataset()
        return {"label_formats": {**train.formats, **(val.formats if val is not None else {})},
                "train_per_class": train.class_counts(),
                **({"val_per_class": val.class_counts()} if val is not None else {})}

    # --- training ------------------------------------------------------------------------------------------
    def build_loss(self):
        from workbench.losses.cls import ClassificationLoss

        return ClassificationLoss()

    def training_step(self, model, loss_fn, batch):
        import paddle

        logits = model(paddle.to_tensor(batch["image"]))
        return loss_fn(logits, {"label": paddle.to_tensor(batch["label"])}), len(batch["image"])

    # --- evaluation ----------------------------------------------------------------------------------------
    def predict(self, model, batch) -> list[dict]:
        import paddle

        probs = model(paddle.to_tensor(batch["image"])).numpy()
        pred = probs.argmax(-1)
        return [
            {"index": int(i), "gt_class": int(g), "pred_class": int(p), "score": float(pr[p]),
             "probs": [float(v) for v in pr], "angle": int(a), "derived": bool(d), "image_path": path,
             "label_file": f, "line": int(ln), "width": int(w), "height": int(h)}
            for i, g, p, pr, a, d, path, f, ln, w, h in zip(
                batch["index"], batch["label"], pred, probs, batch["angle"], batch["derived"], batch["path"],
                batch["file"], batch["line"], batch["width"], batch["height"])
        ]

    def score(self, records: list[dict]) -> EvalResult:
        from workbench.metrics.cls import ClassificationMetric

        metric = ClassificationMetric(self.classes.names)
        metric.update([r["pred_class"] for r in records], [r["gt_class"] for r in records],
                      scores=[r["score"] for r in records], ids=[r["index"] for r in records])
        rows = [{**r, **m} for r, m in zip(records, metric.records())]
        return EvalResult(metric.compute(), rows, extra={"confusion": metric.confusion().tolist()})

    def write_report(self, result: EvalResult, out_dir: Path, info: Optional[dict] = None) -> list[Path]:
        from workbench.reports.cls_report import write_cls_report

        return write_cls_report(result.records, result.metrics, out_dir, classes=self.classes.names, task=self.name,
                                title=f"{self.cfg.model.name} {self.title()}", info=info)

    @classmethod
    def title(cls) -> str:
        from workbench.tasks import registry

        return registry.get(cls.name).title

    # --- checkpoints ---------------------------------------------------------------------------------------
    def checkpoint_meta(self) -> dict:
        return {
            "task": self.name,
            "model_name": self.cfg.model.name,
            "arch": dict(self.cfg.model.arch),
            "classes": list(self.classes.names),
            "angles": list(self.classes.angles),
            "image_shape": list(self.spec.image_shape),
            "preprocess": {k: list(v) if isinstance(v, tuple) else v for k, v in dict(self.spec.preprocess).items()},
        }
