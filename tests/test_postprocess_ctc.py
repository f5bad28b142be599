"""CTCDecoder: same texts and scores as PaddleX's CTCLabelDecode, plus hand-decoded cases."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from conftest import require

from workbench.postprocess.ctc import CTCDecoder

pdx = require("paddlex.inference.models.text_recognition.processors")

CHARS = list("abc")  # classes: 0 blank, 1 a, 2 b, 3 c, 4 space


def _one_hot_probs(sequence, peak=0.9, num_classes=5):
    """Probabilities whose arg-max follows ``sequence``; the winning probability varies so means are testable."""
    t = len(sequence)
    probs = np.full((1, t, num_classes), (1 - peak) / (num_classes - 1), np.float32)
    for i, cls in enumerate(sequence):
        probs[0, i, cls] = peak - 0.01 * i
    return probs


def test_hand_cases():
    decoder = CTCDecoder(CHARS)
    assert decoder.num_classes == 5 and decoder.classes[-1] == " "
    # repeats merge, blanks separate genuine doubles, space is the last class
    (text, score), = decoder(_one_hot_probs([1, 1, 0, 1, 2, 2, 4, 3, 0]))
    assert text == "aab c"
    kept = [0.9 - 0.01 * i for i in (0, 3, 4, 6, 7)]
    assert score == pytest.approx(np.mean(kept), abs=1e-6)
    # all blank → empty text and score 0.0 (PaddleX's convention), not NaN
    assert decoder(_one_hot_probs([0, 0, 0])) == [("", 0.0)]
    # a single long run is one character
    assert decoder(_one_hot_probs([3, 3, 3, 3]))[0][0] == "c"


def test_batch_and_ties():
    decoder = CTCDecoder(CHARS)
    probs = np.zeros((2, 3, 5), np.float32)
    probs[0, :, 2] = probs[0, :, 3] = 0.5  # tie: arg-max takes the first class (b)
    probs[1, 0, 1], probs[1, 1, 0], probs[1, 2, 1] = 1.0, 1.0, 1.0
    assert decoder(probs) == [("b", 0.5), ("aa", 1.0)]


def test_no_space_class_and_charset_object():
    assert CTCDecoder(CHARS, use_space_char=False).num_classes == 4
    charset = SimpleNamespace(characters=CHARS, use_space_char=False)
    decoder = CTCDecoder(charset, use_space_char=True)  # the charset's own setting wins
    assert decoder.num_classes == 4
    assert decoder(_one_hot_probs([1, 0, 3], num_classes=4))[0][0] == "ac"
    assert CTCDecoder("abc").classes == ["blank", "a", "b", "c", " "]


def test_wrong_class_count_is_an_error():
    with pytest.raises(ValueError, match="classes"):
        CTCDecoder(CHARS)(np.zeros((1, 4, 7), np.float32))


def _paddlex_decode(chars, probs):
    texts, scores = pdx.CTCLabelDecode(character_list=chars)([probs])
    return list(zip(texts, scores))


def test_random_probs_equal_paddlex():
    rng = np.random.default_rng(0)
    chars = [chr(0x4E00 + i) for i in range(30)] + list("0123456789")
    decoder = CTCDecoder(chars)
    for temperature in (0.3, 1.0, 3.0):
        logits = rng.normal(size=(16, 40, len(chars) + 2)).astype(np.float32) / temperature
        logits[:, :, 0] += 1.0  # plenty of blanks, as real outputs have
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        ours = decoder(probs.astype(np.float32))
        assert ours == _paddlex_decode(chars, probs.astype(np.float32))
        assert any(t for t, _ in ours) and all(isinstance(s, float) for _, s in ours)


def test_real_model_output_equals_paddlex(fixtures_dir):
    """The parity fixture's probs come from a real en_PP-OCRv5_mobile_rec forward pass (random weights)."""
    npz = np.load(fixtures_dir / "parity/en_PP-OCRv5_mobile_rec_bncal_io.npz")
    lines = (fixtures_dir / "parity/ppocrv5_en_dict.txt").read_text(encoding="utf-8").splitlines()
    decoder = CTCDecoder(lines)
    probs = npz["probs"]
    assert decoder.num_classes == probs.shape[2] == 438
    ours = decoder(probs)
    assert ours == _paddlex_decode(lines, probs)
    # and the text follows the stored arg-max
    for (text, _), row in zip(ours, npz["argmax"]):
        keep = np.r_[True, row[1:] != row[:-1]] & (row != 0)
        assert text == "".join(decoder.classes[i] for i in row[keep])
