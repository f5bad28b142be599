"""Text recognition as a trainer Task: CTC + NRTR multi-head training, CTC greedy evaluation.

Where each piece comes from:
    data         workbench.data.rec.RecDataset (label files, policy) + the demo set (workbench.data.synth)
    dictionary   model.character_dict, else the demo dictionary (demo data), else the zoo's official one
    transforms   workbench.data.augment (train) → workbench.data.preprocess (48×320, or the pipeline's resize)
    model, loss  workbench.models.zoo, workbench.losses.multi.MultiLoss
    evaluation   workbench.postprocess.ctc.CTCDecoder → workbench.metrics.rec.RecMetric
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Optional

import numpy as np

from workbench.config.schema import TrainConfig
from workbench.data.charset import Charset
from workbench.data.check.rec import MAX_ASPECT, RecLabelCheck
from workbench.errors import ConfigError
from workbench.engine.task import EvalResult, WeightsReport
from workbench.tasks.common import LabelFileTask
from workbench.tasks.entry import TaskEntry
from workbench.tasks.rec_export import RecExportWriter

log = logging.getLogger("workbench.rec")



UPSTREAM_MAX_TEXT_LENGTH = 25  # the floor of model.max_text_length=null: short-text sets train as upstream's


class RecTrainTransform:
    """Augment (upstream RecConAug + RecAug), then resize to [-1, 1]: upstream's fixed 48×320, or (``max_width``
    given) the pipeline's keep-ratio resize, at least ``min_width`` (default ``image_shape``'s) wide and at most
    ``max_width``."""

    def __init__(self, augment, image_shape, max_width: Optional[int] = None, min_width: Optional[int] = None):
        self.augment = augment
        self.image_shape = tuple(image_shape)
        self.max_width = max_width
        self.min_width = min_width

    @property
    def ext_data_num(self) -> int:
        return self.augment.ext_data_num if self.augment is not None else 0

    def __call__(self, data: dict, rng: Optional[np.random.Generator] = None) -> dict:
        from workbench.data.preprocess import resize_norm_rec_fixed

        # a multi-scale batch carries its own input size (RecTask.batch_meta)
        shape = tuple(data.pop("image_shape", self.image_shape))
        if self.augment is not None:
            data = self.augment(data, rng=rng)
        if self.max_width:
            from workbench.data.preprocess import resize_norm_rec

            # the canvas is at least min_width wide (resize_norm_rec's minimum ratio)
            canvas = (*shape[:2], self.min_width or shape[2])
            data["image"] = resize_norm_rec(data["image"], canvas, max_width=self.max_width)
            # the crop fills its own keep-ratio canvas (SAR masks by it; batch padding is zeros)
            data["valid_ratio"] = 1.0
        else:
            data["image"], data["valid_ratio"] = resize_norm_rec_fixed(data["image"], shape)
        return data


class RecEvalTransform:
    """``fixed``: 48×320 as upstream's eval; ``pipeline``: height 48, keep ratio, as the PaddleX predictor."""

    def __init__(self, mode: str, image_shape):
        if mode not in ("fixed", "pipeline"):
            raise ConfigError(f"eval.rec.resize_mode={mode!r}: choose fixed or pipeline")
        self.mode = mode
        self.image_shape = tuple(image_shape)

    def __call__(self, data: dict, rng=None) -> dict:
        from workbench.data.preprocess import resize_norm_rec, resize_norm_rec_fixed

        h, w = data["image"].shape[:2]
        data["height"], data["width"] = h, w
        if self.mode == "fixed":
            data["image"], _ = resize_norm_rec_fixed(data["image"], self.image_shape)
        else:
            data["image"] = resize_norm_rec(data["image"], self.image_shape)
        return data


def dictionary_sized_keys(model, num_classes: int) -> tuple[str, ...]:
    """Head tensors whose shape follows the dictionary (CTC fc; NRTR embedding and output projection)."""
    sizes = {num_classes, num_classes + 3, num_classes + 4}
    return tuple(k for k, v in model.state_dict().items() if k.startswith("head.") and sizes & set(v.shape)
                 and ("ctc_head" in k or "embedding" in k or "tgt_word_prj" in k))


