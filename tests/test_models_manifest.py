"""Our training graphs have exactly the official state-dict layout (keys, shapes, dtypes, order)."""

from __future__ import annotations

import json

import pytest

from workbench.models import zoo

# Every zoo model with an official training graph: adding a family to the zoo adds its test here.
MODELS = [name for name in zoo.list_models() if zoo.get_spec(name).manifest]
# Official models without a manifest of their own: (name, the manifest of the same graph). They may differ only in
# the dictionary-sized head tensors.
SAME_GRAPH = [(name, "PP-OCRv5_mobile_rec") for name in zoo.list_models()
              if name.endswith("_PP-OCRv5_mobile_rec") and not zoo.get_spec(name).manifest]
DICTIONARY_SIZED = ("head.ctc_head.fc.weight", "head.ctc_head.fc.bias", "head.gtc_head.embedding.embedding.weight",
                    "head.gtc_head.tgt_word_prj.weight")


def _layout(model) -> list[list]:
    return [[key, list(v.shape), str(v.dtype).replace("paddle.", "")] for key, v in model.state_dict().items()]


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_layout_matches_manifest(name, fixtures_dir):
    manifest = json.loads((fixtures_dir / "manifests" / f"{name}.json").read_text())
    spec = zoo.get_spec(name)
    assert spec.manifest == name

    if spec.task == "rec":
        ctc_classes = manifest["head_out_channels"]["out_channels_list"]["CTCLabelDecode"]
        heads = manifest["head_out_channels"]["out_channels_list"]
        assert heads.get("NRTRLabelDecode", ctc_classes + 3) == ctc_classes + 3
        assert heads.get("SARLabelDecode", ctc_classes + 2) == ctc_classes + 2
        assert ("SARLabelDecode" in heads) == (spec.training_branch == "sar")
        model = zoo.build_model(name, num_classes=ctc_classes)
        # the zoo's own dictionary record gives the same head sizes and names the same file
        assert spec.dictionary.num_ctc_classes == ctc_classes
        assert spec.dictionary.sha256 == manifest["character_dict"]["sha256"]
        assert spec.dictionary.url.endswith(manifest["character_dict"]["path"])
    else:
        assert manifest["character_dict"] is None
        model = zoo.build_model(name)

    layout = _layout(model)
    expected = manifest["state_dict"]
    assert len(layout) == manifest["num_state_dict_entries"] == len(expected)
    mismatches = [(i, ours, ref) for i, (ours, ref) in enumerate(zip(layout, expected)) if ours != ref]
    assert not mismatches, f"first mismatches: {mismatches[:3]}"
    assert sum(p.size for p in model.parameters()) == manifest["num_params"]


def test_rec_default_head_sizes_follow_the_official_dictionary():
    model = zoo.build_model("en_PP-OCRv5_mobile_rec")
    assert model.head.ctc_head.fc.weight.shape == [120, 438]
    assert model.head.gtc_head.tgt_word_prj.weight.shape == [384, 442]


def test_the_zoo_covers_the_manifests(fixtures_dir):
    """Every official training graph in ../shared has a zoo model, except those the workbench does not train
    (listed, so that a new manifest is a decision, not an accident)."""
    not_trained = {"PP-OCRv3_server_det": "ResNet_vd50 + LKPAN: not in PaddleX 3.7's default pipelines; not ported"}
    names = {p.stem for p in (fixtures_dir / "manifests").glob("*.json") if p.stem not in ("summary",)}
    assert names - set(MODELS) == set(not_trained)


@pytest.mark.parametrize("name, reference", SAME_GRAPH)
def test_same_graph_models_differ_only_in_the_dictionary_sized_tensors(name, reference, fixtures_dir):
    """Built without a charset, a same-graph model has the reference's layout with its own pinned dictionary size
    in the 4 dictionary-sized tensors: CTC classes = dictionary lines + blank + space, NRTR = CTC + 4."""
    manifest = json.loads((fixtures_dir / "manifests" / f"{reference}.json").read_text())
    spec = zoo.get_spec(name)
    assert spec.dictionary.url.endswith(f"ppocr/utils/dict/ppocrv5_{name.split('_', 1)[0]}_dict.txt")
    assert spec.dictionary.use_space_char and spec.dictionary.num_lines > 0
    ctc_classes = spec.dictionary.num_ctc_classes
    assert ctc_classes == spec.dictionary.num_lines + 2
    layout = _layout(zoo.build_model(name))
    expected = manifest["state_dict"]
    assert [row[0] for row in layout] == [row[0] for row in expected]
    differing = [ours[0] for ours, ref in zip(layout, expected) if ours != ref]
    assert differing == list(DICTIONARY_SIZED)
    reference_classes = manifest["head_out_channels"]["out_channels_list"]["CTCLabelDecode"]
    resized = {key: [ctc_classes + d - reference_classes if 0 <= d - reference_classes <= 4 else d for d in shape]
               for key, shape, _ in expected if key in DICTIONARY_SIZED}
    assert {key: shape for key, shape, _ in layout if key in DICTIONARY_SIZED} == resized
    assert resized["head.ctc_head.fc.weight"] == [120, ctc_classes]
    assert resized["head.gtc_head.tgt_word_prj.weight"] == [384, ctc_classes + 4]
