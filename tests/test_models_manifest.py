"""Our training graphs have exactly the official state-dict layout (keys, shapes, dtypes, order)."""

from __future__ import annotations

import json

import pytest

from workbench.models import zoo

MODELS = [
    "PP-OCRv5_mobile_det",
    "PP-OCRv4_mobile_det",
    "PP-OCRv5_mobile_rec",
    "en_PP-OCRv5_mobile_rec",
    "PP-OCRv4_mobile_rec",
    "en_PP-OCRv4_mobile_rec",
    "PP-OCRv5_server_det",
    "PP-OCRv5_server_rec",
]


def _layout(model) -> list[list]:
    return [[key, list(v.shape), str(v.dtype).replace("paddle.", "")] for key, v in model.state_dict().items()]


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_layout_matches_manifest(name, fixtures_dir):
    manifest = json.loads((fixtures_dir / "manifests" / f"{name}.json").read_text())
    spec = zoo.get_spec(name)
    assert spec.manifest == name

    if spec.task == "rec":
        ctc_classes = manifest["head_out_channels"]["out_channels_list"]["CTCLabelDecode"]
        assert manifest["head_out_channels"]["out_channels_list"]["NRTRLabelDecode"] == ctc_classes + 3
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