class RecTask(LabelFileTask):
    name = "rec"

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        if cfg.data.width_mode not in ("fixed", "keep_ratio"):
            raise ConfigError(f"data.width_mode={cfg.data.width_mode!r}: choose fixed or keep_ratio")
        if cfg.data.min_width is not None and (cfg.data.width_mode != "keep_ratio"
                                               or not 8 <= cfg.data.min_width <= cfg.data.max_width):
            raise ConfigError(f"data.min_width={cfg.data.min_width}: needs data.width_mode=keep_ratio and a width "
                              f"from 8 (one time step) to data.max_width ({cfg.data.max_width})")
        self.charset = self._resolve_charset()
        self.max_text_length = self._resolve_max_text_length()

    # --- dictionary ----------------------------------------------------------------------------------------
    def _resolve_charset(self) -> Charset:
        m = self.cfg.model
        if m.character_dict:
            path = Path(m.character_dict)
        elif self.files.demo_dict is not None:
            # The demo trains from scratch on synthetic text: its own small dictionary, no download.
            path = self.files.demo_dict
        elif self.spec.dictionary is not None:
            from workbench.weights.pretrained import fetch_dictionary

            path = fetch_dictionary(self.spec.dictionary)
        else:
            raise ConfigError(f"model {m.name} has no official dictionary: set model.character_dict=<file>")
        charset = Charset.from_file(path, use_space_char=m.use_space_char)
        official = self.spec.dictionary
        if official is not None and official.sha256 and charset.sha256 != official.sha256:
            log.info("dictionary %s differs from %s's official %s", path, m.name, official.file_name)
        return charset

    def _resolve_max_text_length(self) -> int:
        """``model.max_text_length``, or (null) what the training labels need: the longest one, plus the NRTR
        target's two markers when NRTR trains. Logged: it decides which labels count as too long."""
        if self.cfg.model.max_text_length is not None:
            return int(self.cfg.model.max_text_length)
        from workbench.data.labels import read_rec_labels

        longest = max((len(s.text) for path, _ in self.files.train for s in read_rec_labels(path)[0]), default=0)
        value = max(longest + (2 if self.trains_nrtr else 0), UPSTREAM_MAX_TEXT_LENGTH)
        log.info("model.max_text_length=null: %d (longest training label: %d characters)", value, longest)
        return value

    # --- model ---------------------------------------------------------------------------------------------
    def build_model(self):
        from workbench.models import zoo

        model = zoo.build_model(self.cfg.model.name, charset=self.charset, **dict(self.cfg.model.arch))
        head = model.head
        if self.nrtr_mode == "skip" and hasattr(head, "skip_nrtr"):
            head.skip_nrtr()
        elif self.nrtr_mode == "protect" and hasattr(head, "protect_backbone"):
            head.protect_backbone()
        if self.cfg.data.width_mode == "keep_ratio":
            model.pool_like_inference()
        return model

    @property
    def trains_nrtr(self) -> bool:
        """The model has an NRTR branch and it is computed in training (labels then need room for its markers)."""
        from workbench.models import zoo

        return self.nrtr_mode != "skip" and zoo.get_spec(self.cfg.model.name).builder is not zoo.compact_cnn_ctc

    @functools.cached_property
    def nrtr_mode(self) -> str:
        """How the NRTR branch trains: ``upstream`` (it trains the backbone, CTC branch detached), ``protect``
        (CTC trains the backbone, NRTR on detached features) or ``skip`` (not computed). See ``ModelConfig``."""
        m = self.cfg.model
        if m.untrained_nrtr not in ("auto", "protect", "skip", "upstream"):
            raise ConfigError(f"model.untrained_nrtr={m.untrained_nrtr!r}: choose auto, skip, protect or upstream")
        if m.untrained_nrtr != "auto":
            return m.untrained_nrtr
        return "skip" if self._starting_nrtr_untrained else "upstream"

    @property
    def protects_backbone_from_nrtr(self) -> bool:
        """The NRTR branch cannot shape the backbone (``skip`` or ``protect``)."""
        return self.nrtr_mode in ("skip", "protect")

    @functools.cached_property
    def _starting_nrtr_untrained(self) -> bool:
        weights = self.pretrained_file
        if weights is None:
            return False
        from workbench.weights.pretrained import nrtr_branch_untrained

        if not nrtr_branch_untrained(weights):
            return False
        log.warning(
            "%s carries no trained NRTR branch (imported inference model): the CTC loss trains the backbone and the "
            "NRTR branch is not computed, so a random decoder cannot reshape pretrained features "
            "(model.untrained_nrtr=protect trains NRTR on detached features, =upstream gives upstream's wiring)",
            weights)
        return True

    def load_initial_weights(self, model) -> WeightsReport:
        from workbench.models.rec import NRTR_PE_KEY

        return self.load_pretrained(
            model,
            resizable_keys=dictionary_sized_keys(model, self.charset.num_ctc_classes),
            allow_reinit=self.cfg.model.reinit_head_on_dict_change,
            optional_missing=(NRTR_PE_KEY,),
        )

    # --- data ----------------------------------------------------------------------------------------------
    def build_dataset(self, files, *, train: bool):
        from workbench.data.rec import RecDataset

        d = self.cfg.data
        if train:
            from workbench.data.augment import build_rec_augment

            aug_cfg = {"max_text_length": self.label_max_chars,
                       "image_shape": tuple(d.image_shape[1:]), **dict(d.augment)}
            augment = build_rec_augment(aug_cfg, seed=self.cfg.seed)
            keep_ratio = d.width_mode == "keep_ratio"
            transform = RecTrainTransform(augment, d.image_shape, max_width=d.max_width if keep_ratio else None,
                                          min_width=d.min_width)
        else:
            transform = RecEvalTransform(self.cfg.eval.rec.resize_mode, d.image_shape)
        return RecDataset(
            files, self.charset, transform, self.policy, self.max_text_length, nrtr=self.trains_nrtr,
            root=d.root, seed=self.cfg.seed, shuffle=False, for_eval=not train,
            sar=self.spec.training_branch == "sar",
        )

    @property
    def label_max_chars(self) -> int:
        return self.charset.max_chars(self.max_text_length, self.trains_nrtr)

    def batch_sort_keys(self, dataset):
        """Keep-ratio training and pipeline-resize evaluation pad a batch to its widest crop: batch by width."""
        train = dataset is self._datasets.get("train")
        if (self.cfg.data.width_mode if train else self.cfg.eval.rec.resize_mode) not in ("keep_ratio", "pipeline"):
            return None
        return dataset.image_widths(self.cfg.data.image_shape[1])

    def collate_train(self, samples):
        from workbench.data.rec import collate_rec

        return collate_rec(samples)

    collate_eval = collate_train

    @staticmethod
    def make_demo(demo):
        from workbench.data import synth

        return synth.generate_rec_demo(demo.dir, demo.n_train, demo.n_val, demo.seed, style=demo.style)

    def label_check(self):
        d = self.cfg.data
        keep_ratio = d.width_mode == "keep_ratio"  # then only crops wider than max_width are squeezed
        max_aspect = d.max_width / d.image_shape[1] if keep_ratio else MAX_ASPECT
        return RecLabelCheck(self.charset, self.max_text_length, nrtr=self.trains_nrtr, max_aspect=max_aspect)

    def summary_extras(self) -> dict:
        return {"dictionary": {"source": self.charset.source, "size": len(self.charset),
                               "sha256": self.charset.sha256}}

    # --- training ------------------------------------------------------------------------------------------
    def batch_meta(self, epoch: int, batch_index: int) -> Optional[dict]:
        """Upstream's MultiScaleSampler: each batch trains at one of ``data.multi_scale`` ([width, height] pairs,
        e.g. [[320, 32], [320, 48], [320, 64]]), drawn from (seed, epoch, batch); the backbone pools every height
        to the same 40 time steps."""
        scales = self.cfg.data.multi_scale
        if not scales:
            return None
        rng = np.random.default_rng([self.cfg.seed, epoch, batch_index, 0x5CA1E])
        w, h = scales[int(rng.integers(len(scales)))]
        return {"image_shape": [3, int(h), int(w)]}

    def build_loss(self):
        from workbench.losses.multi import MultiLoss

        return MultiLoss()

    def training_step(self, model, loss_fn, batch):
        import paddle

        keys = ("image", "label_ctc", "label_gtc", "length", "label_sar", "valid_ratio")
        tensors = {k: paddle.to_tensor(batch[k]) for k in keys if k in batch}
        preds = model(tensors["image"], tensors)
        return loss_fn(preds, tensors), len(batch["image"])

    # --- evaluation ----------------------------------------------------------------------------------------
    def decoder(self):
        from workbench.postprocess.ctc import CTCDecoder

        return CTCDecoder(self.charset.characters, use_space_char=self.charset.use_space_char)

    def predict(self, model, batch) -> list[dict]:
        import paddle

        probs = model(paddle.to_tensor(batch["image"])).numpy()
        decoded = self.decoder()(probs)
        return [
            {"index": int(i), "gt": t, "pred": p, "score": float(s), "image_path": path, "label_file": f,
             "line": int(ln), "width": int(w), "height": int(h)}
            for i, t, (p, s), path, f, ln, w, h in zip(
                batch["index"], batch["text"], decoded, batch["path"], batch["file"], batch["line"],
                batch["width"], batch["height"],
            )
        ]

    def score(self, records: list[dict]) -> EvalResult:
        from workbench.metrics.rec import RecMetric

        metric = RecMetric(self.charset, use_space_char=self.charset.use_space_char,
                           max_text_length=self.max_text_length)
        metric.update([(r["pred"], r["score"]) for r in records], [r["gt"] for r in records],
                      ids=[r["index"] for r in records])
        metrics = metric.compute()
        if self.cfg.eval.rec.case_insensitive:
            metrics["acc_selected"] = metrics["acc_honest_nocase"]
        rows = [{**r, **m} for r, m in zip(records, metric.records())]
        return EvalResult(metrics, rows)

    def write_report(self, result: EvalResult, out_dir: Path, info: Optional[dict] = None) -> list[Path]:
        from workbench.reports.rec_report import write_rec_report

        return write_rec_report(result.records, result.metrics, out_dir, title=f"{self.cfg.model.name} recognition",
                                info=info)

    # --- checkpoints ---------------------------------------------------------------------------------------
    def checkpoint_meta(self) -> dict:
        return {
            "task": self.name,
            "model_name": self.cfg.model.name,
            "arch": dict(self.cfg.model.arch),
            "dictionary_sha256": self.charset.sha256,
            "use_space_char": self.charset.use_space_char,
            "num_ctc_classes": self.charset.num_ctc_classes,
            "image_shape": list(self.cfg.data.image_shape),
            "max_text_length": self.max_text_length,
            "width_mode": self.cfg.data.width_mode,
            "nrtr_backbone_protected": self.protects_backbone_from_nrtr,
        }

    def dictionary_lines(self) -> list[str]:
        return list(self.charset.characters)



ENTRY = TaskEntry(
    name="rec", title="text recognition", task=RecTask, export_writer=RecExportWriter(), label_check=RecLabelCheck,
    pipeline_module="TextRecognition", stock_model="PP-OCRv5_mobile_rec", select_metric="acc",
    recipe="rec_finetune",
    # paddleocr 3.7 runs PP-OCRv6 medium by default: `stock-v6`; the other sizes are spelled out
    stock_variants={"stock-v5": "PP-OCRv5_mobile_rec", "stock-v6": "PP-OCRv6_medium_rec",
                    "stock-v6-medium": "PP-OCRv6_medium_rec", "stock-v6-small": "PP-OCRv6_small_rec",
                    "stock-v6-tiny": "PP-OCRv6_tiny_rec"},
)
